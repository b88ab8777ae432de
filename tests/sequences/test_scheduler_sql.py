"""The scheduler's set-based path on PostgreSQL: one INSERT ... ON CONFLICT DO NOTHING for a batch's
messages and one UPDATE ... FROM unnest for its enrollments. SQLite takes the portable path (the tests in
test_scheduler.py cover both); these pin what only the PostgreSQL statements can get wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from sequences import scheduler
from sequences.models import Enrollment, EnrollmentStatus, Message, MessageStatus, SequenceStatus
from sequences.scheduler import _pg_array, enrollments_process_due
from tests.factories import (
    EnrollmentFactory,
    SequenceFactory,
    StepFactory,
    SubscriberFactory,
    TemplateFactory,
    WorkspaceFactory,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the set-based statements are PostgreSQL's"),
]

MONDAY = datetime(2026, 6, 1, 12, tzinfo=UTC)
AWKWARD = 'Hi "there", {friend} \\ back\\slash, NULL, é ✓'


@pytest.fixture(autouse=True)
def _own_callbacks(monkeypatch):
    monkeypatch.setattr(scheduler, "_messages_callbacks", [])


@pytest.fixture
def received():
    ids: list[list[int]] = []
    scheduler.on_messages_created(lambda message_ids: ids.append(list(message_ids)))
    return ids


def due(sequence, *, subscriber=None, at=MONDAY):
    first = sequence.steps.order_by("position").first()
    subscriber = subscriber or SubscriberFactory(workspace=sequence.workspace)
    return EnrollmentFactory(
        sequence=sequence, subscriber=subscriber, current_step=first, next_run_at=at,
        enrolled_at=at - timedelta(days=1),
    )  # fmt: skip


def test_an_existing_message_is_skipped_by_the_unique_key_and_only_new_ids_are_handed_on(
    active_sequence, received, django_capture_on_commit_callbacks
):
    first, second = active_sequence.steps.order_by("position")
    enrollments = [due(active_sequence) for _ in range(3)]
    existing = Message.objects.create(
        workspace=enrollments[1].workspace, subscriber=enrollments[1].subscriber, enrollment=enrollments[1],
        step=first, to_email=enrollments[1].subscriber.email,
    )  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        result = enrollments_process_due(now=MONDAY)

    assert (result.claimed, result.messages_created) == (3, 2)
    assert Message.objects.filter(step=first).count() == 3
    new_ids = set(Message.objects.filter(step=first).exclude(pk=existing.pk).values_list("id", flat=True))
    assert [set(batch) for batch in received] == [new_ids]
    for enrollment in enrollments:  # the one whose message existed advanced too
        enrollment.refresh_from_db()
        assert (enrollment.current_step_id, enrollment.next_run_at) == (second.pk, MONDAY + second.delay)


def test_rows_that_differ_in_every_column_are_inserted_and_advanced_each_with_its_own_values():
    rows = []
    for index, subject in enumerate(["Plain", AWKWARD]):
        workspace = WorkspaceFactory(from_email=f"ws{index}@acme.test")
        template = TemplateFactory(workspace=workspace, subject=subject, from_email="" if index == 0 else "t@acme.test")
        sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
        StepFactory(sequence=sequence, template=template, position=0)
        last = StepFactory(sequence=sequence, template=template, position=1, delay_value=index + 1, delay_unit="hours")
        subscriber = SubscriberFactory(workspace=workspace, email=f'o"brien{index}@example.org')
        rows.append((due(sequence, subscriber=subscriber), template, last))
    one_step = SequenceFactory(workspace=rows[0][0].workspace, status=SequenceStatus.ACTIVE)
    StepFactory(sequence=one_step, template=rows[0][1], position=0)
    finishing = due(one_step, subscriber=rows[0][0].subscriber)

    result = enrollments_process_due(now=MONDAY)

    assert (result.claimed, result.messages_created, result.completed) == (3, 3, 1)
    for (enrollment, template, last), from_email in zip(rows, ["ws0@acme.test", "t@acme.test"], strict=True):
        message = Message.objects.get(enrollment=enrollment)
        assert (message.workspace_id, message.subscriber_id, message.template_id) == (
            enrollment.workspace_id, enrollment.subscriber_id, template.pk,
        )  # fmt: skip
        assert (message.to_email, message.from_email, message.subject) == (
            enrollment.subscriber.email, from_email, template.subject,
        )  # fmt: skip
        enrollment.refresh_from_db()
        assert (enrollment.status, enrollment.current_step_id, enrollment.next_run_at) == (
            EnrollmentStatus.ACTIVE, last.pk, MONDAY + last.delay,
        )  # fmt: skip
    finishing.refresh_from_db()
    assert (finishing.status, finishing.current_step_id, finishing.next_run_at, finishing.finished_at) == (
        EnrollmentStatus.COMPLETED, None, None, MONDAY,
    )  # fmt: skip


def test_the_inserted_message_has_the_models_defaults_in_every_other_column(active_sequence):
    enrollment = due(active_sequence)
    enrollments_process_due(now=MONDAY)
    message = Message.objects.get(enrollment=enrollment)
    assert (message.status, message.attempts, message.links, message.lease_owner, message.lease_expires_at) == (
        MessageStatus.QUEUED, 0, [], "", None,
    )  # fmt: skip
    assert (message.send_after, message.created_at, message.sent_at, message.campaign_id) == (
        MONDAY,
        MONDAY,
        None,
        None,
    )
    assert message.updated_at is not None


def test_a_batch_with_exits_deferrals_and_sends_is_written_in_one_statement_each(active_sequence, workspace):
    active_sequence.send_start_hour, active_sequence.send_end_hour = 14, 16  # MONDAY is 12:00 UTC
    active_sequence.save()
    deferred = due(active_sequence)
    gone = due(active_sequence, subscriber=SubscriberFactory(workspace=workspace, status="unsubscribed"))

    result = enrollments_process_due(now=MONDAY)

    assert (result.deferred_by_window, result.exited, result.messages_created) == (1, 1, 0)
    deferred.refresh_from_db()
    gone.refresh_from_db()
    assert (deferred.status, deferred.next_run_at, deferred.finished_at) == (
        "active",
        MONDAY + timedelta(hours=2),
        None,
    )
    assert (gone.status, gone.next_run_at, gone.finished_at, gone.exit_reason) == (
        "exited", None, MONDAY, "subscriber unsubscribed",
    )  # fmt: skip
    assert Enrollment.objects.filter(status="active", next_run_at__lte=MONDAY).count() == 0


@pytest.mark.parametrize(
    ("values", "cast"),
    [
        ([1, None, 2**40], "bigint[]"),
        (["plain", AWKWARD, "", None, "{}", "a,b", '"'], "text[]"),
        ([MONDAY, None, MONDAY + timedelta(microseconds=1)], "timestamptz[]"),
    ],
)
def test_array_literals_round_trip_through_postgresql(values, cast):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT %s::{cast}", [_pg_array(values)])
        assert cursor.fetchone()[0] == values
