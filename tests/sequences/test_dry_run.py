"""Dry run: who would get which email and when, by the scheduler's own rules, with nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from core.errors import NotFound
from sequences import dryrun, scheduler
from sequences.dryrun import sequence_dry_run
from sequences.models import Enrollment, Message, SequenceStatus
from sequences.scheduler import enrollments_process_due
from subscribers.models import Event
from subscribers.services import event_record
from tests.factories import (
    EnrollmentFactory,
    SequenceFactory,
    StepFactory,
    SubscriberFactory,
    SuppressionFactory,
    TemplateFactory,
)

pytestmark = pytest.mark.django_db

MONDAY = datetime(2026, 6, 1, 12, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _own_callbacks(monkeypatch):
    """The scheduler runs in some of these tests: hand nothing to the sender's broker queue."""
    monkeypatch.setattr(scheduler, "_messages_callbacks", [])


def sequence_of(workspace, *delays, **fields):
    """A sequence whose steps wait these (value, unit) delays, each with its own template."""
    fields.setdefault("status", SequenceStatus.ACTIVE)
    sequence = SequenceFactory(workspace=workspace, **fields)
    for position, (value, unit) in enumerate(delays, start=1):
        template = TemplateFactory(workspace=workspace, name=f"Email {position}", subject=f"Subject {position}")
        StepFactory(sequence=sequence, template=template, position=position, delay_value=value, delay_unit=unit)
    return sequence


def enrolled(sequence, *, at, subscriber=None, step=1, **fields):
    """An active enrollment at step `step` (1-based), due at `at`."""
    current = sequence.steps.order_by("position")[step - 1]
    subscriber = subscriber or SubscriberFactory(workspace=sequence.workspace)
    return EnrollmentFactory(
        sequence=sequence,
        subscriber=subscriber,
        current_step=current,
        next_run_at=at,
        enrolled_at=at or MONDAY,
        **fields,
    )


def plan(sequence, **kwargs):
    kwargs.setdefault("now", MONDAY)
    return sequence_dry_run(workspace=sequence.workspace, sequence=sequence, **kwargs)


def times(result, subscriber=None):
    return [row.planned_at for row in result.rows if subscriber is None or row.subscriber_id == subscriber.pk]


# The timeline


def test_each_remaining_step_is_planned_after_its_delay_counted_from_the_previous_send(workspace):
    sequence = sequence_of(workspace, (2, "hours"), (3, "days"), (1, "weeks"))
    subscriber = SubscriberFactory(workspace=workspace, email="ada@example.org")
    enrolled(sequence, at=MONDAY + timedelta(hours=2), subscriber=subscriber)

    result = plan(sequence, days=14)

    assert times(result) == [utc(2026, 6, 1, 14), utc(2026, 6, 4, 14), utc(2026, 6, 11, 14)]
    assert [(row.position, row.template_name, row.subject) for row in result.rows] == [
        (1, "Email 1", "Subject 1"), (2, "Email 2", "Subject 2"), (3, "Email 3", "Subject 3"),
    ]  # fmt: skip
    assert {(row.subscriber_id, row.email) for row in result.rows} == {(subscriber.pk, "ada@example.org")}


def test_steps_beyond_the_horizon_are_left_out(workspace):
    sequence = sequence_of(workspace, (0, "days"), (3, "days"), (20, "days"))
    enrolled(sequence, at=MONDAY)
    assert times(plan(sequence, days=7)) == [MONDAY, MONDAY + timedelta(days=3)]
    assert times(plan(sequence, days=1)) == [MONDAY]


def test_an_enrollment_at_a_later_step_walks_only_what_remains(workspace):
    sequence = sequence_of(workspace, (0, "days"), (1, "days"), (1, "days"))
    enrolled(sequence, at=MONDAY + timedelta(hours=5), step=2)
    result = plan(sequence)
    assert [row.position for row in result.rows] == [2, 3]
    assert times(result) == [MONDAY + timedelta(hours=5), MONDAY + timedelta(days=1, hours=5)]


def test_an_overdue_enrollment_is_planned_now(workspace):
    sequence = sequence_of(workspace, (1, "days"))
    enrolled(sequence, at=MONDAY - timedelta(days=2))
    assert times(plan(sequence)) == [MONDAY]


