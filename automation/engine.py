"""The workflow engine: advances runs through their actions until they finish or wait.

A run's `position` is a path into the workflow's action tree, e.g. [2, "then", 0]: the action to do
next. Each action is done in its own transaction together with its log row (`WorkflowRunStep`) and the
run's new position, under a lock on the run: a crash between two actions repeats neither. When a
branch's (or a wait-for-event's) sub-list ends, the run continues after that node.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from automation.actions import (
    ActionFailed,
    action_execute,
    condition_holds,
    duration_words,
    merge_render,
    next_local_time,
    notify_recipients,
    wait_key_value,
)
from automation.models import (
    OPEN_RUN_STATUSES,
    RunStatus,
    StepStatus,
    Workflow,
    WorkflowRun,
    WorkflowRunStep,
    WorkflowStatus,
)
from subscribers.models import Event, Subscriber

logger = logging.getLogger(__name__)

# No workflow can loop (actions form a tree), but a long one without waits must not hold a worker:
# after this many actions the run stays due and the next tick goes on.
MAX_ACTIONS_PER_ADVANCE = 200
# How long a tick's claim on a due run lasts: a worker that dies mid-batch leaves its runs to the next
# tick after this, never to two ticks at once.
CLAIM_LEASE = timedelta(minutes=5)
SUB_LISTS = ("then", "else", "on_event", "on_timeout")


# Positions --------------------------------------------------------------------------------------


def path_text(position: Sequence[Any]) -> str:
    return ".".join(str(part) for part in position)


def _list_at(actions: list[Any], prefix: Sequence[Any]) -> list[Any] | None:
    """The action list that `prefix` (index, key, index, key, ...) leads to; None if it leads nowhere."""
    items: Any = actions
    for index in range(0, len(prefix), 2):
        if not isinstance(items, list) or not isinstance(prefix[index], int) or prefix[index] >= len(items):
            return None
        node = items[prefix[index]]
        items = node.get(prefix[index + 1]) if isinstance(node, dict) else None
    return items if isinstance(items, list) else None


def position_settle(actions: list[Any], position: Sequence[Any]) -> list[Any] | None:
    """`position` if it names an action; else the action after the node whose sub-list it ran off,
    going up as far as needed; None when the workflow is done."""
    current = list(position)
    while current:
        items = _list_at(actions, current[:-1])
        if items is not None and isinstance(current[-1], int) and 0 <= current[-1] < len(items):
            return current
        if len(current) < 3:
            return None
        current = current[:-2]
        current[-1] += 1
    return None


def node_at(actions: list[Any], position: Sequence[Any]) -> dict[str, Any] | None:
    items = _list_at(actions, position[:-1])
    if items is None or not position or not isinstance(position[-1], int) or position[-1] >= len(items):
        return None
    node = items[position[-1]]
    return node if isinstance(node, dict) else None


def position_after(actions: list[Any], position: Sequence[Any]) -> list[Any] | None:
    return position_settle(actions, [*position[:-1], position[-1] + 1])


def position_enter(actions: list[Any], position: Sequence[Any], key: str) -> list[Any] | None:
    return position_settle(actions, [*position, key, 0])


# Advancing a run --------------------------------------------------------------------------------


def _finish(run: WorkflowRun, *, status: str, outcome: str, now: datetime, error: str = "") -> None:
    run.status = status
    run.outcome = outcome[:300]
    run.error = error
    run.finished_at = now
    run.due_at = None
    run.wait = None
    run.wait_event_name = ""
    run.wait_key_value = ""
    run.save()


def _timed_out(run: WorkflowRun, now: datetime) -> bool:
    return run.started_at + timedelta(seconds=settings.WORKFLOW_EXECUTION_TIMEOUT) <= now


def _timeout_words() -> str:
    return duration_words({"value": max(1, settings.WORKFLOW_EXECUTION_TIMEOUT // 86400), "unit": "days"})


def _waiting_step(run: WorkflowRun) -> WorkflowRunStep | None:
    return WorkflowRunStep.objects.filter(run=run, seq=run.step_count, status=StepStatus.WAITING).first()


def _wait_leave(run: WorkflowRun, *, now: datetime, note: str, next_position: list[Any] | None) -> None:
    """Close the wait: its WAITING log line becomes DONE with how it ended; the run goes on."""
    step = _waiting_step(run)
    if step is not None:
        step.status = StepStatus.DONE
        step.detail = f"{step.detail}; {note}"
        step.finished_at = now
        step.save(update_fields=["status", "detail", "finished_at"])
    run.wait = None
    run.wait_event_name = ""
    run.wait_key_value = ""
    if next_position is None:
        _finish(run, status=RunStatus.COMPLETED, outcome="completed: all actions done", now=now)
        return
    run.position = next_position
    run.save()


def _locked_run(run_id: int) -> WorkflowRun | None:
    return (
        WorkflowRun.objects.select_for_update(of=("self",))
        .select_related("workflow", "workspace", "subscriber")
        .filter(pk=run_id)
        .first()
    )


def _advance_one(run_id: int, now: datetime, claimed_until: datetime | None) -> bool:
    """Do the run's next action (or end its wait) in one transaction; True when there is more to do now."""
    with transaction.atomic():
        run = _locked_run(run_id)
        if run is None or run.status != RunStatus.ACTIVE or run.workflow.status != WorkflowStatus.ACTIVE:
            return False
        due = run.due_at is not None and (run.due_at <= now or run.due_at == claimed_until)
        if not due:
            return False
        if _timed_out(run, now):
            _finish(run, status=RunStatus.TIMED_OUT, outcome=f"timed out: open longer than {_timeout_words()}",
                    now=now)  # fmt: skip
            return False
        actions = run.workflow.actions or []
        if run.wait is not None:
            if run.wait.get("type") == "wait_for_event":
                note = f"no '{run.wait.get('event')}' within {duration_words(run.wait['timeout'])}: on_timeout"
                _wait_leave(run, now=now, note=note, next_position=position_enter(actions, run.position, "on_timeout"))
            else:
                _wait_leave(run, now=now, note="wait over", next_position=position_after(actions, run.position))
            return run.status == RunStatus.ACTIVE
        position = position_settle(actions, run.position or [0])
        node = node_at(actions, position) if position is not None else None
        if position is None or node is None:
            _finish(run, status=RunStatus.COMPLETED, outcome="completed: all actions done", now=now)
            return False
        seq = run.step_count + 1
        step = WorkflowRunStep(
            run=run, seq=seq, path=path_text(position)[:200], action_type=str(node.get("type", ""))[:32],
            started_at=now,
        )  # fmt: skip
        try:
            with transaction.atomic():  # a savepoint: a failed action leaves none of its writes
                result = action_execute(run=run, node=node, subscriber=run.subscriber, now=now)
        except (OperationalError, InterfaceError):
            raise  # transient (deadlock, lost connection): nothing was written, the tick tries again
        except Exception as exc:
            if not isinstance(exc, ActionFailed):
                logger.exception("Workflow run %s failed at %s", run.pk, step.path)
            error = str(exc) or type(exc).__name__
            step.status, step.error, step.finished_at = StepStatus.FAILED, error, now
            step.detail = f"failed: {error}"[:1000]
            step.save()
            run.step_count = seq
            _finish(run, status=RunStatus.FAILED, outcome=f"failed at {step.path} ({step.action_type})", now=now,
                    error=error)  # fmt: skip
            return False
        step.detail = result.detail
        step.status = StepStatus.WAITING if result.wait else StepStatus.SKIPPED if result.skipped else StepStatus.DONE
        step.finished_at = None if result.wait else now
        step.save()
        run.step_count = seq
        if result.finish:
            run.position = position
            _finish(run, status=RunStatus.COMPLETED, outcome=result.finish, now=now)
            return False
        if result.wait:
            run.position = position
            run.wait = result.wait
            run.due_at = result.due_at
            run.wait_event_name = result.wait_event_name
            run.wait_key_value = result.wait_key_value
            run.save()
            return False
        following = (
            position_enter(actions, position, result.enter) if result.enter else position_after(actions, position)
        )
        if following is None:
            _finish(run, status=RunStatus.COMPLETED, outcome="completed: all actions done", now=now)
            return False
        run.position = following
        run.save()
        return True


