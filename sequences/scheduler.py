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
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
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
from sequences.windows import next_send_opening, open_hours, zone_or_utc
from subscribers.models import (
    Event,
    EventType,
    ListMembership,
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionKind,
)
from subscribers.services import event_record, events_record_many

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000  # 1,000 rows per transaction: a third faster than 500 here (docs/benchmarks.md)
EMPTY_WINDOW_REASON = "the send window is empty (no day or hour is open)"
SUPPRESSED_REASON = "suppressed"
LEFT_LIST_REASON = "left the list"

ALL_HOURS_OF_A_WEEK = 7 * 24

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
    # Batches come in due order, so each one starts where the last one's due times ended: the index
    # entries of the rows already processed (dead until vacuum) are not walked again on every claim.
    # A row skipped meanwhile (locked by another scheduler that then rolled back, or of a sequence
    # resumed during the run) is due on the next tick.
    after: datetime | None = None
    while max_batches is None or batches < max_batches:
        result, due_again, last_due = _batch_process(now=now, batch_size=batch_size, after=after)
        total += result
        batches += 1
        after = last_due or after
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
            result, due_again, _ = _batch_process(now=now, batch_size=len(chunk), enrollment_ids=chunk)
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
    *, now: datetime, batch_size: int, enrollment_ids: list[int] | None = None, after: datetime | None = None
) -> tuple[ProcessResult, bool, datetime | None]:
    """One claimed batch (due at or after `after`, when given), processed in one transaction; whether some
    of it is due again already, and the latest due time it claimed."""
    claim = Enrollment.objects.filter(_due(now))
    if enrollment_ids is not None:
        claim = claim.filter(pk__in=enrollment_ids)
    if after is not None:
        claim = claim.filter(next_run_at__gte=after)
    rows = [
        _Row(*values)
        for values in claim.select_for_update(skip_locked=True, of=("self",))
        .order_by("next_run_at", "id")
        .values_list(*_Row.CLAIMED)[:batch_size]
    ]
    if not rows:
        return ProcessResult(), False, None
    last_due = rows[-1].due_at
    related = _Related.load(rows)
    result = _batch_handle(rows, related=related, now=now)
    return result, any(row.next_run_at is not None and row.next_run_at <= now for row in rows), last_due


class _Row:
    """One claimed enrollment as plain values (no model instances: building 500 of them per batch, with
    their subscribers, was most of the scheduler's time), and the state it moves to."""

    CLAIMED = ("id", "workspace_id", "sequence_id", "subscriber_id", "current_step_id", "enrolled_at",
               "next_run_at", "subscriber__email", "subscriber__status", "subscriber__time_zone")  # fmt: skip
    __slots__ = (*CLAIMED[:6], "due_at", "email", "subscriber_status", "time_zone",
                 "status", "next_run_at", "finished_at", "exit_reason")  # fmt: skip

    def __init__(
        self, id: int, workspace_id: int, sequence_id: int, subscriber_id: int, current_step_id: int | None,
        enrolled_at: datetime, due_at: datetime, email: str, subscriber_status: str, time_zone: str,
    ) -> None:  # fmt: skip
        self.id, self.workspace_id, self.sequence_id, self.subscriber_id = id, workspace_id, sequence_id, subscriber_id
        self.current_step_id, self.enrolled_at, self.due_at = current_step_id, enrolled_at, due_at
        self.email, self.subscriber_status, self.time_zone = email, subscriber_status, time_zone
        self.status: str = EnrollmentStatus.ACTIVE
        self.next_run_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.exit_reason = ""

    def finish(self, *, status: str, reason: str, now: datetime) -> None:
        self.status = status
        self.exit_reason = reason[:255]
        self.finished_at = now
        self.next_run_at = None
        if status == EnrollmentStatus.COMPLETED:
            self.current_step_id = None