def test_the_send_window_and_the_subscribers_zone_move_a_send_to_the_next_opening(workspace):
    # Weekdays 9-17 in New York (UTC-4 in June): due Friday 20:00 local, the opening is Monday 09:00 local.
    sequence = sequence_of(workspace, (0, "days"), (2, "hours"), send_days=[0, 1, 2, 3, 4], send_start_hour=9,
                           send_end_hour=17)  # fmt: skip
    subscriber = SubscriberFactory(workspace=workspace, time_zone="America/New_York")
    enrolled(sequence, at=utc(2026, 6, 6, 0), subscriber=subscriber)  # Friday 20:00 in New York

    result = plan(sequence, now=utc(2026, 6, 5, 12))

    assert times(result) == [utc(2026, 6, 8, 13), utc(2026, 6, 8, 15)]
    first = result.rows[0]
    assert first.time_zone == "America/New_York"
    assert first.local_at.isoformat() == "2026-06-08T09:00:00-04:00"


def test_quiet_hours_of_the_workspace_hold_a_send_until_they_end(workspace):
    workspace.quiet_hours_start, workspace.quiet_hours_end = 21, 8
    workspace.time_zone = "Europe/Berlin"
    workspace.save()
    sequence = sequence_of(workspace, (0, "days"), (12, "hours"))
    enrolled(sequence, at=utc(2026, 6, 1, 20))  # 22:00 in Berlin (UTC+2): quiet until 08:00
    result = plan(sequence, now=utc(2026, 6, 1, 18))
    # 06:00 UTC is 08:00 in Berlin; twelve hours later is 20:00 Berlin, before the quiet hours.
    assert times(result) == [utc(2026, 6, 2, 6), utc(2026, 6, 2, 18)]


def test_across_spring_forward_a_nine_oclock_window_opens_on_the_new_offset(workspace):
    # New York springs forward on 8 March 2026: 09:00 is 14:00 UTC before and 13:00 UTC after.
    sequence = sequence_of(workspace, (0, "days"), (1, "days"), send_start_hour=9, send_end_hour=10)
    subscriber = SubscriberFactory(workspace=workspace, time_zone="America/New_York")
    enrolled(sequence, at=utc(2026, 3, 7, 14, 30), subscriber=subscriber)  # Saturday 09:30 EST: open

    result = plan(sequence, now=utc(2026, 3, 7, 14))

    # The second step is due 24 h later: Sunday 14:30 UTC, which is 10:30 EDT (it would be 09:30 EST,
    # inside the window, without the change): past the window; the next opening is Monday 09:00 EDT.
    assert times(result) == [utc(2026, 3, 7, 14, 30), utc(2026, 3, 9, 13)]
    assert [row.local_at.isoformat() for row in result.rows] == [
        "2026-03-07T09:30:00-05:00", "2026-03-09T09:00:00-04:00",
    ]  # fmt: skip


def test_the_plan_is_what_the_scheduler_then_does(workspace):
    """Drive the real scheduler through the same days: its messages go out at the planned times."""
    workspace.quiet_hours_start, workspace.quiet_hours_end = 22, 7
    workspace.save()
    sequence = sequence_of(workspace, (1, "hours"), (1, "days"), (36, "hours"), send_days=[0, 1, 2, 3, 4],
                           send_start_hour=8, send_end_hour=18)  # fmt: skip
    zones = ["America/New_York", "Europe/Berlin", "Asia/Kolkata", ""]
    for index, zone in enumerate(zones):
        subscriber = SubscriberFactory(workspace=workspace, time_zone=zone)
        enrolled(sequence, at=MONDAY + timedelta(hours=1 + 7 * index), subscriber=subscriber)
    planned = {(row.enrollment_id, row.step_id, row.planned_at) for row in plan(sequence, days=10).rows}
    assert len(planned) == 3 * len(zones)

    horizon = MONDAY + timedelta(days=10)
    while True:
        due = Enrollment.objects.filter(status="active", next_run_at__isnull=False).order_by("next_run_at").first()
        if due is None or due.next_run_at >= horizon:
            break
        enrollments_process_due(now=due.next_run_at)
    sent = set(Message.objects.values_list("enrollment_id", "step_id", "send_after"))
    assert sent == planned


# Blocked subscribers


