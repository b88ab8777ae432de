"""The scheduler: due enrollments, claimed in batches, become outbox Messages and advance to their next step.

Due work is found only through the partial index `enrollment_due` (active enrollments by `next_run_at`);
nothing waits in the broker as an ETA task. Each batch is one transaction: claim with
`SELECT ... FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite serialises writers, the settings begin every
transaction IMMEDIATE), re-check each subscriber, apply the send window, create the Message (unique per
enrollment and step) and advance. After the commit, the new message ids go to the callbacks registered
with `on_messages_created` (the sender's enqueue), so nothing is handed on for a rolled-back batch.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Workspace
from config.queues import Queue
from sequences.models import (
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    Sequence,
    SequenceStatus,
    Step,
)
from sequences.windows import next_send_opening, zone_or_utc
from subscribers.models import Event, EventType, SubscriberStatus, Suppression, SuppressionKind
from subscribers.services import event_record, events_record_many

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
EMPTY_WINDOW_REASON = "the send window is empty (no day or hour is open)"
SUPPRESSED_REASON = "suppressed"

# The subscriber columns a batch never reads (the attributes JSON is the costly one to decode).
SUBSCRIBER_UNUSED = [
    f"subscriber__{name}"
    for name in ("attributes", "first_name", "last_name", "locale", "status_reason", "status_changed_by",
                 "consent_source", "consent_ip", "consent_at", "confirmed_at", "status_changed_at")
]  # fmt: skip

MessagesCallback = Callable[[list[int]], None]
_messages_callbacks: list[MessagesCallback] = []


def on_messages_created(callback: MessagesCallback) -> MessagesCallback:
    """Register `callback(message_ids)`, called after each batch that created messages commits.

    The sender registers its enqueue here from an AppConfig.ready(); with nothing registered the
    messages wait, queued, for the sender's own periodic claim.
    """
    if callback not in _messages_callbacks:
        _messages_callbacks.append(callback)
    return callback


def _messages_created_notify(message_ids: list[int]) -> None:
    for callback in list(_messages_callbacks):
        try:
            callback(message_ids)
        except Exception:  # the messages are committed and the sender's tick finds them anyway
            logger.exception("messages-created callback %r failed for %d messages", callback, len(message_ids))


@dataclass
class ProcessResult:
    """What a scheduler run did: enrollments claimed, and what became of them."""

    claimed: int = 0
    messages_created: int = 0
    deferred_by_window: int = 0
    exited: int = 0
    completed: int = 0

    def __iadd__(self, other: ProcessResult) -> ProcessResult:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        return self

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


def enrollments_process_due(
    *, now: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE, max_batches: int | None = None
) -> ProcessResult:
    """Process every enrollment due at `now` (default: the current time), one batch per transaction,
    until none is left (or `max_batches` ran). Safe to run in any number of processes at once."""
    now = now or timezone.now()
    total = ProcessResult()
    batches = 0
    while max_batches is None or batches < max_batches:
        result, due_again = _batch_process(now=now, batch_size=batch_size)
        total += result
        batches += 1
        # A short batch means nothing was left, unless a step without delay came due again right away.
        if result.claimed < batch_size and not due_again:
            break
    return total


def enrollments_process(*, enrollment_ids: Iterable[int], now: datetime | None = None) -> ProcessResult:
    """Process these enrollments, those of them that are still due (a newly enrolled subscriber whose
    first step has no delay); anything else is left for its time. Idempotent."""
    now = now or timezone.now()
    ids = sorted(set(enrollment_ids))
    total = ProcessResult()
    for start in range(0, len(ids), DEFAULT_BATCH_SIZE):
        chunk = ids[start : start + DEFAULT_BATCH_SIZE]
        while True:
            result, due_again = _batch_process(now=now, batch_size=len(chunk), enrollment_ids=chunk)
            total += result
            if not due_again:
                break
    return total


def enrollments_process_enqueue(*, enrollment_ids: list[int]) -> None:
    """Hand enrollments that are due now to a worker (call it from `transaction.on_commit`)."""
    from sequences.tasks import enrollments_process_task  # tasks import this module

    enrollments_process_task.apply_async(args=[list(enrollment_ids)], queue=Queue.DEFAULT.value)


def _due(now: datetime) -> Q:
    # status + next_run_at is the `enrollment_due` partial index; paused, draft and archived
    # sequences' enrollments are left as they are until the sequence is active again.
    return Q(status=EnrollmentStatus.ACTIVE, next_run_at__lte=now, sequence__status=SequenceStatus.ACTIVE)


@transaction.atomic
def _batch_process(
    *, now: datetime, batch_size: int, enrollment_ids: list[int] | None = None
) -> tuple[ProcessResult, bool]:
    """One claimed batch, processed in one transaction; and whether some of it is due again already."""
    claim = Enrollment.objects.filter(_due(now))
    if enrollment_ids is not None:
        claim = claim.filter(pk__in=enrollment_ids)
    enrollments = list(
        claim.select_for_update(skip_locked=True, of=("self",))
        .select_related("subscriber")
        .defer(*SUBSCRIBER_UNUSED)
        .order_by("next_run_at", "id")[:batch_size]
    )
    if not enrollments:
        return ProcessResult(), False
    steps = _related_attach(enrollments)
    result = _batch_handle(enrollments, steps=steps, now=now)
    return result, any(e.next_run_at is not None and e.next_run_at <= now for e in enrollments)


def _batch_handle(enrollments: list[Enrollment], *, steps: dict[int, list[Step]], now: datetime) -> ProcessResult:
    result = ProcessResult(claimed=len(enrollments))
    suppressed = _suppressed(enrollments)
    goals = _goals_reached(enrollments)
    exits: list[tuple[Enrollment, str]] = []
    to_send: list[tuple[Enrollment, Step]] = []  # each with its current step

    for enrollment in enrollments:
        subscriber, sequence, workspace = enrollment.subscriber, enrollment.sequence, enrollment.workspace
        if subscriber.status != SubscriberStatus.ACTIVE:
            exits.append((enrollment, f"subscriber {subscriber.status}"))
        elif (workspace.pk, subscriber.email.lower()) in suppressed:
            exits.append((enrollment, SUPPRESSED_REASON))
        elif enrollment.pk in goals:
            goal = goals[enrollment.pk]
            _finish(enrollment, status=EnrollmentStatus.COMPLETED, reason=f"goal reached: {goal.name}", now=now)
            event_record(
                workspace=workspace, subscriber=subscriber, type=EventType.GOAL, name=goal.name,
                sequence_id=sequence.pk, step_id=enrollment.current_step_id, occurred_at=goal.occurred_at,
                properties={"enrollment_id": enrollment.pk, "event_id": goal.pk}, dedupe_key=f"goal:{enrollment.pk}",
            )  # fmt: skip
            result.completed += 1
        elif (step := enrollment.current_step) is None:
            _finish(enrollment, status=EnrollmentStatus.COMPLETED, reason="no step left to run", now=now)
            result.completed += 1
        else:
            opening = next_send_opening(
                moment=now, time_zone=zone_or_utc(subscriber.time_zone, workspace.time_zone),
                days=sequence.send_days or [], start_hour=sequence.send_start_hour, end_hour=sequence.send_end_hour,
                quiet_start=workspace.quiet_hours_start, quiet_end=workspace.quiet_hours_end,
            )  # fmt: skip
            if opening is None:
                exits.append((enrollment, EMPTY_WINDOW_REASON))
            elif opening > now:
                enrollment.next_run_at = opening
                result.deferred_by_window += 1
            else:
                to_send.append((enrollment, step))

    for enrollment, reason in exits:
        _finish(enrollment, status=EnrollmentStatus.EXITED, reason=reason, now=now)
    result.exited = len(exits)
    _exits_record(exits, now=now)

    message_ids = _messages_create(to_send, now=now)
    result.messages_created = len(message_ids)
    for enrollment, step in to_send:
        following = _step_after(steps[enrollment.sequence_id], step)
        if following is None:
            _finish(enrollment, status=EnrollmentStatus.COMPLETED, reason="", now=now)
            result.completed += 1
        else:
            enrollment.current_step = following
            enrollment.next_run_at = now + following.delay

    _enrollments_save(enrollments)
    if message_ids:
        transaction.on_commit(lambda: _messages_created_notify(message_ids), robust=True)
    return result


def _enrollments_save(enrollments: list[Enrollment]) -> None:
    """Write the batch's new states with one UPDATE per distinct state: a batch mostly moves to a few
    (next step, due time) pairs, and this is far cheaper than bulk_update's CASE per row."""
    groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for e in enrollments:
        groups[(e.status, e.current_step_id, e.next_run_at, e.finished_at, e.exit_reason)].append(e.pk)
    for (status, current_step_id, next_run_at, finished_at, exit_reason), ids in groups.items():
        Enrollment.objects.filter(pk__in=ids).update(
            status=status, current_step_id=current_step_id, next_run_at=next_run_at, finished_at=finished_at,
            exit_reason=exit_reason,
        )  # fmt: skip


