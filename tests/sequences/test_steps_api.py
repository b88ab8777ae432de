"""Steps API: nested list and create, reorder, detail update and delete, tenancy and roles."""

import pytest

from accounts.models import Role
from sequences.models import Step
from tests.factories import SequenceFactory, StepFactory

pytestmark = pytest.mark.django_db


def positions(sequence):
    return list(Step.objects.filter(sequence=sequence).order_by("position").values_list("name", "position"))


@pytest.fixture
def draft(workspace, template):
    sequence = SequenceFactory(workspace=workspace, name="Draft")
    for position, name in enumerate(["a", "b", "c"], start=1):
        StepFactory(sequence=sequence, template=template, name=name, position=position)
    return sequence


def test_list_steps_in_order(api, draft):
    response = api.get(f"/api/v1/email-sequences/{draft.pk}/steps")
    assert response.status_code == 200
    assert [s["name"] for s in response.json()] == ["a", "b", "c"]


def test_create_step_at_the_end_or_at_a_position(api, draft, template):
    url = f"/api/v1/email-sequences/{draft.pk}/steps"
    end = api.post(url, {"template": template.pk, "name": "d", "delay_value": 5, "delay_unit": "hours"})
    assert end.status_code == 201, end.content
    assert end.json()["position"] == 4
    first = api.post(url, {"template": template.pk, "name": "z", "position": 1})
    assert first.status_code == 201
    assert positions(draft) == [("z", 1), ("a", 2), ("b", 3), ("c", 4), ("d", 5)]


def test_create_step_with_another_workspaces_template_answers_400(api, draft, other_template):
    response = api.post(f"/api/v1/email-sequences/{draft.pk}/steps", {"template": other_template.pk})
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["template"]


def test_reorder_steps(api, draft):
    ids = dict(Step.objects.filter(sequence=draft).values_list("name", "id"))
    response = api.post(
        f"/api/v1/email-sequences/{draft.pk}/steps/reorder", {"step_ids": [ids["c"], ids["a"], ids["b"]]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert [s["name"] for s in response.json()] == ["c", "a", "b"]
    assert positions(draft) == [("c", 1), ("a", 2), ("b", 3)]


def test_reorder_must_list_every_step_once(api, draft, other_sequence):
    ids = list(Step.objects.filter(sequence=draft).order_by("position").values_list("id", flat=True))
    url = f"/api/v1/email-sequences/{draft.pk}/steps/reorder"
    foreign = other_sequence.steps.first().pk
    for step_ids in (ids[:2], [*ids, ids[0]], [*ids[:2], foreign]):
        response = api.post(url, {"step_ids": step_ids}, format="json")
        assert response.status_code == 400, step_ids
        assert response.json()["error"]["message"].startswith("step_ids")
    assert positions(draft) == [("a", 1), ("b", 2), ("c", 3)]


def test_get_patch_and_delete_a_step(api, draft, template):
    step = Step.objects.get(sequence=draft, name="b")
    assert api.get(f"/api/v1/steps/{step.pk}").json()["name"] == "b"
    patched = api.patch(f"/api/v1/steps/{step.pk}", {"delay_value": 4, "delay_unit": "weeks"}, format="json")
    assert patched.status_code == 200, patched.content
    assert (patched.json()["delay_value"], patched.json()["delay_unit"]) == (4, "weeks")
    assert api.delete(f"/api/v1/steps/{step.pk}").status_code == 204
    assert positions(draft) == [("a", 1), ("c", 2)]


def test_patch_step_to_another_workspaces_template_answers_400(api, draft, other_template):
    step = Step.objects.get(sequence=draft, name="a")
    response = api.patch(f"/api/v1/steps/{step.pk}", {"template": other_template.pk}, format="json")
    assert response.status_code == 400
    step.refresh_from_db()
    assert step.template.workspace_id == draft.workspace_id


def test_deleting_the_only_step_of_an_active_sequence_answers_409(api, workspace, template):
    sequence = SequenceFactory(workspace=workspace, status="active")
    only = StepFactory(sequence=sequence, template=template)
    assert api.delete(f"/api/v1/steps/{only.pk}").status_code == 409
    assert Step.objects.filter(pk=only.pk).exists()


def test_another_workspaces_steps_are_invisible(api, other_sequence, template):
    step = other_sequence.steps.first()
    seq_url = f"/api/v1/email-sequences/{other_sequence.pk}"
    assert api.get(f"{seq_url}/steps").status_code == 404
    assert api.post(f"{seq_url}/steps", {"template": template.pk}).status_code == 404
    assert api.post(f"{seq_url}/steps/reorder", {"step_ids": [step.pk]}, format="json").status_code == 404
    assert api.get(f"/api/v1/steps/{step.pk}").status_code == 404
    assert api.patch(f"/api/v1/steps/{step.pk}", {"name": "mine"}, format="json").status_code == 404
    assert api.put(f"/api/v1/steps/{step.pk}", {"template": template.pk}, format="json").status_code == 404
    assert api.delete(f"/api/v1/steps/{step.pk}").status_code == 404
    assert other_sequence.steps.count() == 1


def test_viewer_reads_steps_but_cannot_change_them(client_for, workspace, draft, template):
    viewer = client_for(workspace, Role.VIEWER)
    step = Step.objects.get(sequence=draft, name="a")
    assert viewer.get(f"/api/v1/email-sequences/{draft.pk}/steps").status_code == 200
    assert viewer.get(f"/api/v1/steps/{step.pk}").status_code == 200
    assert viewer.post(f"/api/v1/email-sequences/{draft.pk}/steps", {"template": template.pk}).status_code == 403
    reorder = viewer.post(f"/api/v1/email-sequences/{draft.pk}/steps/reorder", {"step_ids": [step.pk]}, format="json")
    assert reorder.status_code == 403
    assert viewer.patch(f"/api/v1/steps/{step.pk}", {"name": "x"}, format="json").status_code == 403
    assert viewer.delete(f"/api/v1/steps/{step.pk}").status_code == 403
    assert positions(draft) == [("a", 1), ("b", 2), ("c", 3)]