def test_blocked_subscribers_are_counted_by_reason_and_get_no_rows(workspace):
    sequence = sequence_of(workspace, (1, "hours"), goal_event="purchased")
    fine = enrolled(sequence, at=MONDAY)
    enrolled(sequence, at=MONDAY, subscriber=SubscriberFactory(workspace=workspace, status="unsubscribed"))
    enrolled(sequence, at=MONDAY, subscriber=SubscriberFactory(workspace=workspace, status="bounced"))
    enrolled(sequence, at=MONDAY, subscriber=SubscriberFactory(workspace=workspace, email="no@example.org"))
    SuppressionFactory(workspace=workspace, value="no@example.org")
    enrolled(sequence, at=MONDAY, subscriber=SubscriberFactory(workspace=workspace, email="x@blocked.test"))
    SuppressionFactory(workspace=workspace, kind="domain", value="blocked.test")
    buyer = enrolled(sequence, at=MONDAY)
    buyer.enrolled_at = MONDAY - timedelta(days=1)
    buyer.save()
    event_record(
        workspace=workspace, subscriber=buyer.subscriber, name="purchased", occurred_at=MONDAY - timedelta(hours=1)
    )
    enrolled(sequence, at=None)

    result = plan(sequence)

    assert {row.enrollment_id for row in result.rows} == {fine.pk}
    assert dict(result.blocked) == {
        "unsubscribed": 1, "bounced": 1, "suppressed": 2, "goal_reached": 1, "not_scheduled": 1,
    }  # fmt: skip
    assert result.enrollments_examined == 7


def test_an_empty_window_is_a_blocked_reason(workspace):
    workspace.quiet_hours_start, workspace.quiet_hours_end = 8, 18
    workspace.save()
    sequence = sequence_of(workspace, (1, "hours"), send_start_hour=9, send_end_hour=17)
    enrolled(sequence, at=MONDAY)
    result = plan(sequence)
    assert result.rows == [] and dict(result.blocked) == {"empty_window": 1}


def test_finished_enrollments_and_other_sequences_are_not_planned(workspace):
    sequence = sequence_of(workspace, (1, "hours"))
    other = sequence_of(workspace, (1, "hours"))
    enrolled(sequence, at=MONDAY, status="completed")
    enrolled(sequence, at=MONDAY, status="exited")
    enrolled(other, at=MONDAY)
    result = plan(sequence)
    assert result.rows == [] and result.enrollments_examined == 0


# Paused and draft


def test_a_paused_sequence_is_simulated_as_if_resumed_with_a_note(workspace):
    sequence = sequence_of(workspace, (1, "hours"))
    enrolled(sequence, at=MONDAY - timedelta(hours=3))
    sequence.status = SequenceStatus.PAUSED
    sequence.save()
    result = plan(sequence)
    assert times(result) == [MONDAY]
    assert result.sequence_status == "paused"
    assert "paused" in result.notes[0] and "resumed" in result.notes[0]


def test_every_plan_warns_that_the_cap_and_rate_limits_may_shift_times(workspace):
    sequence = sequence_of(workspace, (1, "hours"), status=SequenceStatus.DRAFT)
    notes = plan(sequence).notes
    assert "draft" in notes[0]
    assert any("frequency cap" in note and "rate limits" in note for note in notes)


# Paging and bounds


def test_a_page_stops_at_the_limit_on_a_whole_enrollment_and_the_next_page_continues(workspace):
    sequence = sequence_of(workspace, (0, "hours"), (1, "days"))
    enrollments = [enrolled(sequence, at=MONDAY) for _ in range(5)]

    first = plan(sequence, limit=5)
    assert len(first.rows) == 4 and first.truncated
    assert first.next_after_enrollment_id == enrollments[1].pk
    second = plan(sequence, limit=5, after_enrollment_id=first.next_after_enrollment_id)
    assert [row.enrollment_id for row in second.rows][::2] == [e.pk for e in enrollments[2:4]]
    third = plan(sequence, limit=5, after_enrollment_id=second.next_after_enrollment_id)
    assert [row.enrollment_id for row in third.rows] == [enrollments[4].pk] * 2
    assert not third.truncated and third.next_after_enrollment_id is None


def test_enrollments_are_read_in_chunks_and_a_page_examines_a_bounded_number(workspace, monkeypatch):
    monkeypatch.setattr(dryrun, "DRY_RUN_CHUNK", 2)
    monkeypatch.setattr(dryrun, "DRY_RUN_MAX_ENROLLMENTS", 3)
    sequence = sequence_of(workspace, (1, "hours"))
    enrollments = [enrolled(sequence, at=MONDAY) for _ in range(5)]
    first = plan(sequence)
    assert first.enrollments_examined == 3 and first.next_after_enrollment_id == enrollments[2].pk
    second = plan(sequence, after_enrollment_id=first.next_after_enrollment_id)
    assert [row.enrollment_id for row in second.rows] == [enrollments[3].pk, enrollments[4].pk]
    assert second.next_after_enrollment_id is None


