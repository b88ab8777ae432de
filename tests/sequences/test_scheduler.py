"""The scheduler: due enrollments become one Message per step, at the right time, inside the window."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.schedules import schedules
from sequences import scheduler, services
from sequences.models import Enrollment, EnrollmentStatus, Message, SequenceStatus
from sequences.scheduler import EMPTY_WINDOW_REASON, enrollments_process, enrollments_process_due
from sequences.tasks import scheduler_tick
from subscribers.models import Event, EventType
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


def enroll(sequence, subscriber):
    [result] = services.sequence_enroll(workspace=sequence.workspace, sequence=sequence, subscriber_ids=[subscriber.pk])
    assert result.status == "enrolled"
    return Enrollment.objects.get(pk=result.enrollment_id)


def due_enrollment(sequence, *, at=MONDAY, subscriber=None, **fields):
    """An active enrollment at the sequence's first step, due at `at`."""
    first = sequence.steps.order_by("position").first()
    subscriber = subscriber or SubscriberFactory(workspace=sequence.workspace)
    return EnrollmentFactory(
        sequence=sequence, subscriber=subscriber, current_step=first, next_run_at=at,
        enrolled_at=at - timedelta(days=1), **fields,
    )  # fmt: skip


def steps_of(sequence):
    return list(sequence.steps.order_by("position"))


@pytest.fixture(autouse=True)
def _own_callbacks(monkeypatch):
    """These tests see only the callbacks they register: the sender's enqueue (registered at startup)
    would otherwise publish tasks to the broker that a later test's real worker picks up."""
    monkeypatch.setattr(scheduler, "_messages_callbacks", [])


@pytest.fixture
def callbacks():
    """Message ids handed to an `on_messages_created` callback; unregistered afterwards."""
    received: list[list[int]] = []

    def callback(ids):
        received.append(list(ids))

    scheduler.on_messages_created(callback)
    yield received
    scheduler._messages_callbacks.remove(callback)


# Due times and progression


def test_nothing_is_claimed_before_it_is_due(active_sequence, subscriber):
    enrollment = enroll(active_sequence, subscriber)
    result = enrollments_process_due(now=enrollment.next_run_at - timedelta(seconds=1))
    assert result.claimed == 0
    assert not Message.objects.exists()


def test_a_due_step_becomes_one_queued_message_and_the_enrollment_advances(active_sequence, subscriber, template):
    first, second = steps_of(active_sequence)
    enrollment = enroll(active_sequence, subscriber)
    now = enrollment.next_run_at + timedelta(seconds=30)

    result = enrollments_process_due(now=now)

    assert result.as_dict() == {
        "claimed": 1, "messages_created": 1, "deferred_by_window": 0, "exited": 0, "completed": 0,
    }  # fmt: skip
    message = Message.objects.get()
    assert (message.enrollment_id, message.step_id, message.template_id) == (enrollment.pk, first.pk, template.pk)
    assert (message.to_email, message.from_email) == ("ada@example.org", "news@acme.test")
    assert message.subject == template.subject  # raw until the sender renders it
    assert (message.status, message.send_after, message.workspace_id) == ("queued", now, active_sequence.workspace_id)
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.current_step_id) == ("active", second.pk)
    assert enrollment.next_run_at == now + timedelta(days=3)


def test_the_templates_from_address_overrides_the_workspaces(active_sequence, subscriber, template):
    template.from_email = "founder@acme.test"
    template.save()
    enrollment = enroll(active_sequence, subscriber)
    enrollments_process_due(now=enrollment.next_run_at)
    assert Message.objects.get().from_email == "founder@acme.test"