def _finish(enrollment: Enrollment, *, status: str, reason: str, now: datetime) -> None:
    enrollment.status = status
    enrollment.exit_reason = reason[:255]
    enrollment.finished_at = now
    enrollment.next_run_at = None
    if status == EnrollmentStatus.COMPLETED:
        enrollment.current_step = None


def _suppressed(enrollments: list[Enrollment]) -> set[tuple[int, str]]:
    """(workspace id, lower-cased address) of the batch's subscribers suppressed by address or domain."""
    emails = {e.subscriber.email.lower() for e in enrollments}
    domains = {email.rsplit("@", 1)[-1] for email in emails}
    rows = Suppression.objects.filter(workspace_id__in={e.workspace_id for e in enrollments}).filter(
        Q(kind=SuppressionKind.EMAIL, value__in=emails) | Q(kind=SuppressionKind.DOMAIN, value__in=domains)
    )
    blocked = set(rows.values_list("workspace_id", "kind", "value"))
    found = set()
    for enrollment in enrollments:
        email = enrollment.subscriber.email.lower()
        by_address = (enrollment.workspace_id, SuppressionKind.EMAIL, email)
        by_domain = (enrollment.workspace_id, SuppressionKind.DOMAIN, email.rsplit("@", 1)[-1])
        if by_address in blocked or by_domain in blocked:
            found.add((enrollment.workspace_id, email))
    return found


