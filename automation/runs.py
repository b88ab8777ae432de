"""Starting runs: one subscriber (an event, an inbound hook, the API) or many at once (cron, dates,
segments). Both apply the same rules: the workflow is active, the entry conditions hold, the re-entry
rule allows it, and the dedupe key has not been used by this subscriber in this workflow.

A started run is due at once; `automation.engine.run_advance` (or the tick, for runs started in bulk)
takes it from there.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from automation.models import OPEN_RUN_STATUSES, ReEntry, Workflow, WorkflowRun, WorkflowStatus
from subscribers.models import Subscriber
from subscribers.segments import segment_q


class StartOutcome:
    STARTED = "started"
    DUPLICATE = "duplicate"  # this dedupe key already started a run for this subscriber
    RE_ENTRY = "re_entry_blocked"
    CONDITIONS = "conditions_not_met"
    INACTIVE = "workflow_not_active"


@dataclass(frozen=True)
class RunStart:
    outcome: str
    run: WorkflowRun | None = None

    @property
    def started(self) -> bool:
        return self.outcome == StartOutcome.STARTED


def _eligible(workflow: Workflow, subscribers: QuerySet[Subscriber], now: datetime) -> QuerySet[Subscriber]:
    """Narrow `subscribers` to those the entry conditions and the re-entry rule let in."""
    if workflow.entry_rules:
        subscribers = subscribers.filter(segment_q(workspace=workflow.workspace, tree=workflow.entry_rules, now=now))
    if workflow.re_entry == ReEntry.ALWAYS:
        return subscribers
    runs = WorkflowRun.objects.filter(workflow=workflow, subscriber=OuterRef("pk"))
    if workflow.re_entry == ReEntry.AFTER_FINISH:
        runs = runs.filter(status__in=OPEN_RUN_STATUSES)
    return subscribers.exclude(Exists(runs))


def workflow_run_start(
    *,
    workflow: Workflow,
    subscriber: Subscriber,
    dedupe_key: str,
    context: Mapping[str, Any] | None = None,
    trigger_event_id: int | None = None,
    now: datetime | None = None,
) -> RunStart:
    """Start one run, or say why not. Idempotent on (workflow, subscriber, dedupe_key)."""
    if subscriber.workspace_id != workflow.workspace_id:
        raise ValueError("subscriber belongs to another workspace")
    now = now or timezone.now()
    if workflow.status != WorkflowStatus.ACTIVE:
        return RunStart(StartOutcome.INACTIVE)
    with transaction.atomic():
        # One subscriber's starts in one workflow are serialized, so the re-entry rule holds under
        # concurrent triggers (two events at once for a "once" workflow start one run).
        Subscriber.objects.select_for_update().filter(pk=subscriber.pk).first()
        existing = WorkflowRun.objects.filter(workflow=workflow, subscriber=subscriber, dedupe_key=dedupe_key).first()
        if existing is not None:
            return RunStart(StartOutcome.DUPLICATE, existing)
        candidates = Subscriber.objects.filter(pk=subscriber.pk, workspace_id=workflow.workspace_id)
        if (
            workflow.entry_rules
            and not candidates.filter(
                segment_q(workspace=workflow.workspace, tree=workflow.entry_rules, now=now)
            ).exists()
        ):
            return RunStart(StartOutcome.CONDITIONS)
        if not _eligible(workflow, candidates, now).exists():
            return RunStart(StartOutcome.RE_ENTRY)
        try:
            with transaction.atomic():
                run = WorkflowRun.objects.create(
                    workspace_id=workflow.workspace_id,
                    workflow=workflow,
                    subscriber=subscriber,
                    dedupe_key=dedupe_key[:200],
                    trigger_type=workflow.trigger_type,
                    trigger_event_id=trigger_event_id,
                    context=dict(context or {}),
                    position=[0],
                    due_at=now,
                    started_at=now,
                )
        except IntegrityError:  # the same key raced in from another worker
            return RunStart(StartOutcome.DUPLICATE)
    return RunStart(StartOutcome.STARTED, run)


def workflow_runs_start_many(
    *,
    workflow: Workflow,
    subscriber_ids: Collection[int] | QuerySet[Subscriber],
    dedupe_key: str,
    context: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> int:
    """Start runs for many subscribers in a few statements; returns how many started. The runs are
    due at once and the tick advances them in batches (cron, date and segment triggers)."""
    now = now or timezone.now()
    if workflow.status != WorkflowStatus.ACTIVE:
        return 0
    if isinstance(subscriber_ids, QuerySet):
        candidates = subscriber_ids.filter(workspace_id=workflow.workspace_id)
    else:
        candidates = Subscriber.objects.filter(workspace_id=workflow.workspace_id, pk__in=list(subscriber_ids))
    ids = list(_eligible(workflow, candidates, now).values_list("pk", flat=True))
    runs = [
        WorkflowRun(
            workspace_id=workflow.workspace_id,
            workflow=workflow,
            subscriber_id=subscriber_id,
            dedupe_key=dedupe_key[:200],
            trigger_type=workflow.trigger_type,
            context=dict(context or {}),
            position=[0],
            due_at=now,
            started_at=now,
        )
        for subscriber_id in ids
    ]
    created = WorkflowRun.objects.bulk_create(runs, batch_size=1000, ignore_conflicts=True)
    # ignore_conflicts leaves pks unset on some backends: count what the key now holds instead.
    del created
    return WorkflowRun.objects.filter(workflow=workflow, dedupe_key=dedupe_key[:200], started_at=now).count()