def test_each_step_is_sent_once_at_its_time_and_the_last_one_completes(active_sequence, subscriber):
    first, second = steps_of(active_sequence)
    enrollment = enroll(active_sequence, subscriber)
    t1 = enrollment.next_run_at
    assert enrollments_process_due(now=t1).messages_created == 1

    t2 = t1 + timedelta(days=3)
    assert enrollments_process_due(now=t2 - timedelta(minutes=1)).claimed == 0
    result = enrollments_process_due(now=t2)
    assert (result.messages_created, result.completed) == (1, 1)
    assert enrollments_process_due(now=t2 + timedelta(days=30)).claimed == 0

    messages = list(Message.objects.order_by("id").values_list("step_id", "send_after"))
    assert messages == [(first.pk, t1), (second.pk, t2)]
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.finished_at, enrollment.next_run_at) == ("completed", t2, None)
    assert enrollment.current_step_id is None


def test_zero_delay_steps_after_a_send_go_out_in_the_same_run(workspace, template, subscriber):
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    StepFactory(sequence=sequence, template=template, position=1, delay_value=1, delay_unit="hours")
    StepFactory(sequence=sequence, template=template, position=2, delay_value=0)
    enrollment = enroll(sequence, subscriber)
    result = enrollments_process_due(now=enrollment.next_run_at)
    assert (result.messages_created, result.completed) == (2, 1)


def test_steps_follow_position_not_creation_order(workspace, template, subscriber):
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    later = StepFactory(sequence=sequence, template=template, position=2, delay_value=1, delay_unit="days")
    earlier = StepFactory(sequence=sequence, template=template, position=1, delay_value=1, delay_unit="hours")
    enrollment = enroll(sequence, subscriber)
    assert enrollment.current_step_id == earlier.pk
    enrollments_process_due(now=enrollment.next_run_at)
    enrollment.refresh_from_db()
    assert enrollment.current_step_id == later.pk


def test_due_work_is_processed_in_batches_until_none_is_left(active_sequence):
    for _ in range(7):
        due_enrollment(active_sequence)
    result = enrollments_process_due(now=MONDAY, batch_size=3)
    assert (result.claimed, result.messages_created) == (7, 7)
    assert enrollments_process_due(now=MONDAY, batch_size=3, max_batches=1).claimed == 0


def test_batches_in_due_order_take_every_row_whatever_its_due_time_and_ties_across_batches(active_sequence):
    # Each batch claims from the last one's latest due time on: equal due times split across batches
    # and earlier ones must all still be taken.
    times = [MONDAY - timedelta(hours=3), MONDAY - timedelta(hours=1), MONDAY, MONDAY, MONDAY, MONDAY, MONDAY]
    for at in times:
        due_enrollment(active_sequence, at=at)
    result = enrollments_process_due(now=MONDAY, batch_size=2)
    assert (result.claimed, result.messages_created) == (7, 7)
    assert Enrollment.objects.filter(next_run_at__lte=MONDAY).count() == 0


def test_max_batches_bounds_a_run(active_sequence):
    for _ in range(5):
        due_enrollment(active_sequence)
    assert enrollments_process_due(now=MONDAY, batch_size=2, max_batches=1).claimed == 2
    assert enrollments_process_due(now=MONDAY, batch_size=2).claimed == 3


def test_queries_per_batch_do_not_grow_with_the_batch(active_sequence):
    def queries_for(count):
        for _ in range(count):
            due_enrollment(active_sequence)
        with CaptureQueriesContext(connection) as captured:
            result = enrollments_process_due(now=MONDAY, batch_size=100)
        assert result.messages_created == count
        return len(captured)

    assert queries_for(3) == queries_for(40)


