"""A sequence's audience list: only its subscribed members are enrolled, and the scheduler exits who left it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import ValidationFailed
from sequences import scheduler, services
from sequences.admin import SequenceAdminForm
from sequences.dryrun import sequence_dry_run
from sequences.models import Enrollment, EnrollmentStatus, Message, Sequence, SequenceStatus
from sequences.scheduler import LEFT_LIST_REASON, enrollments_process_due
from subscribers.models import Event, EventType, ListMembership, MembershipStatus
from subscribers.services import list_membership_add, list_membership_remove
from tests.factories import MailingListFactory, SequenceFactory, StepFactory, SubscriberFactory, TemplateFactory

pytestmark = pytest.mark.django_db

MONDAY = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _own_callbacks(monkeypatch):
    """The scheduler runs here: hand nothing to the sender's broker queue."""
    monkeypatch.setattr(scheduler, "_messages_callbacks", [])


@pytest.fixture
def mailing_list(workspace):
    return MailingListFactory(workspace=workspace, name="Customers")


@pytest.fixture
def listed_sequence(workspace, mailing_list) -> Sequence:
    """An active sequence of two steps (1 hour, then 2 days) for the members of `mailing_list`."""
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE, mailing_list=mailing_list)
    template = TemplateFactory(workspace=workspace)
    StepFactory(sequence=sequence, template=template, position=1, delay_value=1, delay_unit="hours")
    StepFactory(sequence=sequence, template=template, position=2, delay_value=2, delay_unit="days")
    return sequence


def member(workspace, mailing_list, **fields):
    subscriber = SubscriberFactory(workspace=workspace, **fields)
    membership, _ = list_membership_add(workspace=workspace, subscriber=subscriber, mailing_list=mailing_list)
    assert membership.status == MembershipStatus.SUBSCRIBED
    return subscriber


def enroll(sequence, *subscribers):
    results = services.sequence_enroll(
        workspace=sequence.workspace, sequence=sequence, subscriber_ids=[s.pk for s in subscribers]
    )
    return {result.subscriber_id: result.status for result in results}


# The field, through the API and the admin