def run_advance(run_id: int, now: datetime | None = None, *, claimed_until: datetime | None = None) -> int:
    """Execute the run's actions from its position until it finishes or waits; returns how many steps
    it took. Skips a run that is not active, not due, or whose workflow is not active. `claimed_until`:
    the tick's lease on the run (its due_at), which counts as due."""
    steps = 0
    while steps < MAX_ACTIONS_PER_ADVANCE:
        if not _advance_one(run_id, now or timezone.now(), claimed_until):
            return steps
        steps += 1
    # Stopped by the cap with more to do: due again at once (not only when a tick's lease runs out).
    WorkflowRun.objects.filter(pk=run_id, status=RunStatus.ACTIVE, wait__isnull=True).update(
        due_at=now or timezone.now()
    )
    return steps


def run_event_resume(*, run_id: int, event: Event, now: datetime | None = None) -> bool:
    """The event a wait-for-event run waits for has come: take its on_event branch and go on.
    False when the run no longer waits for it (resumed by another event, timed out, paused)."""
    now = now or timezone.now()
    with transaction.atomic():
        run = _locked_run(run_id)
        if (
            run is None
            or run.status != RunStatus.ACTIVE
            or run.workflow.status != WorkflowStatus.ACTIVE
            or not run.wait
            or run.wait.get("type") != "wait_for_event"
            or run.subscriber_id != event.subscriber_id
            or run.wait_event_name != event.name.lower()
            or not event_matches_key(run, event)
        ):
            return False
        key = run.wait.get("match_key")
        matched = f" with {key}={run.wait_key_value}" if key else ""
        note = f"'{event.name}' arrived (event {event.pk}){matched}: on_event"
        run.due_at = now
        _wait_leave(
            run, now=now, note=note, next_position=position_enter(run.workflow.actions or [], run.position, "on_event")
        )
    run_advance(run_id, now)
    return True