def test_queries_for_exits_and_deferrals_do_not_grow_with_the_batch(active_sequence, workspace):
    active_sequence.send_start_hour, active_sequence.send_end_hour = 14, 16  # MONDAY is 12:00 UTC
    active_sequence.save()

    def queries_for(count):
        for index in range(count):
            status = "unsubscribed" if index % 2 else "active"
            due_enrollment(active_sequence, subscriber=SubscriberFactory(workspace=workspace, status=status))
        with CaptureQueriesContext(connection) as captured:
            result = enrollments_process_due(now=MONDAY, batch_size=100)
        assert (result.exited, result.deferred_by_window) == (count // 2, count - count // 2)
        return len(captured)

    assert queries_for(4) == queries_for(40)


# The unique key: never twice


def test_running_twice_for_the_same_moment_creates_one_message(active_sequence, subscriber):
    enrollment = enroll(active_sequence, subscriber)
    now = enrollment.next_run_at
    enrollments_process_due(now=now)
    assert enrollments_process_due(now=now).claimed == 0
    assert Message.objects.filter(enrollment=enrollment).count() == 1


def test_a_message_that_already_exists_is_not_created_again_but_the_enrollment_advances(active_sequence):
    first, second = steps_of(active_sequence)
    enrollment = due_enrollment(active_sequence)
    Message.objects.create(
        workspace=enrollment.workspace, subscriber=enrollment.subscriber, enrollment=enrollment, step=first,
        to_email=enrollment.subscriber.email,
    )  # fmt: skip

    result = enrollments_process_due(now=MONDAY)

    assert (result.claimed, result.messages_created) == (1, 0)
    assert Message.objects.filter(enrollment=enrollment).count() == 1
    enrollment.refresh_from_db()
    assert enrollment.current_step_id == second.pk


def test_enrollments_process_touches_only_the_given_enrollments_that_are_due(active_sequence):
    due = due_enrollment(active_sequence)
    other_due = due_enrollment(active_sequence)
    not_yet = due_enrollment(active_sequence, at=MONDAY + timedelta(hours=1))
    result = enrollments_process(enrollment_ids=[due.pk, not_yet.pk], now=MONDAY)
    assert (result.claimed, result.messages_created) == (1, 1)
    assert set(Message.objects.values_list("enrollment_id", flat=True)) == {due.pk}
    assert Enrollment.objects.get(pk=other_due.pk).next_run_at == MONDAY
    assert enrollments_process(enrollment_ids=[due.pk], now=MONDAY).claimed == 0


# The subscriber is checked again


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained"])
def test_a_subscriber_who_is_no_longer_active_is_exited_and_gets_no_message(active_sequence, subscriber, status):
    enrollment = enroll(active_sequence, subscriber)
    subscriber.status = status
    subscriber.save()

    result = enrollments_process_due(now=enrollment.next_run_at)

    assert (result.claimed, result.exited, result.messages_created) == (1, 1, 0)
    assert not Message.objects.exists()
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == ("exited", f"subscriber {status}")
    assert enrollment.next_run_at is None
    event = Event.objects.get(type=EventType.EXITED)
    assert (event.subscriber_id, event.sequence_id, event.properties["reason"]) == (
        subscriber.pk, active_sequence.pk, f"subscriber {status}",
    )  # fmt: skip


@pytest.mark.parametrize(("kind", "value"), [("email", "ada@example.org"), ("domain", "example.org")])
def test_a_suppressed_address_or_domain_is_exited_and_gets_no_message(active_sequence, subscriber, kind, value):
    enrollment = enroll(active_sequence, subscriber)
    SuppressionFactory(workspace=active_sequence.workspace, kind=kind, value=value)
    result = enrollments_process_due(now=enrollment.next_run_at)
    assert (result.exited, result.messages_created) == (1, 0)
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "suppressed")
    assert not Message.objects.exists()


def test_another_workspaces_suppression_does_not_apply(active_sequence, subscriber, other_workspace):
    enrollment = enroll(active_sequence, subscriber)
    SuppressionFactory(workspace=other_workspace, value="ada@example.org")
    assert enrollments_process_due(now=enrollment.next_run_at).messages_created == 1