@dataclass
class _Related:
    """The batch's few workspaces, sequences and steps (with templates), loaded once."""

    workspaces: dict[int, Workspace]
    sequences: dict[int, Sequence]
    steps: dict[int, list[Step]]  # by sequence, in order
    step_by_id: dict[int, Step]

    @classmethod
    def load(cls, rows: list[_Row]) -> _Related:
        workspaces = Workspace.objects.in_bulk({row.workspace_id for row in rows})
        sequences = Sequence.objects.in_bulk({row.sequence_id for row in rows})
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
        # A step of another sequence: only a hand-edited row can point there.
        strays = {row.current_step_id for row in rows if row.current_step_id is not None} - by_id.keys()
        if strays:
            by_id.update(Step.objects.select_related("template").in_bulk(strays))
        return cls(workspaces=workspaces, sequences=sequences, steps=steps, step_by_id=by_id)


def _batch_handle(rows: list[_Row], *, related: _Related, now: datetime) -> ProcessResult:
    result = ProcessResult(claimed=len(rows))
    suppressed = _suppressed(rows)
    off_list = _off_list(rows, related=related)
    goals = _goals_reached(rows, related=related)
    exits: list[tuple[_Row, str]] = []
    goals_met: list[tuple[_Row, Event]] = []
    to_send: list[tuple[_Row, Step]] = []  # each with its current step
    openings: dict[tuple[int, int, str], datetime | None] = {}  # the same moment: one answer per window and zone

    for row in rows:
        if row.subscriber_status != SubscriberStatus.ACTIVE:
            exits.append((row, f"subscriber {row.subscriber_status}"))
        elif (row.workspace_id, row.email.lower()) in suppressed:
            exits.append((row, SUPPRESSED_REASON))
        elif row.id in off_list:
            exits.append((row, LEFT_LIST_REASON))
        elif row.id in goals:
            goal = goals[row.id]
            goals_met.append((row, goal))
            row.finish(status=EnrollmentStatus.COMPLETED, reason=f"goal reached: {goal.name}", now=now)
            result.completed += 1
        elif row.current_step_id is None or (step := related.step_by_id.get(row.current_step_id)) is None:
            row.finish(status=EnrollmentStatus.COMPLETED, reason="no step left to run", now=now)
            result.completed += 1
        else:
            key = (row.sequence_id, row.workspace_id, row.time_zone)
            if key not in openings:
                openings[key] = _opening(row, related=related, now=now)
            opening = openings[key]
            if opening is None:
                exits.append((row, EMPTY_WINDOW_REASON))
            elif opening > now:
                row.next_run_at = opening
                result.deferred_by_window += 1
            else:
                to_send.append((row, step))

    for row, reason in exits:
        row.finish(status=EnrollmentStatus.EXITED, reason=reason, now=now)
    result.exited = len(exits)
    if exits or goals_met:
        _events_record(exits, goals_met, related=related, now=now)

    message_ids = _messages_create(to_send, related=related, now=now)
    result.messages_created = len(message_ids)
    for row, step in to_send:
        following = _step_after(related.steps[row.sequence_id], step)
        if following is None:
            row.finish(status=EnrollmentStatus.COMPLETED, reason="", now=now)
            result.completed += 1
        else:
            row.current_step_id = following.pk
            row.next_run_at = now + following.delay

    _enrollments_save(rows)
    if message_ids:
        transaction.on_commit(lambda: _messages_created_notify(message_ids), robust=True)
    return result


def _opening(row: _Row, *, related: _Related, now: datetime) -> datetime | None:
    """When the row's step may go out: `now` when the window is always open (the usual case, no zone
    arithmetic), else the next opening on the subscriber's clock; None when the window is empty."""
    sequence, workspace = related.sequences[row.sequence_id], related.workspaces[row.workspace_id]
    days, start_hour, end_hour = sequence.send_days or [], sequence.send_start_hour, sequence.send_end_hour
    quiet_start, quiet_end = workspace.quiet_hours_start, workspace.quiet_hours_end
    allowed = open_hours(
        days=days, start_hour=start_hour, end_hour=end_hour, quiet_start=quiet_start, quiet_end=quiet_end
    )
    if len(allowed) == ALL_HOURS_OF_A_WEEK:
        return now
    return next_send_opening(
        moment=now, time_zone=zone_or_utc(row.time_zone, workspace.time_zone), days=days, start_hour=start_hour,
        end_hour=end_hour, quiet_start=quiet_start, quiet_end=quiet_end,
    )  # fmt: skip


