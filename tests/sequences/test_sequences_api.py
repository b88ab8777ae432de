"""Sequences API: nested steps, the send window, state transitions, step replacement, tenancy and roles."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from sequences.models import Enrollment, EnrollmentStatus, Sequence, SequenceStatus, Step, Template
from subscribers.models import Event, EventType
from tests.factories import EnrollmentFactory, SequenceFactory, StepFactory, TemplateFactory

pytestmark = pytest.mark.django_db


def payload(template, **overrides):
    return {
        "name": "Onboarding",
        "description": "New users",
        "send_days": [0, 1, 2, 3, 4],
        "send_start_hour": 9,
        "send_end_hour": 17,
        "re_entry": "after_completion",
        "goal_event": "purchased",
        "steps": [
            {"template": template.pk, "name": "Welcome", "delay_value": 0, "delay_unit": "minutes"},
            {"template": template.pk, "name": "Tips", "delay_value": 2, "delay_unit": "days"},
        ],
        **overrides,
    }


def test_create_sequence_with_steps(api, template):
    response = api.post("/api/v1/email-sequences", payload(template), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "draft"
    assert (body["send_days"], body["send_start_hour"], body["send_end_hour"]) == ([0, 1, 2, 3, 4], 9, 17)
    assert [(s["position"], s["name"], s["delay_value"], s["delay_unit"]) for s in body["steps"]] == [
        (1, "Welcome", 0, "minutes"),
        (2, "Tips", 2, "days"),
    ]
    assert [s["name"] for s in api.get("/api/v1/email-sequences").json()["results"]] == ["Onboarding"]


def test_step_with_another_workspaces_template_answers_400_naming_the_step(api, template, other_template):
    steps = [{"template": template.pk}, {"template": other_template.pk}]
    response = api.post("/api/v1/email-sequences", payload(template, steps=steps), format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["steps[1].template"]
    assert response.json()["error"]["message"].startswith("steps[1].template: ")
    assert not Sequence.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"send_days": [1, 1]}, "send_days"),
        ({"send_days": [7]}, "send_days"),
        ({"send_days": []}, "send_days"),
        ({"send_start_hour": 17, "send_end_hour": 9}, "send_end_hour"),
        ({"send_start_hour": 9, "send_end_hour": 9}, "send_end_hour"),
        ({"send_end_hour": 25}, "send_end_hour"),
        ({"re_entry": "sometimes"}, "re_entry"),
        ({"steps": [{"delay_value": 1}]}, "steps"),
        ({"steps": [{"template": 1, "delay_unit": "fortnights"}]}, "steps"),
    ],
)
def test_invalid_sequence_fields_answer_400_naming_the_field(api, template, overrides, field):
    response = api.post("/api/v1/email-sequences", payload(template, **overrides), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"].startswith(field)


def test_a_delay_too_long_for_any_calendar_answers_400(api, template):
    steps = [{"template": template.pk, "delay_value": 2**31 - 1, "delay_unit": "weeks"}]
    response = api.post("/api/v1/email-sequences", payload(template, steps=steps), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("steps[0].delay_value")


def test_patch_with_steps_keeps_given_ids_creates_new_and_deletes_missing(api, template):
    sequence = api.post("/api/v1/email-sequences", payload(template), format="json").json()
    welcome, tips = sequence["steps"]
    second_template = TemplateFactory(workspace=template.workspace)
    steps = [
        {"id": tips["id"], "template": second_template.pk, "delay_value": 1, "delay_unit": "hours"},
        {"template": template.pk, "name": "New"},
    ]
    response = api.patch(f"/api/v1/email-sequences/{sequence['id']}", {"steps": steps}, format="json")
    assert response.status_code == 200, response.content
    got = response.json()["steps"]
    assert got[0]["id"] == tips["id"] and got[0]["template"] == second_template.pk and got[0]["position"] == 1
    assert got[1]["name"] == "New" and got[1]["id"] not in (welcome["id"], tips["id"])
    assert not Step.objects.filter(pk=welcome["id"]).exists()


def test_patch_with_an_incomplete_step_answers_400(api, active_sequence):
    response = api.patch(f"/api/v1/email-sequences/{active_sequence.pk}", {"steps": [{"name": "x"}]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "steps[0].template: This field is required."
    assert active_sequence.steps.count() == 2


def test_patch_without_steps_leaves_the_steps_alone(api, active_sequence):
    before = list(active_sequence.steps.values_list("id", flat=True))
    response = api.patch(f"/api/v1/email-sequences/{active_sequence.pk}", {"name": "Renamed"}, format="json")
    assert response.status_code == 200
    assert [s["id"] for s in response.json()["steps"]] == before


def test_put_replaces_fields(api, template):
    sequence = SequenceFactory(workspace=template.workspace)
    response = api.put(f"/api/v1/email-sequences/{sequence.pk}", payload(template, name="Put"), format="json")
    assert response.status_code == 200, response.content
    sequence.refresh_from_db()
    assert (sequence.name, sequence.re_entry, sequence.steps.count()) == ("Put", "after_completion", 2)


def test_step_id_of_another_sequence_answers_400(api, active_sequence, template):
    foreign = StepFactory(sequence=SequenceFactory(workspace=template.workspace), template=template)
    steps = [{"id": foreign.pk, "template": template.pk}]
    response = api.patch(f"/api/v1/email-sequences/{active_sequence.pk}", {"steps": steps}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("steps[0].id")


def test_removing_a_step_moves_its_active_enrollments_to_the_next_step(api, active_sequence):
    first, second = active_sequence.steps.order_by("position")
    due = timezone.now() + timedelta(hours=2)
    waiting = EnrollmentFactory(sequence=active_sequence, current_step=first, next_run_at=due)
    steps = [{"id": second.pk, "template": second.template_id, "delay_value": 3, "delay_unit": "days"}]
    response = api.patch(f"/api/v1/email-sequences/{active_sequence.pk}", {"steps": steps}, format="json")
    assert response.status_code == 200, response.content
    waiting.refresh_from_db()
    assert waiting.status == EnrollmentStatus.ACTIVE and waiting.current_step_id == second.pk
    # It waits the second step's delay instead of the removed one's, counted from the same start.
    assert abs(waiting.next_run_at - (due - timedelta(hours=2) + timedelta(days=3))) < timedelta(seconds=1)


def test_removing_the_last_pending_step_completes_its_enrollments(api, active_sequence):
    second = active_sequence.steps.order_by("position").last()
    waiting = EnrollmentFactory(sequence=active_sequence, current_step=second, next_run_at=timezone.now())
    response = api.delete(f"/api/v1/steps/{second.pk}")
    assert response.status_code == 204
    waiting.refresh_from_db()
    assert waiting.status == EnrollmentStatus.COMPLETED and waiting.current_step is None


def test_an_active_sequence_keeps_at_least_one_step(api, active_sequence):
    response = api.patch(f"/api/v1/email-sequences/{active_sequence.pk}", {"steps": []}, format="json")
    assert response.status_code == 409
    assert active_sequence.steps.count() == 2


def test_activate_without_steps_answers_409_saying_why(api, workspace):
    sequence = SequenceFactory(workspace=workspace)
    response = api.post(f"/api/v1/email-sequences/{sequence.pk}/activate")
    assert response.status_code == 409
    assert "at least one step" in response.json()["error"]["message"]
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.DRAFT


def test_activate_with_a_template_that_does_not_compile_answers_409(api, workspace):
    sequence = SequenceFactory(workspace=workspace)
    broken = Template.objects.create(workspace=workspace, name="Broken", subject="x", html="{% if %}")
    StepFactory(sequence=sequence, template=broken, position=1)
    response = api.post(f"/api/v1/email-sequences/{sequence.pk}/activate")
    assert response.status_code == 409
    assert response.json()["error"]["message"].startswith("Step 1 (Broken): html: line 1:")


def test_activate_pause_resume_and_archive(api, workspace, template):
    sequence = SequenceFactory(workspace=workspace)
    StepFactory(sequence=sequence, template=template)
    url = f"/api/v1/email-sequences/{sequence.pk}"
    activated = api.post(f"{url}/activate")
    assert activated.status_code == 200 and activated.json()["status"] == "active"
    assert activated.json()["activated_at"] is not None
    assert api.post(f"{url}/activate").json()["status"] == "active"  # repeating is harmless
    assert api.post(f"{url}/pause").json()["status"] == "paused"
    assert api.post(f"{url}/activate").json()["status"] == "active"
    assert api.post(f"{url}/archive").json()["status"] == "archived"


@pytest.mark.parametrize(
    ("status", "action"),
    [("archived", "activate"), ("archived", "pause"), ("draft", "pause")],
)
def test_illegal_transitions_answer_409(api, workspace, template, status, action):
    sequence = SequenceFactory(workspace=workspace, status=status)
    StepFactory(sequence=sequence, template=template)
    response = api.post(f"/api/v1/email-sequences/{sequence.pk}/{action}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "illegal_transition"
    sequence.refresh_from_db()
    assert sequence.status == status


def test_archiving_exits_active_enrollments_and_records_it(api, active_sequence):
    enrollment = EnrollmentFactory(sequence=active_sequence, current_step=active_sequence.steps.first())
    done = EnrollmentFactory(sequence=active_sequence, status=EnrollmentStatus.COMPLETED)
    assert api.post(f"/api/v1/email-sequences/{active_sequence.pk}/archive").status_code == 200
    enrollment.refresh_from_db()
    done.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "sequence archived")
    assert done.status == "completed"
    exited = Event.objects.get(type=EventType.EXITED)
    assert (exited.subscriber_id, exited.sequence_id) == (enrollment.subscriber_id, active_sequence.pk)


def test_an_archived_sequence_cannot_be_edited(api, workspace):
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ARCHIVED)
    response = api.patch(f"/api/v1/email-sequences/{sequence.pk}", {"name": "x"}, format="json")
    assert response.status_code == 409


def test_delete_refuses_an_active_sequence_and_deletes_others(api, active_sequence):
    url = f"/api/v1/email-sequences/{active_sequence.pk}"
    assert api.delete(url).status_code == 409
    api.post(f"{url}/pause")
    EnrollmentFactory(sequence=active_sequence)
    assert api.delete(url).status_code == 204
    assert not Sequence.objects.filter(pk=active_sequence.pk).exists()
    assert not Enrollment.objects.exists()


def test_list_filters_by_status(api, workspace):
    SequenceFactory(workspace=workspace, name="A", status="active")
    SequenceFactory(workspace=workspace, name="D", status="draft")
    names = [s["name"] for s in api.get("/api/v1/email-sequences?status=active").json()["results"]]
    assert names == ["A"]


def test_another_workspaces_sequence_is_invisible(api, other_sequence, template):
    assert api.get("/api/v1/email-sequences").json()["results"] == []
    url = f"/api/v1/email-sequences/{other_sequence.pk}"
    assert api.get(url).status_code == 404
    assert api.patch(url, {"name": "mine"}, format="json").status_code == 404
    assert api.put(url, payload(template), format="json").status_code == 404
    for action in ("activate", "pause", "archive"):
        assert api.post(f"{url}/{action}").status_code == 404
    assert api.delete(url).status_code == 404
    other_sequence.refresh_from_db()
    assert (other_sequence.name, other_sequence.status) == ("Theirs", "active")


def test_viewer_reads_sequences_but_cannot_change_them(client_for, workspace, active_sequence, template):
    viewer = client_for(workspace, Role.VIEWER)
    url = f"/api/v1/email-sequences/{active_sequence.pk}"
    assert viewer.get("/api/v1/email-sequences").status_code == 200
    assert viewer.get(url).status_code == 200
    assert viewer.post("/api/v1/email-sequences", payload(template), format="json").status_code == 403
    assert viewer.patch(url, {"name": "x"}, format="json").status_code == 403
    assert viewer.delete(url).status_code == 403
    for action in ("activate", "pause", "archive"):
        assert viewer.post(f"{url}/{action}").status_code == 403
    active_sequence.refresh_from_db()
    assert active_sequence.status == "active"


def test_idempotency_key_on_create_makes_one_sequence(api, template):
    body = payload(template)
    first = api.post("/api/v1/email-sequences", body, format="json", HTTP_IDEMPOTENCY_KEY="seq-1")
    again = api.post("/api/v1/email-sequences", body, format="json", HTTP_IDEMPOTENCY_KEY="seq-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert Sequence.objects.count() == 1
    changed = api.post(
        "/api/v1/email-sequences", {**body, "name": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY="seq-1"
    )
    assert changed.status_code == 409


def test_archiving_exits_enrollments_in_chunks_with_a_few_queries_each(
    workspace, active_sequence, monkeypatch, django_assert_max_num_queries
):
    from sequences import services

    monkeypatch.setattr(services, "ARCHIVE_CHUNK", 4)
    step = active_sequence.steps.first()
    enrollments = [EnrollmentFactory(sequence=active_sequence, current_step=step) for _ in range(10)]

    # 3 chunks of at most 4, each a locking read, an UPDATE and one events insert; a few more around them.
    with django_assert_max_num_queries(16):
        services.sequence_archive(workspace=workspace, sequence=active_sequence)

    assert Enrollment.objects.filter(pk__in=[e.pk for e in enrollments], status="exited").count() == 10
    assert Event.objects.filter(type=EventType.EXITED, sequence_id=active_sequence.pk).count() == 10
    assert set(Event.objects.values_list("step_id", flat=True)) == {step.pk}


@pytest.mark.parametrize("goal", ["sent", "enrolled", "goal"])
def test_a_goal_event_that_never_completes_an_enrollment_is_refused(api, goal):
    response = api.post("/api/v1/email-sequences", {"name": "Welcome", "goal_event": goal}, format="json")

    assert response.status_code == 400
    assert "goal_event" in response.json()["error"]["details"]