def test_a_goal_reached_since_enrolling_completes_instead_of_sending(active_sequence, subscriber):
    active_sequence.goal_event = "purchased"
    active_sequence.save()
    enrollment = enroll(active_sequence, subscriber)
    # Written behind the event service's back: as if the goal handler had not run yet.
    Event.objects.create(
        workspace=subscriber.workspace, subscriber=subscriber, name="purchased", occurred_at=enrollment.enrolled_at
    )

    result = enrollments_process_due(now=enrollment.next_run_at)

    assert (result.completed, result.messages_created) == (1, 0)
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == ("completed", "goal reached: purchased")
    assert Event.objects.filter(type=EventType.GOAL, subscriber=subscriber).count() == 1


def test_a_goal_event_from_before_the_enrollment_does_not_count(active_sequence, subscriber):
    active_sequence.goal_event = "purchased"
    active_sequence.save()
    enrollment = enroll(active_sequence, subscriber)
    Event.objects.create(
        workspace=subscriber.workspace, subscriber=subscriber, name="purchased",
        occurred_at=enrollment.enrolled_at - timedelta(days=1),
    )  # fmt: skip
    assert enrollments_process_due(now=enrollment.next_run_at).messages_created == 1


# Send windows and quiet hours


def test_outside_the_window_the_step_waits_for_the_next_opening_in_the_subscribers_zone(active_sequence):
    active_sequence.send_days, active_sequence.send_start_hour, active_sequence.send_end_hour = [0, 1, 2, 3, 4], 9, 17
    active_sequence.save()
    subscriber = SubscriberFactory(workspace=active_sequence.workspace, time_zone="America/New_York")
    saturday = datetime(2026, 6, 6, 15, tzinfo=UTC)  # 11:00 in New York
    enrollment = due_enrollment(active_sequence, at=saturday, subscriber=subscriber)

    result = enrollments_process_due(now=saturday)

    assert (result.claimed, result.deferred_by_window, result.messages_created) == (1, 1, 0)
    enrollment.refresh_from_db()
    monday_9_new_york = datetime(2026, 6, 8, 13, tzinfo=UTC)
    assert (enrollment.status, enrollment.next_run_at) == ("active", monday_9_new_york)
    assert enrollments_process_due(now=monday_9_new_york - timedelta(seconds=1)).claimed == 0
    assert enrollments_process_due(now=monday_9_new_york).messages_created == 1
    assert Message.objects.get().send_after == monday_9_new_york


def test_without_a_zone_of_their_own_the_workspaces_zone_applies(active_sequence, workspace):
    workspace.time_zone = "Asia/Tokyo"
    workspace.save()
    active_sequence.send_start_hour, active_sequence.send_end_hour = 9, 17
    active_sequence.save()
    enrollment = due_enrollment(active_sequence, at=datetime(2026, 6, 1, 12, tzinfo=UTC))  # 21:00 in Tokyo
    enrollments_process_due(now=enrollment.next_run_at)
    enrollment.refresh_from_db()
    assert enrollment.next_run_at == datetime(2026, 6, 2, 0, tzinfo=UTC)  # 09:00 in Tokyo


def test_quiet_hours_defer_across_the_berlin_fall_back(active_sequence, workspace):
    workspace.time_zone, workspace.quiet_hours_start, workspace.quiet_hours_end = "Europe/Berlin", 21, 8
    workspace.save()
    late = datetime(2026, 10, 24, 21, tzinfo=UTC)  # 23:00 CEST on Saturday
    enrollment = due_enrollment(active_sequence, at=late)

    assert enrollments_process_due(now=late).deferred_by_window == 1

    enrollment.refresh_from_db()
    assert enrollment.next_run_at == datetime(2026, 10, 25, 7, tzinfo=UTC)  # 08:00 CET, after the clocks went back
    assert enrollments_process_due(now=enrollment.next_run_at).messages_created == 1