def _enrollments_save(rows: list[_Row]) -> None:
    """Write the batch's new states: on PostgreSQL one UPDATE ... FROM unnest(...) for the whole batch;
    elsewhere one UPDATE per distinct state (a batch mostly moves to a few (next step, due time) pairs)."""
    if connection.vendor == "postgresql":
        exprs, constants, source, arrays = _pg_unnest([
            ("id", "bigint", [r.id for r in rows], True),
            ("status", "varchar", [r.status for r in rows], False),
            ("current_step_id", "bigint", [r.current_step_id for r in rows], False),
            ("next_run_at", "timestamptz", [r.next_run_at for r in rows], False),
            ("finished_at", "timestamptz", [r.finished_at for r in rows], False),
            ("exit_reason", "varchar", [r.exit_reason for r in rows], False),
        ])  # fmt: skip
        names = list(exprs)[1:]
        assignments = ", ".join(f"{name} = {exprs[name]}" for name in names)
        with connection.cursor() as cursor:
            # The id list again: joined to the unnest alone, the planner may hash the whole table.
            cursor.execute(
                f"UPDATE sequences_enrollment AS e SET {assignments} FROM {source} "
                f"WHERE e.id = {exprs['id']} AND e.id = ANY(%s::bigint[])",
                [*(constants[name] for name in names if name in constants), *arrays, arrays[0]],
            )
        return
    groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for r in rows:
        groups[(r.status, r.current_step_id, r.next_run_at, r.finished_at, r.exit_reason)].append(r.id)
    for (status, current_step_id, next_run_at, finished_at, exit_reason), ids in groups.items():
        Enrollment.objects.filter(pk__in=ids).update(
            status=status, current_step_id=current_step_id, next_run_at=next_run_at, finished_at=finished_at,
            exit_reason=exit_reason,
        )  # fmt: skip


def _pg_unnest(
    columns: list[tuple[str, str, list[Any], bool]],
) -> tuple[dict[str, str], dict[str, Any], str, list[str]]:
    """Rows for one set-based statement, given as columns (name, PostgreSQL type, values, always an array).
    A column whose values are all equal (most of them: a batch mostly shares its step, template and
    outcome) becomes one parameter; the others are arrays unnested together. Returns each column's SQL
    expression, the constant columns' values (to pass in the order the statement uses them), the FROM
    source and its array parameters."""
    exprs: dict[str, str] = {}
    constants: dict[str, Any] = {}
    arrays: list[Any] = []
    casts: list[str] = []
    for name, db_type, values, always_array in columns:
        first = values[0]
        if not always_array and all(value == first for value in values):
            exprs[name] = f"%s::{db_type}"
            constants[name] = first
        else:
            arrays.append(_pg_array(values))
            casts.append(f"%s::{db_type}[]")
            exprs[name] = f"v.c{len(arrays)}"
    aliases = ", ".join(f"c{i}" for i in range(1, len(arrays) + 1))
    return exprs, constants, f"unnest({', '.join(casts)}) AS v({aliases})", arrays


def _suppressed(rows: list[_Row]) -> set[tuple[int, str]]:
    """(workspace id, lower-cased address) of the batch's subscribers suppressed by address or domain."""
    emails = {row.email.lower() for row in rows}
    domains = {email.rsplit("@", 1)[-1] for email in emails}
    found = Suppression.objects.filter(workspace_id__in={row.workspace_id for row in rows}).filter(
        Q(kind=SuppressionKind.EMAIL, value__in=emails) | Q(kind=SuppressionKind.DOMAIN, value__in=domains)
    )
    blocked = set(found.values_list("workspace_id", "kind", "value"))
    if not blocked:
        return set()
    suppressed = set()
    for row in rows:
        email = row.email.lower()
        by_address = (row.workspace_id, SuppressionKind.EMAIL, email)
        by_domain = (row.workspace_id, SuppressionKind.DOMAIN, email.rsplit("@", 1)[-1])
        if by_address in blocked or by_domain in blocked:
            suppressed.add((row.workspace_id, email))
    return suppressed


