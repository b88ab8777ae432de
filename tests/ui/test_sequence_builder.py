"""The sequence builder (fields and steps through the services) and the dry run page."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import Role
from sequences.models import Sequence, SequenceStatus, Step
from tests.factories import (
    EnrollmentFactory,
    MailingListFactory,
    SequenceFactory,
    StepFactory,
    SubscriberFactory,
    TemplateFactory,
)

pytestmark = pytest.mark.django_db

FIELDS = {
    "name": "Welcome", "description": "Onboarding", "send_days": ["0", "2", "4"], "send_start_hour": "9",
    "send_end_hour": "17", "goal_event": "purchased", "re_entry": "never", "mailing_list": "",
}  # fmt: skip


def steps_of(sequence: Sequence) -> list[Step]:
    return list(Step.objects.filter(sequence=sequence).order_by("position"))


def test_new_sequence_page_renders_and_creates_through_the_form(ui_client, workspace):
    client = ui_client()
    page = client.get("/app/sequences/new/")
    assert page.status_code == 200
    assert b'<label for="id_name"' in page.content and b"builder.css" in page.content
    mailing_list = MailingListFactory(workspace=workspace)
    response = client.post("/app/sequences/new/", {**FIELDS, "mailing_list": str(mailing_list.pk)})
    sequence = Sequence.objects.get(workspace=workspace, name="Welcome")
    assert response.status_code == 302 and response["Location"] == f"/app/sequences/{sequence.pk}/edit/"
    assert sequence.send_days == [0, 2, 4] and (sequence.send_start_hour, sequence.send_end_hour) == (9, 17)
    assert sequence.goal_event == "purchased" and sequence.mailing_list_id == mailing_list.pk
    assert sequence.status == SequenceStatus.DRAFT


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"send_start_hour": "17", "send_end_hour": "9"}, "send_end_hour", b"must start before it ends"),
        ({"send_days": []}, "send_days", b"at least one day"),
        ({"goal_event": "enrolled"}, "goal_event", b"never complete an enrollment"),
        ({"name": "  "}, "name", b"This field is required"),
        ({"re_entry": "sometimes"}, "re_entry", b"Select a valid choice"),
    ],
)
def test_service_validation_errors_are_shown_on_the_field(ui_client, workspace, change, field, text):
    response = ui_client().post("/app/sequences/new/", {**FIELDS, **change})
    assert response.status_code == 400
    assert text in response.content
    assert text.decode() in " ".join(response.context["form"].errors[field])
    assert not Sequence.objects.filter(workspace=workspace).exists()


def test_edit_saves_fields_through_sequence_update(ui_client, workspace):
    sequence = SequenceFactory(workspace=workspace, name="Old")
    client = ui_client()
    page = client.get(f"/app/sequences/{sequence.pk}/edit/")
    assert page.status_code == 200 and b'value="Old"' in page.content
    response = client.post(f"/app/sequences/{sequence.pk}/edit/", {**FIELDS, "name": "New name", "re_entry": "always"})
    assert response.status_code == 302
    sequence.refresh_from_db()
    assert sequence.name == "New name" and sequence.re_entry == "always" and sequence.send_days == [0, 2, 4]


def test_another_workspaces_list_is_refused_on_the_field(ui_client, workspace, other_workspace):
    foreign = MailingListFactory(workspace=other_workspace)
    response = ui_client().post("/app/sequences/new/", {**FIELDS, "mailing_list": str(foreign.pk)})
    assert response.status_code == 400 and response.context["form"].errors["mailing_list"]


def test_archived_sequence_edit_shows_the_conflict_without_a_500(ui_client, workspace):
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ARCHIVED)
    response = ui_client().post(f"/app/sequences/{sequence.pk}/edit/", FIELDS)
    assert response.status_code == 400 and b"archived sequence cannot be changed" in response.content


def test_steps_add_edit_move_and_delete(ui_client, workspace):
    sequence = SequenceFactory(workspace=workspace)
    first, second = (
        TemplateFactory(workspace=workspace, name="First"),
        TemplateFactory(workspace=workspace, name="Second"),
    )
    client = ui_client()
    base = f"/app/sequences/{sequence.pk}"
    add = {"new-template": first.pk, "new-name": "", "new-delay_value": "0", "new-delay_unit": "days"}
    assert client.post(f"{base}/steps/", add).status_code == 302
    add.update({"new-template": second.pk, "new-delay_value": "2", "new-delay_unit": "hours"})
    assert client.post(f"{base}/steps/", add).status_code == 302
    a, b = steps_of(sequence)
    assert (a.template_id, b.template_id, b.delay_value, b.delay_unit) == (first.pk, second.pk, 2, "hours")

    page = client.get(f"{base}/edit/")
    assert b"Step 2: Second" in page.content and f'for="id_s{b.pk}-template"'.encode() in page.content

    edit = {
        f"s{a.pk}-template": second.pk,
        f"s{a.pk}-name": "Hello",
        f"s{a.pk}-delay_value": "3",
        f"s{a.pk}-delay_unit": "weeks",
    }
    assert client.post(f"{base}/steps/{a.pk}/", edit).status_code == 302
    a.refresh_from_db()
    assert (a.template_id, a.name, a.delay_value, a.delay_unit) == (second.pk, "Hello", 3, "weeks")

    assert client.post(f"{base}/steps/{b.pk}/move/up").status_code == 302
    assert [s.pk for s in steps_of(sequence)] == [b.pk, a.pk]
    assert client.post(f"{base}/steps/{b.pk}/move/up").status_code == 302  # already first: unchanged
    assert [s.pk for s in steps_of(sequence)] == [b.pk, a.pk]
    assert client.post(f"{base}/steps/{b.pk}/move/down").status_code == 302
    assert [s.pk for s in steps_of(sequence)] == [a.pk, b.pk]
    assert client.post(f"{base}/steps/{b.pk}/move/sideways").status_code == 404

    assert client.post(f"{base}/steps/{a.pk}/delete").status_code == 302
    assert [s.pk for s in steps_of(sequence)] == [b.pk] and steps_of(sequence)[0].position == 1


def test_step_errors_are_shown_on_the_step_field(ui_client, workspace, other_workspace):
    sequence = SequenceFactory(workspace=workspace)
    TemplateFactory(workspace=workspace)
    foreign = TemplateFactory(workspace=other_workspace)
    client = ui_client()
    base = f"/app/sequences/{sequence.pk}"
    bad = {"new-template": foreign.pk, "new-delay_value": "1", "new-delay_unit": "days"}
    response = client.post(f"{base}/steps/", bad)
    assert response.status_code == 400 and response.context["step_form"].errors["template"]
    own = TemplateFactory(workspace=workspace)
    too_long = {"new-template": own.pk, "new-delay_value": "9999", "new-delay_unit": "weeks"}
    response = client.post(f"{base}/steps/", too_long)
    assert response.status_code == 400
    assert "at most 3660 days" in " ".join(response.context["step_form"].errors["delay_value"])
    assert not Step.objects.filter(sequence=sequence).exists()


def test_last_step_of_an_active_sequence_cannot_be_deleted(ui_client, workspace):
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    step = StepFactory(sequence=sequence, position=1)
    client = ui_client()
    response = client.post(f"/app/sequences/{sequence.pk}/steps/{step.pk}/delete", follow=True)
    assert response.status_code == 200 and b"keeps at least one step" in response.content
    assert Step.objects.filter(pk=step.pk).exists()


def test_viewer_reads_but_cannot_post(ui_client, workspace):
    sequence = SequenceFactory(workspace=workspace, name="Keep")
    step = StepFactory(sequence=sequence, position=1)
    client = ui_client(Role.VIEWER)
    page = client.get(f"/app/sequences/{sequence.pk}/edit/")
    assert page.status_code == 200 and b"Save step" not in page.content and b"Add step" not in page.content
    base = f"/app/sequences/{sequence.pk}"
    for path in ["/app/sequences/new/", f"{base}/edit/", f"{base}/steps/", f"{base}/steps/{step.pk}/",
                 f"{base}/steps/{step.pk}/delete", f"{base}/steps/{step.pk}/move/up"]:  # fmt: skip
        assert client.post(path, {**FIELDS, "name": "Changed"}).status_code == 403, path
    sequence.refresh_from_db()
    assert sequence.name == "Keep" and Step.objects.filter(pk=step.pk).exists()
    assert not Sequence.objects.exclude(pk=sequence.pk).exists()


def test_another_workspaces_sequence_and_step_answer_404(ui_client, workspace, other_workspace):
    foreign = SequenceFactory(workspace=other_workspace, name="Theirs")
    foreign_step = StepFactory(sequence=foreign, position=1)
    mine = SequenceFactory(workspace=workspace)
    client = ui_client(Role.OWNER)
    assert client.get(f"/app/sequences/{foreign.pk}/edit/").status_code == 404
    assert client.get(f"/app/sequences/{foreign.pk}/dry-run/").status_code == 404
    assert client.post(f"/app/sequences/{foreign.pk}/edit/", FIELDS).status_code == 404
    assert client.post(f"/app/sequences/{foreign.pk}/steps/{foreign_step.pk}/delete").status_code == 404
    # Their step under my sequence's URL is not found either.
    assert client.post(f"/app/sequences/{mine.pk}/steps/{foreign_step.pk}/delete").status_code == 404
    assert client.post(f"/app/sequences/{mine.pk}/steps/{foreign_step.pk}/move/up").status_code == 404
    foreign.refresh_from_db()
    assert foreign.name == "Theirs" and Step.objects.filter(pk=foreign_step.pk).exists()


def test_csrf_is_enforced(ui_client, workspace):
    sequence = SequenceFactory(workspace=workspace)
    client = ui_client(enforce_csrf_checks=True)
    assert client.post("/app/sequences/new/", FIELDS).status_code == 403
    assert client.post(f"/app/sequences/{sequence.pk}/edit/", FIELDS).status_code == 403
    page = client.get("/app/sequences/new/")
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else client.cookies["csrftoken"].value
    assert client.post("/app/sequences/new/", {**FIELDS, "csrfmiddlewaretoken": token}).status_code == 302


def test_sequence_list_links_to_the_builder(ui_client, workspace):
    sequence = SequenceFactory(workspace=workspace)
    content = ui_client().get("/app/sequences/").content
    assert f'href="/app/sequences/{sequence.pk}/edit/"'.encode() in content and b'href="/app/sequences/new/"' in content


def test_dry_run_lists_who_gets_which_email_and_pages(ui_client, workspace, settings):
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    template = TemplateFactory(workspace=workspace, name="Welcome mail", subject="Hi there")
    step = StepFactory(sequence=sequence, template=template, position=1, delay_value=0)
    now = timezone.now()
    subscribers = [SubscriberFactory(workspace=workspace, email=f"p{n:03d}@example.org") for n in range(105)]
    for subscriber in subscribers:
        EnrollmentFactory(sequence=sequence, subscriber=subscriber, current_step=step, next_run_at=now, enrolled_at=now)
    client = ui_client(Role.VIEWER)  # reading a plan is a read
    page = client.get(f"/app/sequences/{sequence.pk}/dry-run/")
    assert page.status_code == 200
    assert page.context["result"].enrollments_examined == 105 and len(page.context["result"].rows) == 105
    assert b"p000@example.org" in page.content and b"Welcome mail" in page.content and b"Page 1 of 2" in page.content
    second = client.get(f"/app/sequences/{sequence.pk}/dry-run/?days=7&page=2")
    assert second.status_code == 200 and second.context["page"].object_list[0].email == "p100@example.org"
    assert b"p104@example.org" in second.content and b"p000@example.org" not in second.content


@pytest.mark.parametrize("query", ["days=0", "days=91", "days=x", "after=-1", f"after={2**63}", f"days={10**30}"])
def test_dry_run_bad_input_is_shown_on_the_field(ui_client, workspace, query):
    sequence = SequenceFactory(workspace=workspace)
    response = ui_client().get(f"/app/sequences/{sequence.pk}/dry-run/?{query}")
    assert response.status_code == 400 and response.context["form"].errors


def test_dry_run_of_a_draft_without_steps_or_enrollments_renders(ui_client, workspace):
    sequence = SequenceFactory(workspace=workspace)
    response = ui_client().get(f"/app/sequences/{sequence.pk}/dry-run/?days=3&page=zz")
    assert response.status_code == 200 and b"No email would go out" in response.content
    assert response.context["result"].enrollments_examined == 0


def test_out_of_range_ids_answer_400_or_404_never_500(ui_client, workspace):
    sequence = SequenceFactory(workspace=workspace)
    TemplateFactory(workspace=workspace)
    client = ui_client()
    huge = 2**70
    assert client.get(f"/app/sequences/{huge}/edit/").status_code == 404
    assert client.post(f"/app/sequences/{sequence.pk}/steps/{huge}/delete").status_code == 404
    response = client.post("/app/sequences/new/", {**FIELDS, "mailing_list": str(huge)})
    assert response.status_code == 400 and response.context["form"].errors["mailing_list"]
    add = {"new-template": str(huge), "new-delay_value": str(huge), "new-delay_unit": "days"}
    response = client.post(f"/app/sequences/{sequence.pk}/steps/", add)
    assert response.status_code == 400 and response.context["step_form"].errors["template"]


def test_dry_run_shows_each_subject_as_its_subscriber_will_read_it(ui_client, workspace):
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    greeting = TemplateFactory(workspace=workspace, subject="Hi {{ subscriber.first_name }}")
    follow_up = TemplateFactory(workspace=workspace, subject="Your size: {{ subscriber.attributes.size|upper }}")
    first = StepFactory(sequence=sequence, template=greeting, position=1, delay_value=0)
    StepFactory(sequence=sequence, template=follow_up, position=2, delay_value=1, delay_unit="days")
    now = timezone.now()
    for name, size in (("Ada", "m"), ("Grace", "xl")):
        subscriber = SubscriberFactory(workspace=workspace, first_name=name, attributes={"size": size})
        EnrollmentFactory(
            sequence=sequence, subscriber=subscriber, current_step=first, next_run_at=now, enrolled_at=now
        )

    page = ui_client(Role.VIEWER).get(f"/app/sequences/{sequence.pk}/dry-run/")

    assert sorted(subject for _, subject in page.context["rows"]) == [
        "Hi Ada", "Hi Grace", "Your size: M", "Your size: XL",
    ]  # fmt: skip
    assert "{{ subscriber" not in page.content.decode()