def test_the_send_window_across_the_new_york_spring_forward(active_sequence):
    active_sequence.send_start_hour, active_sequence.send_end_hour = 9, 17
    active_sequence.save()
    subscriber = SubscriberFactory(workspace=active_sequence.workspace, time_zone="America/New_York")
    midnight = datetime(2026, 3, 8, 5, tzinfo=UTC)  # 00:00 EST; 09:00 that morning is EDT
    enrollment = due_enrollment(active_sequence, at=midnight, subscriber=subscriber)
    enrollments_process_due(now=midnight)
    enrollment.refresh_from_db()
    assert enrollment.next_run_at == datetime(2026, 3, 8, 13, tzinfo=UTC)


def test_quiet_hours_combine_with_the_sequence_window(active_sequence, workspace):
    workspace.quiet_hours_start, workspace.quiet_hours_end = 12, 14
    workspace.save()
    active_sequence.send_start_hour, active_sequence.send_end_hour = 10, 13
    active_sequence.save()
    noon = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
    enrollment = due_enrollment(active_sequence, at=noon)
    enrollments_process_due(now=noon)
    enrollment.refresh_from_db()
    assert enrollment.next_run_at == datetime(2026, 6, 2, 10, tzinfo=UTC)


def test_an_empty_window_exits_with_a_clear_reason(active_sequence):
    active_sequence.send_days = []  # the API refuses this; a direct database edit does not
    active_sequence.save()
    enrollment = due_enrollment(active_sequence)
    result = enrollments_process_due(now=MONDAY)
    assert (result.exited, result.messages_created) == (1, 0)
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == ("exited", EMPTY_WINDOW_REASON)


# Pause and resume


@pytest.mark.parametrize("status", [SequenceStatus.PAUSED, SequenceStatus.DRAFT])
def test_enrollments_of_a_sequence_that_is_not_active_wait_untouched(active_sequence, status):
    enrollment = due_enrollment(active_sequence)
    Enrollment.objects.filter(pk=enrollment.pk).update(next_run_at=MONDAY)
    active_sequence.status = status
    active_sequence.save()
    assert enrollments_process_due(now=MONDAY + timedelta(days=10)).claimed == 0
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.next_run_at) == ("active", MONDAY)


def test_pause_then_resume_sends_each_step_exactly_once(active_sequence, subscriber, workspace):
    first, second = steps_of(active_sequence)
    enrollment = enroll(active_sequence, subscriber)
    t1 = enrollment.next_run_at

    services.sequence_pause(workspace=workspace, sequence=active_sequence)
    assert enrollments_process_due(now=t1 + timedelta(days=5)).claimed == 0
    services.sequence_activate(workspace=workspace, sequence=active_sequence)
    resumed = t1 + timedelta(days=5, minutes=1)
    assert enrollments_process_due(now=resumed).messages_created == 1
    assert enrollments_process_due(now=resumed).claimed == 0
    for later in (resumed + timedelta(days=3), resumed + timedelta(days=3), resumed + timedelta(days=40)):
        enrollments_process_due(now=later)

    assert list(Message.objects.order_by("id").values_list("step_id", flat=True)) == [first.pk, second.pk]
    enrollment.refresh_from_db()
    assert enrollment.status == "completed"


# Handing on, immediate processing, the task and its schedule


def test_created_message_ids_are_handed_to_the_callbacks_after_commit(
    active_sequence, callbacks, django_capture_on_commit_callbacks
):
    due_enrollment(active_sequence)
    due_enrollment(active_sequence)
    with django_capture_on_commit_callbacks(execute=False) as pending:
        enrollments_process_due(now=MONDAY)
    assert callbacks == []  # nothing before the commit
    for callback in pending:
        callback()
    assert sorted(callbacks[0]) == sorted(Message.objects.values_list("id", flat=True))


def test_a_failing_callback_does_not_stop_the_others(active_sequence, callbacks, django_capture_on_commit_callbacks):
    def broken(ids):
        raise RuntimeError("boom")

    scheduler._messages_callbacks.insert(0, broken)
    try:
        due_enrollment(active_sequence)
        with django_capture_on_commit_callbacks(execute=True):
            enrollments_process_due(now=MONDAY)
    finally:
        scheduler._messages_callbacks.remove(broken)
    assert len(callbacks) == 1