def _off_list(rows: list[_Row], *, related: _Related) -> set[int]:
    """Enrollments of sequences with a list whose subscriber is no longer a `subscribed` member of it
    (unsubscribed from the list, or back to pending): one query for the batch's (list, subscriber) pairs."""
    list_of = {pk: sequence.mailing_list_id for pk, sequence in related.sequences.items() if sequence.mailing_list_id}
    with_list = [row for row in rows if row.sequence_id in list_of]
    if not with_list:
        return set()
    subscribed = set(
        ListMembership.objects.filter(
            mailing_list_id__in={list_of[row.sequence_id] for row in with_list},
            subscriber_id__in={row.subscriber_id for row in with_list},
            status=MembershipStatus.SUBSCRIBED,
        ).values_list("mailing_list_id", "subscriber_id")
    )
    return {row.id for row in with_list if (list_of[row.sequence_id], row.subscriber_id) not in subscribed}


def _goals_reached(rows: list[_Row], *, related: _Related) -> dict[int, Event]:
    """Enrollments whose goal event happened since they enrolled, with the first such event. The goal
    handler usually completed them already; this catches an event whose handler has not run yet."""
    from sequences.services import NOT_GOALS  # services import this module

    goal_of = {pk: sequence.goal_event for pk, sequence in related.sequences.items() if sequence.goal_event}
    with_goal = [row for row in rows if row.sequence_id in goal_of]
    if not with_goal:
        return {}
    events = Event.objects.filter(
        workspace_id__in={row.workspace_id for row in with_goal},
        subscriber_id__in={row.subscriber_id for row in with_goal},
        name__in={goal_of[row.sequence_id] for row in with_goal},
        occurred_at__gte=min(row.enrolled_at for row in with_goal),
    ).exclude(type__in=NOT_GOALS)
    by_subscriber: dict[tuple[int | None, str], list[Event]] = defaultdict(list)
    for event in events.only("id", "subscriber_id", "name", "occurred_at").order_by("occurred_at", "id"):
        by_subscriber[(event.subscriber_id, event.name)].append(event)
    reached = {}
    for row in with_goal:
        for event in by_subscriber.get((row.subscriber_id, goal_of[row.sequence_id]), []):
            if event.occurred_at >= row.enrolled_at:
                reached[row.id] = event
                break
    return reached


def _step_after(steps: list[Step], current: Step) -> Step | None:
    """The step that follows `current` by position (ties broken by id, as everywhere)."""
    return next((step for step in steps if (step.position, step.pk) > (current.position, current.pk)), None)


def _messages_create(to_send: list[tuple[_Row, Step]], *, related: _Related, now: datetime) -> list[int]:
    """One queued Message per enrollment for its current step; the ids of those created. A message that
    already exists for (enrollment, step) is not created again: the unique key answers."""
    if not to_send:
        return []
    values: dict[str, list[Any]] = {
        name: [] for name in ("workspace_id", "subscriber_id", "enrollment_id", "step_id", "template_id",
                              "to_email", "from_email", "subject")
    }  # fmt: skip
    for row, step in to_send:
        template, workspace = step.template, related.workspaces[row.workspace_id]
        for name, value in (
            ("workspace_id", row.workspace_id), ("subscriber_id", row.subscriber_id), ("enrollment_id", row.id),
            ("step_id", step.pk), ("template_id", template.pk), ("to_email", row.email),
            ("from_email", template.from_email or workspace.from_email or settings.FROM_EMAIL),
            # The raw subject, for lists and the admin until the sender renders the real one.
            ("subject", template.subject),
        ):  # fmt: skip
            values[name].append(value)
    fixed = {"status": MessageStatus.QUEUED, "send_after": now, "created_at": now, "updated_at": timezone.now()}
    if connection.vendor == "postgresql":
        return _messages_insert(values, fixed)
    return _messages_create_portable(values, fixed)