def test_only_the_given_subscribers_are_planned(workspace):
    sequence = sequence_of(workspace, (1, "hours"))
    wanted = enrolled(sequence, at=MONDAY)
    enrolled(sequence, at=MONDAY)
    result = plan(sequence, subscriber_ids=[wanted.subscriber_id])
    assert [row.subscriber_id for row in result.rows] == [wanted.subscriber_id]


def test_the_summary_counts_per_step_and_per_day(workspace):
    sequence = sequence_of(workspace, (0, "hours"), (1, "days"))
    for _ in range(3):
        enrolled(sequence, at=MONDAY)
    result = plan(sequence)
    first, second = sequence.steps.order_by("position")
    assert result.per_step() == [
        {"step_id": first.pk, "position": 1, "template_name": "Email 1", "count": 3},
        {"step_id": second.pk, "position": 2, "template_name": "Email 2", "count": 3},
    ]
    assert result.per_day() == [{"date": "2026-06-01", "count": 3}, {"date": "2026-06-02", "count": 3}]


# The API


def dry_run(api, sequence, **body):
    return api.post(f"/api/v1/email-sequences/{sequence.pk}/dry-run", body, format="json")


def test_the_api_answers_rows_and_a_summary_and_writes_nothing(client_for, workspace):
    sequence = sequence_of(workspace, (0, "hours"), (2, "days"))
    subscriber = SubscriberFactory(workspace=workspace, email="ada@example.org", time_zone="Asia/Kolkata")
    enrolled(sequence, at=timezone.now() - timedelta(minutes=5), subscriber=subscriber)
    enrolled(sequence, at=timezone.now(), subscriber=SubscriberFactory(workspace=workspace, status="complained"))
    counts = (Message.objects.count(), Enrollment.objects.count(), Event.objects.count())
    states = list(Enrollment.objects.values_list("id", "status", "current_step_id", "next_run_at"))

    response = dry_run(client_for(workspace, Role.VIEWER), sequence, days=3)

    assert response.status_code == 200, response.content
    body = response.json()
    assert [row["position"] for row in body["rows"]] == [1, 2]
    row = body["rows"][0]
    assert row["email"] == "ada@example.org" and row["subject"] == "Subject 1" and row["time_zone"] == "Asia/Kolkata"
    assert row["local_at"].endswith("+05:30") and row["planned_at"].endswith("Z")
    assert body["summary"]["sends"] == 2 and body["summary"]["blocked"] == {"complained": 1}
    assert [step["count"] for step in body["summary"]["per_step"]] == [1, 1]
    assert body["truncated"] is False and body["next_after_enrollment_id"] is None
    assert (Message.objects.count(), Enrollment.objects.count(), Event.objects.count()) == counts
    assert list(Enrollment.objects.values_list("id", "status", "current_step_id", "next_run_at")) == states


def test_days_default_to_fourteen(api, workspace):
    sequence = sequence_of(workspace, (1, "hours"))
    body = dry_run(api, sequence).json()
    assert body["days"] == 14


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"days": 0}, "days"), ({"days": 91}, "days"), ({"days": "soon"}, "days"), ({"limit": 0}, "limit"),
        ({"limit": 5001}, "limit"), ({"subscriber_ids": [0]}, "subscriber_ids"),
        ({"after_enrollment_id": -1}, "after_enrollment_id"),
    ],
)  # fmt: skip
def test_invalid_input_is_a_400_naming_the_field(api, workspace, body, field):
    sequence = sequence_of(workspace, (1, "hours"))
    response = dry_run(api, sequence, **body)
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_another_workspaces_sequence_is_a_404(other_api, workspace):
    sequence = sequence_of(workspace, (1, "hours"))
    enrolled(sequence, at=MONDAY)
    assert dry_run(other_api, sequence).status_code == 404


def test_the_service_refuses_another_workspaces_sequence(workspace, other_workspace):
    sequence = sequence_of(workspace, (1, "hours"))
    with pytest.raises(NotFound):
        sequence_dry_run(workspace=other_workspace, sequence=sequence)