def test_a_zero_delay_enrollment_is_processed_on_commit_not_on_the_next_tick(
    workspace, template, subscriber, eager_celery, callbacks, django_capture_on_commit_callbacks
):
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    first = StepFactory(sequence=sequence, template=template, position=1, delay_value=0)
    second = StepFactory(sequence=sequence, template=template, position=2, delay_value=2, delay_unit="days")

    with django_capture_on_commit_callbacks(execute=True):
        enrollment = enroll(sequence, subscriber)

    message = Message.objects.get()
    assert (message.enrollment_id, message.step_id) == (enrollment.pk, first.pk)
    assert callbacks == [[message.pk]]
    enrollment.refresh_from_db()
    assert enrollment.current_step_id == second.pk


def test_an_enrollment_with_a_delay_waits_for_the_tick(active_sequence, subscriber, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as pending:
        enroll(active_sequence, subscriber)
    assert len(pending) == 1  # the enrolled event's dispatch, and no processing
    assert not Message.objects.exists()


def test_the_tick_task_processes_what_is_due(active_sequence, subscriber):
    enrollment = enroll(active_sequence, subscriber)
    Enrollment.objects.filter(pk=enrollment.pk).update(next_run_at=enrollment.enrolled_at - timedelta(minutes=1))
    assert scheduler_tick() == {
        "claimed": 1, "messages_created": 1, "deferred_by_window": 0, "exited": 0, "completed": 0,
    }  # fmt: skip


def test_the_tick_is_scheduled_every_scheduler_tick_seconds(settings):
    settings.SCHEDULER_TICK_SECONDS = 7
    [tick] = [s for s in schedules() if s.task == "sequences.tasks.scheduler_tick"]
    assert (tick.every_seconds, tick.queue.value) == (7, "default")


# Many schedulers at once


@pytest.mark.django_db(transaction=True)
def test_concurrent_schedulers_create_exactly_one_message_per_due_enrollment(workspace):
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent transactions with SKIP LOCKED (PostgreSQL); SQLite serialises writers")
    template = TemplateFactory(workspace=workspace)
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    StepFactory(sequence=sequence, template=template, position=1, delay_value=1, delay_unit="hours")
    StepFactory(sequence=sequence, template=template, position=2, delay_value=1, delay_unit="days")
    enrollments = [due_enrollment(sequence) for _ in range(300)]
    barrier = threading.Barrier(4)
    results = []
    errors = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(enrollments_process_due(now=MONDAY, batch_size=25))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(r.claimed for r in results) == 300
    assert sum(r.messages_created for r in results) == 300
    assert Message.objects.count() == 300
    assert set(Message.objects.values_list("enrollment_id", flat=True)) == {e.pk for e in enrollments}
    assert not Enrollment.objects.filter(status=EnrollmentStatus.ACTIVE, next_run_at__lte=MONDAY).exists()


@pytest.mark.django_db(transaction=True)
def test_an_enrollment_locked_by_another_scheduler_is_skipped_not_waited_for(workspace):
    if connection.vendor != "postgresql":
        pytest.skip("needs row locks and SKIP LOCKED (PostgreSQL); SQLite serialises writers")
    from django.db import transaction

    template = TemplateFactory(workspace=workspace)
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    StepFactory(sequence=sequence, template=template, position=1, delay_value=1, delay_unit="hours")
    held, free = due_enrollment(sequence), due_enrollment(sequence)
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                Enrollment.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        result = enrollments_process_due(now=MONDAY)
        assert (result.claimed, result.messages_created) == (1, 1)
        assert set(Message.objects.values_list("enrollment_id", flat=True)) == {free.pk}
    finally:
        release.set()
        holder.join(timeout=30)
    assert enrollments_process_due(now=MONDAY).messages_created == 1
    assert Message.objects.filter(enrollment=held).count() == 1


# Editing a live sequence


def test_a_step_inserted_after_the_subscribers_position_is_sent_next(active_sequence, subscriber, workspace, template):
    first, second = steps_of(active_sequence)
    enrollment = enroll(active_sequence, subscriber)
    t1 = enrollment.next_run_at
    enrollments_process_due(now=t1)  # first sent; now waiting for the second
    inserted = services.step_create(
        workspace=workspace, sequence=active_sequence, template_id=template.pk, delay_value=1, delay_unit="days",
        position=3,
    )  # fmt: skip
    enrollments_process_due(now=t1 + timedelta(days=3))  # the second step
    enrollment.refresh_from_db()
    assert (enrollment.current_step_id, enrollment.next_run_at) == (inserted.pk, t1 + timedelta(days=4))
    enrollments_process_due(now=t1 + timedelta(days=4))
    assert list(Message.objects.order_by("id").values_list("step_id", flat=True)) == [first.pk, second.pk, inserted.pk]


def test_reordering_keeps_the_awaited_step_and_never_sends_a_step_twice(
    active_sequence, subscriber, workspace, template
):
    first, second = steps_of(active_sequence)
    third = services.step_create(
        workspace=workspace, sequence=active_sequence, template_id=template.pk, delay_value=1, delay_unit="days"
    )
    enrollment = enroll(active_sequence, subscriber)
    t1 = enrollment.next_run_at
    enrollments_process_due(now=t1)  # first sent; now waiting for the second
    enrollment.refresh_from_db()
    due = enrollment.next_run_at

    # The first step moves after the second: the subscriber still waits for the second, at the same time.
    services.step_reorder(workspace=workspace, sequence=active_sequence, step_ids=[second.pk, first.pk, third.pk])
    enrollment.refresh_from_db()
    assert (enrollment.current_step_id, enrollment.next_run_at) == (second.pk, due)

    # The second goes; then the first, now after it, was sent already: skipped; then the third.
    for _ in range(3):
        enrollments_process_due(now=enrollment.next_run_at)
        enrollment.refresh_from_db()
        if enrollment.status != "active":
            break

    steps_sent = list(Message.objects.order_by("id").values_list("step_id", flat=True))
    assert steps_sent == [first.pk, second.pk, third.pk]
    enrollment.refresh_from_db()
    assert enrollment.status == "completed"


def test_a_new_delay_applies_to_those_who_reach_the_step_afterwards(active_sequence, subscriber, workspace):
    _first, second = steps_of(active_sequence)
    waiting = enroll(active_sequence, subscriber)
    enrollments_process_due(now=waiting.next_run_at)  # first sent; waiting for the second
    waiting.refresh_from_db()
    due_before = waiting.next_run_at

    services.step_update(workspace=workspace, step=second, delay_value=10, delay_unit="days")

    waiting.refresh_from_db()
    assert waiting.next_run_at == due_before  # already scheduled: keeps its time
    later = enroll(active_sequence, SubscriberFactory(workspace=workspace))
    sent_at = later.next_run_at
    enrollments_process_due(now=sent_at)
    later.refresh_from_db()
    assert later.next_run_at == sent_at + timedelta(days=10)


def test_a_deleted_step_is_skipped_and_the_next_one_sent_once(active_sequence, subscriber, workspace):
    first, second = steps_of(active_sequence)
    enrollment = enroll(active_sequence, subscriber)
    services.step_delete(workspace=workspace, step=first)
    enrollment.refresh_from_db()
    assert enrollment.current_step_id == second.pk
    enrollments_process_due(now=enrollment.next_run_at)
    enrollments_process_due(now=enrollment.next_run_at)
    assert list(Message.objects.values_list("step_id", flat=True)) == [second.pk]
    enrollment.refresh_from_db()
    assert enrollment.status == "completed"