def _messages_insert(values: dict[str, list[Any]], fixed: dict[str, object]) -> list[int]:
    """PostgreSQL: the whole batch in one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING
    RETURNING id (a row that conflicts with the (enrollment, step) key, committed or being inserted by
    another transaction, is skipped). Every other column gets its model default, so new fields are covered."""
    fields = [field for field in Message._meta.concrete_fields if not field.primary_key]
    exprs, constants, source, arrays = _pg_unnest([
        (field.attname, str(field.db_type(connection)), values[field.attname], field.attname == "enrollment_id")
        for field in fields if field.attname in values
    ])  # fmt: skip
    selects, params = [], []
    for field in fields:
        if field.attname in exprs:
            selects.append(exprs[field.attname])
            if field.attname in constants:
                params.append(constants[field.attname])
        else:
            value = fixed[field.attname] if field.attname in fixed else field.get_default()
            selects.append(f"%s::{field.db_type(connection)}")
            params.append(field.get_db_prep_save(value, connection))
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    sql = (
        f"INSERT INTO {Message._meta.db_table} ({columns}) SELECT {', '.join(selects)} FROM {source} "
        "ON CONFLICT DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *arrays])
        return [pk for (pk,) in cursor.fetchall()]


def _messages_create_portable(values: dict[str, list[Any]], fixed: dict[str, object]) -> list[int]:
    """Other databases (SQLite): skip the pairs that exist, bulk-create the rest; on a race, one by one."""
    pairs = list(zip(values["enrollment_id"], values["step_id"], strict=True))
    existing = set(
        Message.objects.filter(
            enrollment_id__in=values["enrollment_id"], step_id__in=set(values["step_id"])
        ).values_list("enrollment_id", "step_id")
    )
    new = [
        Message(**{name: column[i] for name, column in values.items()}, **fixed)
        for i, pair in enumerate(pairs)
        if pair not in existing
    ]
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


def _events_record(
    exits: list[tuple[_Row, str]], goals_met: list[tuple[_Row, Event]], *, related: _Related, now: datetime
) -> None:
    """The `exited` events (one insert per workspace) and the `goal` events of the batch's rare rows."""
    subscribers = Subscriber.objects.in_bulk({row.subscriber_id for row, _ in [*exits, *goals_met]})
    for row, goal in goals_met:
        event_record(
            workspace=related.workspaces[row.workspace_id], subscriber=subscribers[row.subscriber_id],
            type=EventType.GOAL, name=goal.name, sequence_id=row.sequence_id, step_id=row.current_step_id,
            occurred_at=goal.occurred_at, properties={"enrollment_id": row.id, "event_id": goal.pk},
            dedupe_key=f"goal:{row.id}",
        )  # fmt: skip
    by_workspace: dict[int, list[Event]] = defaultdict(list)
    for row, reason in exits:
        by_workspace[row.workspace_id].append(
            Event(
                workspace=related.workspaces[row.workspace_id], subscriber=subscribers[row.subscriber_id],
                type=EventType.EXITED, sequence_id=row.sequence_id, step_id=row.current_step_id, occurred_at=now,
                properties={"enrollment_id": row.id, "reason": reason},
            )
        )  # fmt: skip
    for workspace_id, events in by_workspace.items():
        events_record_many(workspace=related.workspaces[workspace_id], events=events)


def _pg_array(values: list[Any]) -> str:
    """A PostgreSQL array literal (text, cast in the statement) of ints, strings, datetimes and None.
    Much cheaper than the driver's per-element adaptation, which was a fifth of a batch's Python time."""
    parts = []
    for value in values:
        if value is None:
            parts.append("NULL")
        elif isinstance(value, bool):
            parts.append("t" if value else "f")
        elif isinstance(value, int):
            parts.append(str(value))
        else:
            text = value.isoformat() if isinstance(value, datetime) else str(value)
            parts.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"