def _goals_reached(enrollments: list[Enrollment]) -> dict[int, Event]:
    """Enrollments whose goal event happened since they enrolled, with the first such event. The goal
    handler usually completed them already; this catches an event whose handler has not run yet."""
    from sequences.services import NOT_GOALS  # services import this module

    with_goal = [e for e in enrollments if e.sequence.goal_event]
    if not with_goal:
        return {}
    events = Event.objects.filter(
        workspace_id__in={e.workspace_id for e in with_goal},
        subscriber_id__in={e.subscriber_id for e in with_goal},
        name__in={e.sequence.goal_event for e in with_goal},
        occurred_at__gte=min(e.enrolled_at for e in with_goal),
    ).exclude(type__in=NOT_GOALS)
    by_subscriber: dict[tuple[int | None, str], list[Event]] = defaultdict(list)
    for event in events.only("id", "subscriber_id", "name", "occurred_at").order_by("occurred_at", "id"):
        by_subscriber[(event.subscriber_id, event.name)].append(event)
    reached = {}
    for enrollment in with_goal:
        for event in by_subscriber.get((enrollment.subscriber_id, enrollment.sequence.goal_event), []):
            if event.occurred_at >= enrollment.enrolled_at:
                reached[enrollment.pk] = event
                break
    return reached


