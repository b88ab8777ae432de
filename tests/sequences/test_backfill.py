"""Backfill: a list's subscribed members enrolled by sequence_enroll's rules, in chunks, once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import timezone

from accounts.models import Role
from config.celery_app import app as celery_app
from sequences import scheduler, services
from sequences.models import Enrollment, EnrollmentStatus, Message, ReEntry, SequenceStatus
from subscribers.models import Event, EventType, ListMembership
from tests.factories import (
    EnrollmentFactory,
    MailingListFactory,
    SequenceFactory,
    StepFactory,
    SubscriberFactory,
    SuppressionFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_callbacks(monkeypatch):
    monkeypatch.setattr(scheduler, "_messages_callbacks", [])


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def mailing_list(workspace):
    return MailingListFactory(workspace=workspace, name="Customers")


def member(mailing_list, *, joined_days_ago=0, membership="subscribed", **fields):
    subscriber = SubscriberFactory(workspace=mailing_list.workspace, **fields)
    ListMembership.objects.create(
        mailing_list=mailing_list, subscriber=subscriber, status=membership,
        subscribed_at=timezone.now() - timedelta(days=joined_days_ago),
    )  # fmt: skip
    return subscriber


def backfill(api, sequence, mailing_list, **body):
    return api.post(
        f"/api/v1/email-sequences/{sequence.pk}/backfill", {"list_id": mailing_list.pk, **body}, format="json"
    )


def test_active_subscribed_members_are_enrolled_and_the_rest_skipped_by_reason(
    api, workspace, active_sequence, mailing_list
):
    fresh = [member(mailing_list) for _ in range(3)]
    already = member(mailing_list)
    EnrollmentFactory(sequence=active_sequence, subscriber=already)
    member(mailing_list, status="unsubscribed")
    member(mailing_list, status="bounced")
    member(mailing_list, email="blocked@example.org")
    SuppressionFactory(workspace=workspace, value="blocked@example.org")
    member(mailing_list, membership="unsubscribed")
    member(mailing_list, membership="pending")
    SubscriberFactory(workspace=workspace)  # not on the list

    response = backfill(api, active_sequence, mailing_list)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["queued"] is False and body["members"] == 7 and body["enrolled"] == 3
    assert body["skipped"] == {"already_enrolled": 1, "unsubscribed": 1, "bounced": 1, "suppressed": 1}
    first = active_sequence.steps.order_by("position").first()
    assert body["starting_steps"] == {str(first.pk): 3}
    new = Enrollment.objects.filter(source="backfill")
    assert {e.subscriber_id for e in new} == {s.pk for s in fresh}
    for enrollment in new:  # like sequence_enroll: the first step, after its delay (2 hours)
        assert enrollment.current_step_id == first.pk and enrollment.status == EnrollmentStatus.ACTIVE
        assert timezone.now() + timedelta(hours=1) < enrollment.next_run_at <= timezone.now() + timedelta(hours=2)
    events = Event.objects.filter(type=EventType.ENROLLED)
    assert {e.subscriber_id for e in events} == {s.pk for s in fresh}
    assert all(e.properties["source"] == "backfill" and e.step_id == first.pk for e in events)


def test_a_second_backfill_enrolls_no_one_twice(api, active_sequence, mailing_list):
    for _ in range(4):
        member(mailing_list)
    assert backfill(api, active_sequence, mailing_list).json()["enrolled"] == 4
    again = backfill(api, active_sequence, mailing_list).json()
    assert again["enrolled"] == 0 and again["skipped"] == {"already_enrolled": 4}
    assert Enrollment.objects.count() == 4
    assert Event.objects.filter(type=EventType.ENROLLED).count() == 4


@pytest.mark.parametrize(
    ("rule", "latest", "enrolled"),
    [
        (ReEntry.NEVER, "completed", 0), (ReEntry.AFTER_COMPLETION, "completed", 1),
        (ReEntry.AFTER_COMPLETION, "failed", 0), (ReEntry.ALWAYS, "exited", 1),
    ],
)  # fmt: skip
def test_the_re_entry_rule_is_respected(api, active_sequence, mailing_list, rule, latest, enrolled):
    active_sequence.re_entry = rule
    active_sequence.save()
    subscriber = member(mailing_list)
    EnrollmentFactory(sequence=active_sequence, subscriber=subscriber, status=latest)
    body = backfill(api, active_sequence, mailing_list).json()
    assert body["enrolled"] == enrolled
    assert body["skipped"] == ({} if enrolled else {"re_entry_blocked": 1})


def test_start_by_join_age_picks_the_last_step_whose_cumulative_delay_has_passed(workspace, mailing_list, template):
    # Steps wait 0 days, 3 days, 4 days: cumulative 0, 3, 7 days.
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    steps = [
        StepFactory(sequence=sequence, template=template, position=position, delay_value=days, delay_unit="days")
        for position, days in enumerate([0, 3, 4], start=1)
    ]
    newcomer = member(mailing_list, joined_days_ago=1)
    third_day = member(mailing_list, joined_days_ago=3)
    week = member(mailing_list, joined_days_ago=6)
    veteran = member(mailing_list, joined_days_ago=30)
    now = timezone.now()

    result = services.sequence_backfill_run(
        workspace=workspace, sequence_id=sequence.pk, list_id=mailing_list.pk, start_by_join_age=True, now=now
    )

    assert result.enrolled == 4
    started = {e.subscriber_id: (e.current_step_id, e.next_run_at) for e in Enrollment.objects.all()}
    assert started[newcomer.pk] == (steps[0].pk, now)
    assert started[third_day.pk] == (steps[1].pk, now)
    assert started[week.pk] == (steps[1].pk, now)
    assert started[veteran.pk] == (steps[2].pk, now)
    assert dict(result.starting_steps) == {steps[0].pk: 1, steps[1].pk: 2, steps[2].pk: 1}


def test_join_age_younger_than_the_first_delay_waits_for_it_from_the_join(workspace, mailing_list, template):
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    first = StepFactory(sequence=sequence, template=template, position=1, delay_value=2, delay_unit="days")
    StepFactory(sequence=sequence, template=template, position=2, delay_value=5, delay_unit="days")
    subscriber = member(mailing_list, joined_days_ago=1)
    joined_at = ListMembership.objects.get(subscriber=subscriber).subscribed_at
    services.sequence_backfill_run(
        workspace=workspace, sequence_id=sequence.pk, list_id=mailing_list.pk, start_by_join_age=True
    )
    enrollment = Enrollment.objects.get()
    assert (enrollment.current_step_id, enrollment.next_run_at) == (first.pk, joined_at + timedelta(days=2))


def test_a_due_now_start_is_processed_when_the_backfill_commits(
    workspace, mailing_list, template, eager_celery, django_capture_on_commit_callbacks
):
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    StepFactory(sequence=sequence, template=template, position=1, delay_value=0)
    member(mailing_list)
    with django_capture_on_commit_callbacks(execute=True):
        services.sequence_backfill(workspace=workspace, sequence=sequence, list_id=mailing_list.pk)
    assert Message.objects.count() == 1


def test_a_paused_sequence_is_backfilled_and_its_enrollments_wait(
    api, active_sequence, mailing_list, eager_celery, django_capture_on_commit_callbacks
):
    active_sequence.status = SequenceStatus.PAUSED
    active_sequence.save()
    member(mailing_list, joined_days_ago=10)
    with django_capture_on_commit_callbacks(execute=True):
        response = backfill(api, active_sequence, mailing_list, start_by_join_age=True)
    assert response.json()["enrolled"] == 1
    assert Message.objects.count() == 0  # due now, but the scheduler leaves a paused sequence alone


@pytest.mark.parametrize("status", [SequenceStatus.DRAFT, SequenceStatus.ARCHIVED])
def test_a_draft_or_archived_sequence_is_a_409(api, active_sequence, mailing_list, status):
    active_sequence.status = status
    active_sequence.save()
    member(mailing_list)
    response = backfill(api, active_sequence, mailing_list)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "sequence_not_active"
    assert status in response.json()["error"]["message"]
    assert Enrollment.objects.count() == 0


def test_a_dry_run_counts_and_writes_nothing(api, active_sequence, mailing_list):
    member(mailing_list)
    member(mailing_list, status="complained")
    body = backfill(api, active_sequence, mailing_list, dry_run=True).json()
    assert (body["dry_run"], body["enrolled"], body["skipped"]) == (True, 1, {"complained": 1})
    assert Enrollment.objects.count() == 0 and Event.objects.count() == 0


def test_members_are_read_in_chunks(workspace, active_sequence, mailing_list, monkeypatch):
    monkeypatch.setattr(services, "BACKFILL_CHUNK", 2)
    subscribers = [member(mailing_list) for _ in range(5)]
    result = services.sequence_backfill_run(
        workspace=workspace, sequence_id=active_sequence.pk, list_id=mailing_list.pk
    )
    assert result.enrolled == 5 and result.members == 5
    assert set(Enrollment.objects.values_list("subscriber_id", flat=True)) == {s.pk for s in subscribers}


def test_a_list_over_the_sync_limit_goes_to_a_worker_and_answers_202(
    api, active_sequence, mailing_list, eager_celery, django_capture_on_commit_callbacks
):
    for _ in range(3):
        member(mailing_list)
    with override_settings(SEQUENCE_BACKFILL_SYNC_LIMIT=2), django_capture_on_commit_callbacks() as callbacks:
        response = backfill(api, active_sequence, mailing_list)
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["queued"], body["members"], body["enrolled"]) == (True, 3, 0)
    assert Enrollment.objects.count() == 0
    for callback in callbacks:  # the commit: the (eager) task enrolls them
        callback()
    assert Enrollment.objects.filter(source="backfill").count() == 3


def test_the_idempotency_key_replays_the_first_answer(api, active_sequence, mailing_list):
    member(mailing_list)
    first = api.post(
        f"/api/v1/email-sequences/{active_sequence.pk}/backfill", {"list_id": mailing_list.pk}, format="json",
        HTTP_IDEMPOTENCY_KEY="backfill-1",
    )  # fmt: skip
    second = api.post(
        f"/api/v1/email-sequences/{active_sequence.pk}/backfill", {"list_id": mailing_list.pk}, format="json",
        HTTP_IDEMPOTENCY_KEY="backfill-1",
    )  # fmt: skip
    assert first.json()["enrolled"] == 1 and second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"


def test_another_workspaces_list_is_a_400_naming_list_id(api, active_sequence, other_workspace):
    theirs = MailingListFactory(workspace=other_workspace)
    response = backfill(api, active_sequence, theirs)
    assert response.status_code == 400
    assert "list_id" in response.json()["error"]["details"]


def test_another_workspaces_sequence_is_a_404(other_api, active_sequence, mailing_list):
    member(mailing_list)
    assert backfill(other_api, active_sequence, mailing_list).status_code == 404
    assert Enrollment.objects.count() == 0


@pytest.mark.parametrize(("role", "code"), [(Role.VIEWER, 403), (Role.MARKETER, 200), (Role.ADMIN, 200)])
def test_backfill_needs_a_write_role(client_for, workspace, active_sequence, mailing_list, role, code):
    member(mailing_list)
    response = backfill(client_for(workspace, role), active_sequence, mailing_list)
    assert response.status_code == code
    assert Enrollment.objects.count() == (1 if code == 200 else 0)


# The admin action


@pytest.fixture
def admin_client(db):
    user = get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw-123456789")
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_action_asks_for_a_list_of_the_sequences_workspace_then_backfills(
    admin_client, active_sequence, mailing_list, other_workspace
):
    MailingListFactory(workspace=other_workspace, name="Not theirs")
    member(mailing_list)
    member(mailing_list, status="bounced")
    selected = {"action": "backfill_from_list", "_selected_action": [active_sequence.pk]}

    form = admin_client.post("/admin/sequences/sequence/", selected)
    page = form.content.decode()
    assert form.status_code == 200 and "Customers" in page and "Not theirs" not in page
    assert Enrollment.objects.count() == 0

    done = admin_client.post(
        "/admin/sequences/sequence/", {**selected, "apply": "1", "mailing_list": mailing_list.pk}, follow=True
    )
    assert "1 of 2 members enrolled; skipped: 1 bounced." in done.content.decode()
    assert Enrollment.objects.filter(source="backfill").count() == 1


def test_the_admin_action_shows_why_a_draft_is_refused(admin_client, active_sequence, mailing_list):
    active_sequence.status = SequenceStatus.DRAFT
    active_sequence.save()
    member(mailing_list)
    response = admin_client.post(
        "/admin/sequences/sequence/",
        {"action": "backfill_from_list", "_selected_action": [active_sequence.pk], "apply": "1",
         "mailing_list": mailing_list.pk},
        follow=True,
    )  # fmt: skip
    assert "only an active or paused sequence can be backfilled" in response.content.decode()
    assert Enrollment.objects.count() == 0


def test_an_enrollment_made_meanwhile_wins_and_the_rest_of_the_chunk_still_goes_in(workspace, active_sequence):
    """The insert falls back to one by one when a concurrent enroll took one of the subscribers."""
    first = active_sequence.steps.order_by("position").first()
    taken, free = SubscriberFactory(workspace=workspace), SubscriberFactory(workspace=workspace)
    EnrollmentFactory(sequence=active_sequence, subscriber=taken, current_step=first)
    new = [
        Enrollment(workspace=workspace, sequence=active_sequence, subscriber=subscriber, current_step=first)
        for subscriber in (taken, free)
    ]
    created = services._enrollments_create(new)
    assert [e.subscriber_id for e in created] == [free.pk]
    assert Enrollment.objects.filter(subscriber=taken).count() == 1
