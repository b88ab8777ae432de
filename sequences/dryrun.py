"""Dry run: who would get which email of a sequence, and when, over the next days; nothing is written."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import Workspace
from core.errors import NotFound, ValidationFailed
from sequences.models import Enrollment, EnrollmentStatus, Sequence, SequenceStatus, Step
from sequences.scheduler import _goals_reached, _off_list, _Related, _Row, _step_after, _suppressed
from sequences.windows import next_send_opening, zone_or_utc
from subscribers.models import SubscriberStatus

DRY_RUN_MAX_DAYS = 90
DRY_RUN_DEFAULT_DAYS = 14
DRY_RUN_DEFAULT_ROWS = 1000
DRY_RUN_MAX_ROWS = 5000
# Enrollments looked at by one request, whatever their rows: the rest is the next page's.
DRY_RUN_MAX_ENROLLMENTS = 10_000
DRY_RUN_CHUNK = 500
DRY_RUN_MAX_SUBSCRIBER_IDS = 1000


class Blocked:
    """Why an active enrollment would send nothing (the scheduler would exit or complete it)."""

    UNSUBSCRIBED = SubscriberStatus.UNSUBSCRIBED.value
    BOUNCED = SubscriberStatus.BOUNCED.value
    COMPLAINED = SubscriberStatus.COMPLAINED.value
    SUPPRESSED = "suppressed"
    LEFT_LIST = "left_list"
    GOAL_REACHED = "goal_reached"
    EMPTY_WINDOW = "empty_window"
    NOT_SCHEDULED = "not_scheduled"
    NO_STEP_LEFT = "no_step_left"


@dataclass(frozen=True)
class PlannedSend:
    enrollment_id: int
    subscriber_id: int
    email: str
    step_id: int
    position: int
    template_name: str
    subject: str
    planned_at: datetime  # UTC
    local_at: datetime  # the same instant on the subscriber's clock
    time_zone: str


@dataclass
class DryRun:
    sequence_id: int
    sequence_status: str
    days: int
    starts_at: datetime
    ends_at: datetime
    notes: list[str] = field(default_factory=list)
    rows: list[PlannedSend] = field(default_factory=list)
    enrollments_examined: int = 0
    blocked: Counter[str] = field(default_factory=Counter)
    truncated: bool = False
    next_after_enrollment_id: int | None = None

    def per_step(self) -> list[dict[str, object]]:
        counts = Counter((row.step_id, row.position, row.template_name) for row in self.rows)
        return [
            {"step_id": step_id, "position": position, "template_name": name, "count": count}
            for (step_id, position, name), count in sorted(counts.items(), key=lambda item: (item[0][1], item[0][0]))
        ]

    def per_day(self) -> list[dict[str, object]]:
        counts = Counter(row.planned_at.date().isoformat() for row in self.rows)
        return [{"date": day, "count": count} for day, count in sorted(counts.items())]


def _notes(*, sequence: Sequence, workspace: Workspace) -> list[str]:
    notes = []
    if sequence.status == SequenceStatus.PAUSED:
        notes.append(
            "The sequence is paused: nothing is sent until it is resumed. The plan shows what would happen "
            "if it were resumed now (enrollments already due would go out at the first open hour)."
        )
    elif sequence.status == SequenceStatus.DRAFT:
        notes.append("The sequence is a draft: it has no enrollments and sends nothing until it is activated.")
    elif sequence.status == SequenceStatus.ARCHIVED:
        notes.append("The sequence is archived: its enrollments have exited and it sends nothing.")
    if workspace.sending_paused_at is not None:
        notes.append(
            f"Sending is paused for the whole workspace ({workspace.sending_paused_reason or 'paused'}): "
            "messages wait until it is resumed."
        )
    notes.append(
        "Real times may be later: the scheduler runs every "
        f"{settings.SCHEDULER_TICK_SECONDS} s, and the workspace's frequency cap and sending rate limits "
        "may defer a message. A goal event, an unsubscribe or an edit to the steps changes the plan."
    )
    return notes


def sequence_dry_run(
    *,
    workspace: Workspace,
    sequence: Sequence,
    days: int = DRY_RUN_DEFAULT_DAYS,
    limit: int | None = None,
    subscriber_ids: list[int] | None = None,
    after_enrollment_id: int | None = None,
    now: datetime | None = None,
) -> DryRun:
    """Simulate the scheduler over the next `days` for the sequence's active enrollments, in id order.

    Each enrollment walks its remaining steps from `current_step` at `next_run_at` (now when overdue):
    a step goes out at the first open hour of the send window and quiet hours on the subscriber's
    clock (`next_send_opening`, as the scheduler does), and the next step's delay counts from that send.
    Subscribers the scheduler would exit (not active, suppressed, off the sequence's list, goal reached,
    empty window) send
    nothing and are counted in `blocked`. A paused sequence is simulated as if resumed now. Reads only.

    Bounded: enrollments are read `DRY_RUN_CHUNK` at a time; a page stops after `limit` rows (default
    1,000, at most 5,000) or `DRY_RUN_MAX_ENROLLMENTS` enrollments, whole enrollments only, and says where
    the next page starts (`next_after_enrollment_id`). The summary counts the rows of this page.
    """
    if sequence.workspace_id != workspace.pk:
        raise NotFound("Sequence not found.")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= DRY_RUN_MAX_DAYS:
        raise ValidationFailed.for_field("days", f"A whole number of days from 1 to {DRY_RUN_MAX_DAYS}.")
    limit = DRY_RUN_DEFAULT_ROWS if limit is None else limit
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= DRY_RUN_MAX_ROWS:
        raise ValidationFailed.for_field("limit", f"From 1 to {DRY_RUN_MAX_ROWS} rows.")
    if subscriber_ids is not None and len(subscriber_ids) > DRY_RUN_MAX_SUBSCRIBER_IDS:
        raise ValidationFailed.for_field("subscriber_ids", f"At most {DRY_RUN_MAX_SUBSCRIBER_IDS} ids.")

    now = now or timezone.now()
    horizon = now + timedelta(days=days)
    result = DryRun(
        sequence_id=sequence.pk, sequence_status=sequence.status, days=days, starts_at=now, ends_at=horizon,
        notes=_notes(sequence=sequence, workspace=workspace),
    )  # fmt: skip
    steps = list(Step.objects.filter(sequence=sequence).select_related("template").order_by("position", "id"))
    by_id = {step.pk: step for step in steps}
    related = _Related(
        workspaces={workspace.pk: workspace}, sequences={sequence.pk: sequence}, steps={sequence.pk: steps},
        step_by_id=by_id,
    )  # fmt: skip

    active = Enrollment.objects.filter(workspace=workspace, sequence=sequence, status=EnrollmentStatus.ACTIVE)
    if subscriber_ids is not None:
        active = active.filter(subscriber_id__in=set(subscriber_ids))
    cursor = after_enrollment_id or 0
    while True:
        budget = DRY_RUN_MAX_ENROLLMENTS - result.enrollments_examined
        chunk = list(
            active.filter(pk__gt=cursor).select_related("subscriber").order_by("pk")[: min(DRY_RUN_CHUNK, budget)]
        )
        if not chunk:
            return result
        for enrollment in chunk:  # what the scheduler's batch attaches, from what is loaded once here
            enrollment.workspace = workspace
            enrollment.sequence = sequence
        # The scheduler's own checks, on the same plain rows it builds for a claimed batch.
        rows = [_scheduler_row(enrollment) for enrollment in chunk]
        suppressed = _suppressed(rows)
        off_list = _off_list(rows, related=related)
        goals = _goals_reached(rows, related=related)
        for enrollment in chunk:
            reason, planned = _simulate(
                enrollment, steps=steps, by_id=by_id, now=now, horizon=horizon,
                suppressed=(workspace.pk, enrollment.subscriber.email.lower()) in suppressed,
                left_list=enrollment.pk in off_list, goal_reached=enrollment.pk in goals,
            )  # fmt: skip
            if result.rows and len(result.rows) + len(planned) > limit:
                result.truncated = True
                result.next_after_enrollment_id = cursor
                return result
            if reason is not None:
                result.blocked[reason] += 1
            if len(planned) > limit:  # one enrollment alone fills the page: keep its first rows
                planned = planned[:limit]
                result.truncated = True
            result.rows.extend(planned)
            result.enrollments_examined += 1
            cursor = enrollment.pk
            if len(result.rows) >= limit or result.enrollments_examined >= DRY_RUN_MAX_ENROLLMENTS:
                if active.filter(pk__gt=cursor).exists():
                    result.truncated = True
                    result.next_after_enrollment_id = cursor
                return result


def _scheduler_row(enrollment: Enrollment) -> _Row:
    subscriber = enrollment.subscriber
    # The due time plays no part in the checks; an enrollment never scheduled is reported by _simulate.
    due_at = enrollment.next_run_at or enrollment.enrolled_at
    return _Row(
        enrollment.pk, enrollment.workspace_id, enrollment.sequence_id, enrollment.subscriber_id,
        enrollment.current_step_id, enrollment.enrolled_at, due_at, subscriber.email,
        subscriber.status, subscriber.time_zone,
    )  # fmt: skip


def _simulate(
    enrollment: Enrollment,
    *,
    steps: list[Step],
    by_id: dict[int, Step],
    now: datetime,
    horizon: datetime,
    suppressed: bool,
    left_list: bool,
    goal_reached: bool,
) -> tuple[str | None, list[PlannedSend]]:
    """(why it sends nothing, or None; the sends it would make before `horizon`), by the scheduler's rules."""
    subscriber, sequence, workspace = enrollment.subscriber, enrollment.sequence, enrollment.workspace
    if subscriber.status != SubscriberStatus.ACTIVE:
        return subscriber.status, []
    if suppressed:
        return Blocked.SUPPRESSED, []
    if left_list:
        return Blocked.LEFT_LIST, []
    if goal_reached:
        return Blocked.GOAL_REACHED, []
    step = by_id.get(enrollment.current_step_id) if enrollment.current_step_id is not None else None
    if step is None:
        return Blocked.NO_STEP_LEFT, []
    if enrollment.next_run_at is None:  # never due: the scheduler does not pick it up
        return Blocked.NOT_SCHEDULED, []
    zone = zone_or_utc(subscriber.time_zone, workspace.time_zone)
    planned: list[PlannedSend] = []
    due = max(enrollment.next_run_at, now)
    current: Step | None = step
    while current is not None and due < horizon:
        opening = next_send_opening(
            moment=due, time_zone=zone, days=sequence.send_days or [], start_hour=sequence.send_start_hour,
            end_hour=sequence.send_end_hour, quiet_start=workspace.quiet_hours_start,
            quiet_end=workspace.quiet_hours_end,
        )  # fmt: skip
        if opening is None:
            return Blocked.EMPTY_WINDOW, planned
        if opening >= horizon:
            break
        planned.append(
            PlannedSend(
                enrollment_id=enrollment.pk, subscriber_id=subscriber.pk, email=subscriber.email, step_id=current.pk,
                position=current.position, template_name=current.template.name, subject=current.template.subject,
                planned_at=opening, local_at=opening.astimezone(zone), time_zone=zone.key,
            )
        )  # fmt: skip
        current = _step_after(steps, current)
        if current is not None:  # the scheduler counts the next delay from the moment it sent this one
            due = opening + current.delay
    return None, planned