def _related_attach(enrollments: list[Enrollment]) -> dict[int, list[Step]]:
    """Load the batch's few workspaces, sequences and steps (with templates) once, attach them to the
    enrollments, and return each sequence's steps in order. Joining them per row would build the same
    handful of objects thousands of times."""
    workspaces = Workspace.objects.in_bulk({e.workspace_id for e in enrollments})
    sequences = Sequence.objects.in_bulk({e.sequence_id for e in enrollments})
    steps: dict[int, list[Step]] = defaultdict(list)
    by_id: dict[int, Step] = {}
    ordered = (
        Step.objects.filter(sequence_id__in=sequences)
        .select_related("template")
        .order_by("sequence_id", "position", "id")
    )
    for step in ordered:
        steps[step.sequence_id].append(step)
        by_id[step.pk] = step
    for enrollment in enrollments:
        enrollment.workspace = workspaces[enrollment.workspace_id]
        enrollment.sequence = sequences[enrollment.sequence_id]
        if enrollment.current_step_id is not None:
            current = by_id.get(enrollment.current_step_id)
            if current is None:  # a step of another sequence: only a hand-edited row can point there
                current = Step.objects.select_related("template").filter(pk=enrollment.current_step_id).first()
            enrollment.current_step = current
    return steps


def _step_after(steps: list[Step], current: Step) -> Step | None:
    """The step that follows `current` by position (ties broken by id, as everywhere)."""
    return next((step for step in steps if (step.position, step.pk) > (current.position, current.pk)), None)


def _messages_create(to_send: list[tuple[Enrollment, Step]], *, now: datetime) -> list[int]:
    """One queued Message per enrollment for its current step; the ids of those created. A message that
    already exists for (enrollment, step) is not created again (the unique key guards it too)."""
    if not to_send:
        return []
    existing = set(
        Message.objects.filter(
            enrollment_id__in=[e.pk for e, _ in to_send], step_id__in={step.pk for _, step in to_send}
        ).values_list("enrollment_id", "step_id")
    )
    new = [_message_for(e, step, now=now) for e, step in to_send if (e.pk, step.pk) not in existing]
    if not new:
        return []
    try:
        with transaction.atomic():
            created = Message.objects.bulk_create(new)
        return [message.pk for message in created]
    except IntegrityError:  # someone else created one of them since the check: go one by one
        ids = []
        for message in new:
            try:
                with transaction.atomic():
                    message.pk = None
                    message.save(force_insert=True)
                    ids.append(message.pk)
            except IntegrityError:
                continue
        return ids


def _message_for(enrollment: Enrollment, step: Step, *, now: datetime) -> Message:
    template, workspace = step.template, enrollment.workspace
    return Message(
        workspace=workspace, subscriber=enrollment.subscriber, enrollment=enrollment, step=step, template=template,
        to_email=enrollment.subscriber.email,
        from_email=template.from_email or workspace.from_email or settings.FROM_EMAIL,
        # The raw subject, for lists and the admin until the sender renders the real one.
        subject=template.subject, status=MessageStatus.QUEUED, send_after=now, created_at=now,
    )  # fmt: skip


def _exits_record(exits: list[tuple[Enrollment, str]], *, now: datetime) -> None:
    by_workspace: dict[int, list[Event]] = defaultdict(list)
    for enrollment, reason in exits:
        by_workspace[enrollment.workspace_id].append(
            Event(
                workspace=enrollment.workspace, subscriber=enrollment.subscriber, type=EventType.EXITED,
                sequence_id=enrollment.sequence_id, step_id=enrollment.current_step_id, occurred_at=now,
                properties={"enrollment_id": enrollment.pk, "reason": reason},
            )
        )  # fmt: skip
    for events in by_workspace.values():
        events_record_many(workspace=events[0].workspace, events=events)