def event_matches_key(run: WorkflowRun, event: Event) -> bool:
    key = (run.wait or {}).get("match_key")
    if not key:
        return True
    value = (event.properties or {}).get(key) if isinstance(event.properties, dict) else None
    return value is not None and str(value)[:200] == run.wait_key_value


# The tick ---------------------------------------------------------------------------------------


def workflow_runs_time_out(*, now: datetime | None = None) -> int:
    """End every run open longer than WORKFLOW_EXECUTION_TIMEOUT; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.WORKFLOW_EXECUTION_TIMEOUT)
    return WorkflowRun.objects.filter(status__in=OPEN_RUN_STATUSES, started_at__lte=cutoff).update(
        status=RunStatus.TIMED_OUT, outcome=f"timed out: open longer than {_timeout_words()}", finished_at=now,
        due_at=None, wait=None, wait_event_name="", wait_key_value="", updated_at=now,
    )  # fmt: skip


def _claim(now: datetime, limit: int) -> tuple[list[int], datetime]:
    """Take up to `limit` due runs of active workflows, pushing their due time to a lease so no other
    tick takes them meanwhile. PostgreSQL skips rows another tick is claiming (SKIP LOCKED)."""
    lease = now + CLAIM_LEASE
    with transaction.atomic():
        due = WorkflowRun.objects.filter(
            status=RunStatus.ACTIVE, due_at__lte=now, workflow__status=WorkflowStatus.ACTIVE
        ).order_by("due_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        ids = list(due.values_list("pk", flat=True)[:limit])
        if ids:
            WorkflowRun.objects.filter(pk__in=ids).update(due_at=lease)
    return ids, lease


def workflow_runs_advance_due(*, now: datetime | None = None, max_batches: int = 10) -> int:
    """The tick: time out stale runs, then claim due runs in batches of WORKFLOW_TICK_BATCH and advance
    each (waits that ended go on; a wait-for-event whose timeout passed takes on_timeout). Returns how
    many runs were advanced."""
    fixed_now = now
    now = now or timezone.now()
    # The sweep reads every open run (no index serves it): once an hour is enough, since a due run's own
    # advance times it out anyway.
    try:
        sweep = cache.add(f"automation:timeout-sweep:{now:%Y%m%d%H}", 1, 3600)
    except Exception:  # noqa: BLE001 - without the cache, sweep every tick (correct, only slower)
        sweep = True
    if sweep:
        workflow_runs_time_out(now=now)
    advanced = 0
    for _ in range(max_batches):
        ids, lease = _claim(now, settings.WORKFLOW_TICK_BATCH)
        for run_id in ids:
            try:
                run_advance(run_id, fixed_now, claimed_until=lease)
            except Exception:  # one run's transient failure must not stop the batch; its lease expires
                logger.exception("Advancing workflow run %s failed", run_id)
            advanced += 1
        if len(ids) < settings.WORKFLOW_TICK_BATCH:
            break
        now = fixed_now or timezone.now()
    return advanced


# Test mode --------------------------------------------------------------------------------------


def _describe(run: WorkflowRun, node: dict[str, Any], now: datetime, wait_outcome: str) -> tuple[str, str | None, bool]:
    """What the action would do, where the path goes next (a sub-list key) and whether it ends there."""
    from automation.models import WebhookEndpoint
    from sequences.models import Sequence, Template
    from subscribers.models import MailingList

    kind = node.get("type")
    subscriber = run.subscriber
    ws = run.workspace_id
    if kind in ("enroll", "exit_sequence"):
        sequence = Sequence.objects.filter(workspace_id=ws, pk=node["sequence_id"]).first()
        name = f"'{sequence.name}'" if sequence else f"sequence {node['sequence_id']} (deleted)"
        return (f"would enroll in {name}" if kind == "enroll" else f"would exit {name}"), None, False
    if kind == "send_email":
        template = Template.objects.filter(workspace_id=ws, pk=node["template_id"]).first()
        name = f"'{template.name}'" if template else f"template {node['template_id']} (deleted)"
        return f"would send {name} to {subscriber.email}", None, False
    if kind == "add_tag":
        return f"would tag '{node['tag']}'", None, False
    if kind == "remove_tag":
        return f"would remove tag '{node['tag']}'", None, False
    if kind in ("subscribe_list", "unsubscribe_list"):
        mailing_list = MailingList.objects.filter(workspace_id=ws, pk=node["list_id"]).first()
        name = f"'{mailing_list.name}'" if mailing_list else f"list {node['list_id']} (deleted)"
        verb = "add to" if kind == "subscribe_list" else "unsubscribe from"
        return f"would {verb} {name}", None, False
    if kind == "update_field":
        value = node["value"]
        try:
            value = merge_render(value, run=run, subscriber=subscriber) if isinstance(value, str) else value
        except ActionFailed as exc:
            return f"would fail: {exc}", None, True
        return f"would set {node['field']} to {value!r}", None, False
    if kind == "wait":
        if "duration" in node:
            return f"would wait {duration_words(node['duration'])}", None, False
        due = next_local_time(
            until_time=node["until_time"], zone_names=(subscriber.time_zone, run.workspace.time_zone), now=now
        )
        return f"would wait until {node['until_time']} local time (next: {due.isoformat()})", None, False
    if kind == "wait_for_event":
        key_value = wait_key_value(run, node)
        key = f" with {node['match_key']}={key_value}" if node.get("match_key") else ""
        branch = "on_event" if wait_outcome == "event" else "on_timeout"
        return (
            f"would wait up to {duration_words(node['timeout'])} for '{node['event']}'{key}; taking {branch}",
            branch, False,
        )  # fmt: skip
    if kind == "branch":
        held = condition_holds(run=run, rules=node["rules"], now=now)
        return ("condition holds: then" if held else "condition does not hold: else"), "then" if held else "else", False
    if kind == "webhook":
        endpoint = WebhookEndpoint.objects.filter(workspace_id=ws, pk=node["endpoint_id"]).first()
        return (f"would call {endpoint.url}" if endpoint else "would fail: endpoint deleted"), None, endpoint is None
    if kind == "notify":
        return f"would notify {', '.join(notify_recipients(run=run, node=node)) or 'nobody'}", None, False
    if kind == "goal":
        return f"would reach goal '{node['name']}'; the run ends", None, True
    return f"unknown action {kind!r}", None, True


def workflow_test(
    *,
    workflow: Workflow,
    subscriber: Subscriber,
    context: dict[str, Any] | None = None,
    wait_outcome: str = "timeout",
    now: datetime | None = None,
) -> list[dict[str, str]]:
    """The path `subscriber` would take through `workflow` now, action by action, with NO writes:
    conditions are evaluated against the data as it is, waits are assumed over (a wait-for-event ends
    as `wait_outcome` says: "timeout" or "event")."""
    if subscriber.workspace_id != workflow.workspace_id:
        raise ValueError("subscriber belongs to another workspace")
    now = now or timezone.now()
    run = WorkflowRun(
        workspace=workflow.workspace, workflow=workflow, subscriber=subscriber, context=dict(context or {}),
        started_at=now, trigger_type=workflow.trigger_type,
    )  # fmt: skip
    actions = workflow.actions or []
    path: list[dict[str, str]] = []
    position = position_settle(actions, [0])
    while position is not None and len(path) < MAX_ACTIONS_PER_ADVANCE:
        node = node_at(actions, position)
        if node is None:
            break
        outcome, enter, ends = _describe(run, node, now, wait_outcome)
        path.append({"path": path_text(position), "type": str(node.get("type")), "outcome": outcome})
        if ends:
            break
        position = position_enter(actions, position, enter) if enter else position_after(actions, position)
    return path