def test_a_sequence_is_created_and_updated_with_a_list_and_the_list_can_be_cleared(api, workspace, mailing_list):
    template = TemplateFactory(workspace=workspace)
    body = {"name": "Members only", "mailing_list_id": mailing_list.pk, "steps": [{"template": template.pk}]}
    response = api.post("/api/v1/email-sequences", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["mailing_list_id"] == mailing_list.pk
    url = f"/api/v1/email-sequences/{response.json()['id']}"

    second = MailingListFactory(workspace=workspace)
    assert api.patch(url, {"mailing_list_id": second.pk}, format="json").json()["mailing_list_id"] == second.pk
    assert api.patch(url, {"name": "Renamed"}, format="json").json()["mailing_list_id"] == second.pk
    assert api.patch(url, {"mailing_list_id": None}, format="json").json()["mailing_list_id"] is None
    assert Sequence.objects.get(pk=response.json()["id"]).mailing_list_id is None


def test_another_workspaces_list_or_a_missing_one_is_a_400_naming_the_field(api, workspace, other_workspace):
    theirs = MailingListFactory(workspace=other_workspace)
    template = TemplateFactory(workspace=workspace)
    for list_id in (theirs.pk, theirs.pk + 1000):
        body = {"name": "Members only", "mailing_list_id": list_id, "steps": [{"template": template.pk}]}
        response = api.post("/api/v1/email-sequences", body, format="json")
        assert response.status_code == 400, response.content
        assert list(response.json()["error"]["details"]) == ["mailing_list_id"]
    sequence = SequenceFactory(workspace=workspace)
    response = api.patch(f"/api/v1/email-sequences/{sequence.pk}", {"mailing_list_id": theirs.pk}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["mailing_list_id"]
    sequence.refresh_from_db()
    assert sequence.mailing_list_id is None


def test_the_service_refuses_a_list_id_that_is_not_an_id(workspace):
    with pytest.raises(ValidationFailed) as caught:
        services.sequence_create(workspace=workspace, name="X", mailing_list_id="1")
    assert list(caught.value.details) == ["mailing_list_id"]


def test_the_admin_form_offers_only_the_workspaces_lists_and_refuses_another(workspace, other_workspace, mailing_list):
    theirs = MailingListFactory(workspace=other_workspace)
    sequence = SequenceFactory(workspace=workspace)
    form = SequenceAdminForm(instance=sequence)
    assert list(form.fields["mailing_list"].queryset) == [mailing_list]

    data = {
        "workspace": workspace.pk, "name": "Members", "description": "", "send_days": "[0, 1, 2, 3, 4, 5, 6]",
        "send_start_hour": 0, "send_end_hour": 24, "re_entry": "never", "goal_event": "",
    }  # fmt: skip
    assert SequenceAdminForm(data={**data, "mailing_list": mailing_list.pk}).is_valid()
    form = SequenceAdminForm(data={**data, "mailing_list": theirs.pk})
    assert not form.is_valid()
    assert "mailing_list" in form.errors


# Enrolling


def test_only_subscribed_members_of_the_list_are_enrolled(workspace, mailing_list, listed_sequence):
    on_list = member(workspace, mailing_list)
    never_added = SubscriberFactory(workspace=workspace)
    left = member(workspace, mailing_list)
    list_membership_remove(workspace=workspace, subscriber=left, mailing_list=mailing_list)
    # Confirmed on another list, pending on the sequence's (a double opt-in list): not awaiting
    # confirmation as a subscriber, and still not a member of this list.
    member(workspace, MailingListFactory(workspace=workspace), email="pending@example.org")
    pending = SubscriberFactory._meta.model.objects.get(email="pending@example.org")
    ListMembership.objects.create(mailing_list=mailing_list, subscriber=pending, status=MembershipStatus.PENDING)

    outcomes = enroll(listed_sequence, on_list, never_added, left, pending)
    assert outcomes == {
        on_list.pk: "enrolled", never_added.pk: "not_on_list", left.pk: "not_on_list", pending.pk: "not_on_list",
    }  # fmt: skip
    assert set(Enrollment.objects.values_list("subscriber_id", flat=True)) == {on_list.pk}


def test_a_sequence_without_a_list_enrolls_anyone_active(workspace, mailing_list, listed_sequence):
    listed_sequence.mailing_list = None
    listed_sequence.save()
    assert enroll(listed_sequence, SubscriberFactory(workspace=workspace)).popitem()[1] == "enrolled"


def test_the_api_counts_not_on_list(api, workspace, mailing_list, listed_sequence):
    on_list, off = member(workspace, mailing_list), SubscriberFactory(workspace=workspace)
    response = api.post(
        f"/api/v1/email-sequences/{listed_sequence.pk}/enroll", {"subscriber_ids": [on_list.pk, off.pk]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["counts"] == {"enrolled": 1, "not_on_list": 1}


# The scheduler


def test_the_scheduler_exits_whoever_left_the_list_and_sends_to_the_members(workspace, mailing_list, listed_sequence):
    stays, leaves = member(workspace, mailing_list), member(workspace, mailing_list)
    assert set(enroll(listed_sequence, stays, leaves).values()) == {"enrolled"}
    list_membership_remove(workspace=workspace, subscriber=leaves, mailing_list=mailing_list)

    result = enrollments_process_due(now=MONDAY + timedelta(days=400))

    assert (result.claimed, result.exited, result.messages_created) == (2, 1, 1)
    gone = Enrollment.objects.get(subscriber=leaves)
    assert (gone.status, gone.exit_reason, gone.next_run_at) == (EnrollmentStatus.EXITED, LEFT_LIST_REASON, None)
    event = Event.objects.get(subscriber=leaves, type=EventType.EXITED)
    assert event.properties == {"enrollment_id": gone.pk, "reason": "left the list"}
    assert event.sequence_id == listed_sequence.pk
    assert list(Message.objects.values_list("subscriber_id", flat=True)) == [stays.pk]
    assert Enrollment.objects.get(subscriber=stays).status == EnrollmentStatus.ACTIVE


def test_a_member_who_rejoins_before_the_tick_is_not_exited(workspace, mailing_list, listed_sequence):
    subscriber = member(workspace, mailing_list)
    enroll(listed_sequence, subscriber)
    list_membership_remove(workspace=workspace, subscriber=subscriber, mailing_list=mailing_list)
    list_membership_add(workspace=workspace, subscriber=subscriber, mailing_list=mailing_list)

    result = enrollments_process_due(now=MONDAY + timedelta(days=400))

    assert (result.exited, result.messages_created) == (0, 1)


def test_the_list_of_one_sequence_does_not_affect_another_in_the_same_batch(workspace, mailing_list, listed_sequence):
    subscriber = member(workspace, mailing_list)
    unlisted = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    StepFactory(sequence=unlisted, template=TemplateFactory(workspace=workspace), position=1, delay_value=0)
    enroll(listed_sequence, subscriber)
    enroll(unlisted, subscriber)
    list_membership_remove(workspace=workspace, subscriber=subscriber, mailing_list=mailing_list)

    enrollments_process_due(now=MONDAY + timedelta(days=400))

    by_sequence = dict(Enrollment.objects.values_list("sequence_id", "exit_reason"))
    assert by_sequence == {listed_sequence.pk: LEFT_LIST_REASON, unlisted.pk: ""}
    assert list(Message.objects.values_list("enrollment__sequence_id", flat=True)) == [unlisted.pk]


# The dry run


def test_the_dry_run_reports_left_list(workspace, mailing_list, listed_sequence):
    stays, leaves = member(workspace, mailing_list), member(workspace, mailing_list)
    enroll(listed_sequence, stays, leaves)
    list_membership_remove(workspace=workspace, subscriber=leaves, mailing_list=mailing_list)

    result = sequence_dry_run(workspace=workspace, sequence=listed_sequence, days=30)

    assert result.blocked == {"left_list": 1}
    assert {row.subscriber_id for row in result.rows} == {stays.pk}


# Backfill


def test_backfill_without_a_list_takes_the_sequences_own(api, workspace, mailing_list, listed_sequence):
    members = [member(workspace, mailing_list) for _ in range(2)]
    SubscriberFactory(workspace=workspace)  # not on the list: not enrolled

    response = api.post(f"/api/v1/email-sequences/{listed_sequence.pk}/backfill", {}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["list_id"], body["members"], body["enrolled"]) == (mailing_list.pk, 2, 2)
    assert set(Enrollment.objects.values_list("subscriber_id", flat=True)) == {s.pk for s in members}


def test_backfill_without_a_list_of_a_sequence_without_one_is_a_400_naming_list_id(api, workspace, listed_sequence):
    listed_sequence.mailing_list = None
    listed_sequence.save()
    response = api.post(f"/api/v1/email-sequences/{listed_sequence.pk}/backfill", {}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["list_id"]


def test_backfill_from_another_list_skips_who_is_not_on_the_sequences_list(workspace, mailing_list, listed_sequence):
    other = MailingListFactory(workspace=workspace)
    both = member(workspace, mailing_list)
    list_membership_add(workspace=workspace, subscriber=both, mailing_list=other)
    only_other = member(workspace, other)

    result = services.sequence_backfill(workspace=workspace, sequence=listed_sequence, list_id=other.pk)

    assert (result.members, result.enrolled, dict(result.skipped)) == (2, 1, {"not_on_list": 1})
    assert set(Enrollment.objects.values_list("subscriber_id", flat=True)) == {both.pk}
    assert not Enrollment.objects.filter(subscriber=only_other).exists()


def test_a_list_that_is_a_sequences_audience_cannot_be_deleted(api, listed_sequence, mailing_list):
    response = api.delete(f"/api/v1/lists/{mailing_list.pk}")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "list_in_use"
    assert listed_sequence.name in response.json()["error"]["message"]
    listed_sequence.refresh_from_db()
    assert listed_sequence.mailing_list_id == mailing_list.pk

    # Once the sequence has no list, the list goes.
    cleared = api.patch(f"/api/v1/email-sequences/{listed_sequence.pk}", {"mailing_list_id": None}, format="json")
    assert cleared.status_code == 200
    assert api.delete(f"/api/v1/lists/{mailing_list.pk}").status_code == 204
