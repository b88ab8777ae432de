"""Scheduled triggers: date attributes (in each subscriber's time zone), segment entry and exit, cron.

Each evaluation picks its subscribers with a few set-based queries and hands them to
`automation.runs.workflow_runs_start_many`, whose dedupe key makes a repeated evaluation start nothing
new. The runs are due at once; the engine's tick advances them.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Substr
from django.utils import timezone

from automation.engine import run_advance
from automation.models import TriggerType, Workflow, WorkflowRun, WorkflowSegmentMember, WorkflowStatus
from automation.runs import RunStart, workflow_run_start, workflow_runs_start_many
from core.errors import NotFound, ValidationFailed
from sequences.windows import zone_or_utc
from subscribers.models import Segment, Subscriber, SubscriberStatus
from subscribers.segments import segment_subscribers
from subscribers.services.subscribers import subscriber_row_clean, subscribers_upsert_chunk
from subscribers.services.validation import field_definitions_by_key, json_storable, text_storable

logger = logging.getLogger(__name__)

DEFAULT_AT_HOUR = 9
SEGMENT_TRIGGERS = (TriggerType.SEGMENT_ENTERED, TriggerType.SEGMENT_LEFT)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def workflow_audience(*, workflow: Workflow) -> QuerySet[Subscriber]:
    """Who a scheduled trigger may start: the entry conditions decide when the workflow has some (they
    may name a status themselves); without them, the active subscribers only, so a schedule never
    reaches people who unsubscribed, bounced or complained."""
    subscribers = Subscriber.objects.filter(workspace_id=workflow.workspace_id)
    if workflow.entry_rules:
        return subscribers  # workflow_runs_start_many applies the entry conditions
    return subscribers.filter(status=SubscriberStatus.ACTIVE)


def _each(workflows: QuerySet[Workflow], evaluate: Callable[..., int], now: datetime) -> int:
    """Evaluate each workflow on its own: one that fails (a segment whose rules no longer validate
    after a field was deleted, a config the service would now refuse) is logged and skipped, and the
    others still run."""
    started = 0
    for workflow in workflows.select_related("workspace").order_by("pk"):
        try:
            with transaction.atomic():
                started += evaluate(workflow=workflow, now=now)
        except Exception:
            logger.exception("evaluating the %s trigger of workflow %s failed", workflow.trigger_type, workflow.pk)
    return started


# Date attributes ---------------------------------------------------------------------------------


def date_trigger_targets(
    *, zone_names: Iterable[str], workspace_zone: str, offset_days: int, at_hour: int, now: datetime
) -> dict[date, list[str]]:
    """The target date of each subscriber time-zone name whose local hour has reached `at_hour`, grouped:
    {target date: [zone names]}. An empty or unknown name is the workspace's zone (then UTC)."""
    targets: dict[date, list[str]] = defaultdict(list)
    for name in zone_names:
        local = now.astimezone(zone_or_utc(name, workspace_zone))
        if local.hour < at_hour:
            continue
        targets[local.date() - timedelta(days=offset_days)].append(name)
    return dict(targets)


def _date_match(*, field: str, target: date, anniversary: bool) -> tuple[Q, dict[str, Any]]:
    """The condition (and the aliases it reads) on subscribers whose `field` attribute (ISO date, or ISO
    datetime: its date part as stored, which is UTC) falls on `target`; with `anniversary`, on its month
    and day in an earlier year. Feb 29 has no day in a common year: those anniversaries fire on Feb 28."""
    value = KeyTextTransform(field, "attributes")
    aliases: dict[str, Any] = {"_date_part": Substr(value, 1, 10)}
    if not anniversary:
        return Q(_date_part=target.isoformat()), aliases
    month_days = [target.strftime("%m-%d")]
    if target.month == 2 and target.day == 28 and not _is_leap(target.year):
        month_days.append("02-29")
    aliases["_month_day"] = Substr(value, 6, 5)
    return Q(_month_day__in=month_days, _date_part__lt=target.isoformat()), aliases


def date_trigger_subscribers(
    *, workflow: Workflow, target: date, zone_names: Iterable[str], config: dict[str, Any]
) -> QuerySet[Subscriber]:
    """The audience whose date attribute matches `target` and whose zone is one of `zone_names`, less
    those this target date already started (every tick of the day re-selects them: skip them in SQL
    rather than insert and ignore their duplicates)."""
    field = str(config["field"])
    condition, aliases = _date_match(field=field, target=target, anniversary=bool(config.get("anniversary")))
    already = WorkflowRun.objects.filter(
        workflow=workflow, subscriber=OuterRef("pk"), dedupe_key=date_dedupe_key(target=target)
    )
    return (
        workflow_audience(workflow=workflow)
        .filter(attributes__has_key=field, time_zone__in=list(zone_names))
        .alias(**aliases)
        .filter(condition)
        .exclude(Exists(already))
    )


def date_dedupe_key(*, target: date) -> str:
    return f"date:{target.isoformat()}"


def workflow_date_trigger_evaluate(*, workflow: Workflow, now: datetime | None = None) -> int:
    """Start the runs of one date-triggered workflow whose day has come; returns how many started.

    For each subscriber time zone (one query for the distinct zones of those who have the attribute),
    the local date and hour at `now` give the target date (local date - offset_days) once the local hour
    is at least `at_hour`; one query per target date then selects the matching subscribers. The dedupe
    key is the target date, so every tick of the day after `at_hour` re-selects them and starts nothing
    new. A day on which the tick never ran after `at_hour` (beat down all day) is not caught up.
    """
    now = now or timezone.now()
    config = workflow.trigger_config or {}
    field = config.get("field")
    if not isinstance(field, str) or not field:
        logger.warning("date workflow %s has no field in its trigger_config", workflow.pk)
        return 0
    offset_days = int(config.get("offset_days") or 0)
    at_hour = int(config.get("at_hour", DEFAULT_AT_HOUR))
    zone_names = (
        workflow_audience(workflow=workflow)
        .filter(attributes__has_key=field)
        .order_by()
        .values_list("time_zone", flat=True)
        .distinct()
    )
    targets = date_trigger_targets(
        zone_names=list(zone_names), workspace_zone=workflow.workspace.time_zone, offset_days=offset_days,
        at_hour=at_hour, now=now,
    )  # fmt: skip
    started = 0
    for target, names in sorted(targets.items()):
        started += workflow_runs_start_many(
            workflow=workflow,
            subscriber_ids=date_trigger_subscribers(workflow=workflow, target=target, zone_names=names, config=config),
            dedupe_key=date_dedupe_key(target=target),
            context={"trigger": "date", "field": field, "date": target.isoformat()},
            now=now,
        )
    return started


def workflow_date_triggers_evaluate(*, now: datetime | None = None) -> int:
    """Evaluate every active date-triggered workflow (the beat task's body)."""
    workflows = Workflow.objects.filter(status=WorkflowStatus.ACTIVE, trigger_type=TriggerType.DATE)
    return _each(workflows, workflow_date_trigger_evaluate, now or timezone.now())


# Segment entry and exit --------------------------------------------------------------------------


def workflow_segment_trigger_evaluate(*, workflow: Workflow, now: datetime | None = None) -> int:
    """Diff one segment-triggered workflow's segment against its snapshot; start runs for who entered
    (segment_entered) or left (segment_left); returns how many started.

    The first evaluation (and the first after the trigger's segment changed) takes a baseline: it
    records the members and starts nothing, so activating a workflow on a segment of 10,000 people does
    not start 10,000 runs. The snapshot is kept while the workflow is paused: after a pause, everyone who
    entered or left in between is found by the next diff. The workflow row is locked for the diff, so
    two ticks never diff the same snapshot twice (the second skips it).
    """
    now = now or timezone.now()
    config = workflow.trigger_config or {}
    segment_id = config.get("segment_id")
    segment = Segment.objects.filter(workspace_id=workflow.workspace_id, pk=segment_id).first() if segment_id else None
    if segment is None:
        logger.warning("segment workflow %s: segment %r not found in its workspace", workflow.pk, segment_id)
        return 0
    with transaction.atomic():
        locked = (
            Workflow.objects.select_for_update(skip_locked=True)
            .filter(pk=workflow.pk, status=WorkflowStatus.ACTIVE)
            .first()
        )
        if locked is None:
            return 0
        state = dict(locked.trigger_state or {})
        current = set(
            segment_subscribers(workspace=workflow.workspace, tree=segment.rules, now=now).values_list("pk", flat=True)
        )
        snapshot = WorkflowSegmentMember.objects.filter(workflow=locked)
        baseline = state.get("segment_id") != segment.pk
        if baseline:
            snapshot.delete()
            previous: set[int] = set()
        else:
            previous = set(snapshot.values_list("subscriber_id", flat=True))
        entered, left = current - previous, previous - current
        if left:
            snapshot.filter(subscriber_id__in=left).delete()
        if entered:
            WorkflowSegmentMember.objects.bulk_create(
                [WorkflowSegmentMember(workflow=locked, subscriber_id=pk, since=now) for pk in entered],
                batch_size=1000,
                ignore_conflicts=True,
            )
        locked.trigger_state = {"segment_id": segment.pk, "evaluated_at": now.isoformat()}
        Workflow.objects.filter(pk=locked.pk).update(trigger_state=locked.trigger_state)
        workflow.trigger_state = locked.trigger_state
        if baseline:
            return 0
        kind = "entered" if workflow.trigger_type == TriggerType.SEGMENT_ENTERED else "left"
        ids = entered if kind == "entered" else left
        if not ids:
            return 0
        return workflow_runs_start_many(
            workflow=locked,
            subscriber_ids=ids,
            dedupe_key=f"segment:{kind}:{now.isoformat()}",
            context={"trigger": f"segment_{kind}", "segment_id": segment.pk, "segment": segment.name},
            now=now,
        )


def workflow_segment_triggers_evaluate(*, now: datetime | None = None) -> int:
    """Evaluate every active segment-triggered workflow (the beat task's body)."""
    workflows = Workflow.objects.filter(status=WorkflowStatus.ACTIVE, trigger_type__in=SEGMENT_TRIGGERS)
    return _each(workflows, workflow_segment_trigger_evaluate, now or timezone.now())


# Cron --------------------------------------------------------------------------------------------


def cron_dedupe_key(*, now: datetime) -> str:
    """One key per fire minute (UTC): a fire delivered twice within the minute starts nothing new."""
    return "cron:" + now.astimezone(UTC).replace(second=0, microsecond=0).isoformat()


def workflow_cron_runs_start(*, workflow: Workflow, now: datetime | None = None) -> int:
    """Start a cron workflow's runs for its whole audience; returns how many started."""
    now = now or timezone.now()
    if workflow.status != WorkflowStatus.ACTIVE or workflow.trigger_type != TriggerType.CRON:
        return 0
    key = cron_dedupe_key(now=now)
    return workflow_runs_start_many(
        workflow=workflow,
        subscriber_ids=workflow_audience(workflow=workflow),
        dedupe_key=key,
        context={"trigger": "cron", "fired_at": key.removeprefix("cron:")},
        now=now,
    )


# Inbound webhook ---------------------------------------------------------------------------------

HOOK_SUBSCRIBER_FIELDS = ("email", "first_name", "last_name", "time_zone", "locale", "attributes")
HOOK_FIELDS = frozenset({*HOOK_SUBSCRIBER_FIELDS, "properties", "dedupe_key"})


def workflow_for_hook_token(*, token: str) -> Workflow:
    """The active webhook-triggered workflow this token opens; NotFound for an unknown token and for a
    workflow that is paused, a draft or not webhook-triggered alike (no enumeration)."""
    workflow = (
        Workflow.objects.select_related("workspace")
        .filter(hook_token=token, status=WorkflowStatus.ACTIVE, trigger_type=TriggerType.WEBHOOK)
        .first()
    )
    if workflow is None:
        raise NotFound("Not found.")
    return workflow


def _hook_dedupe_key(*, workflow: Workflow, payload: Mapping[str, Any], properties: Mapping[str, Any]) -> str:
    if "dedupe_key" in payload and payload["dedupe_key"] is not None:
        key = payload["dedupe_key"]
        if not isinstance(key, str | int) or isinstance(key, bool) or not str(key).strip() or len(str(key)) > 150:
            raise ValidationFailed.for_field("dedupe_key", "Must be a string of 1 to 150 characters.")
        return text_storable(value=str(key).strip(), field="dedupe_key")
    if workflow.dedupe_property:
        value = properties.get(workflow.dedupe_property)
        if value is not None and not isinstance(value, dict | list) and str(value).strip():
            return text_storable(value=str(value).strip()[:150], field=f"properties.{workflow.dedupe_property}")
    return uuid.uuid4().hex  # nothing makes this post unique: every post is a new run


def workflow_hook_receive(*, workflow: Workflow, payload: Any, now: datetime | None = None) -> RunStart:
    """Handle one inbound hook post: upsert its subscriber and start a run.

    `payload` is the decoded JSON body: {"email" (required), "first_name", "last_name", "time_zone",
    "locale", "attributes": {...} (merged, typed by the field definitions), "properties": {...} (kept in
    the run's context), "dedupe_key"}. The dedupe key is the payload's, else the workflow's
    `dedupe_property` read from `properties`, else fresh. Errors raise ValidationFailed naming the field.
    The run, when started, is advanced after the transaction commits.
    """
    if not isinstance(payload, Mapping):
        raise ValidationFailed.for_field("body", "Must be a JSON object.")
    unknown = sorted(set(map(str, payload)) - HOOK_FIELDS)
    if unknown:
        raise ValidationFailed.for_field(unknown[0], "Unknown field.")
    properties = payload.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, Mapping):
        raise ValidationFailed.for_field("properties", "Must be an object.")
    json_storable(value=properties, field="properties")
    dedupe_key = _hook_dedupe_key(workflow=workflow, payload=payload, properties=properties)
    workspace = workflow.workspace
    row = subscriber_row_clean(
        data={name: payload[name] for name in HOOK_SUBSCRIBER_FIELDS if name in payload},
        definitions=field_definitions_by_key(workspace=workspace),
    )
    config = workflow.trigger_config or {}
    context = {
        "trigger": "webhook",
        "event_name": str(config.get("event_name") or "webhook"),
        "properties": dict(properties),
    }
    with transaction.atomic():
        outcome = subscribers_upsert_chunk(
            workspace=workspace, rows=[row], update_existing=True, consent_source="webhook"
        )[0]
        start = workflow_run_start(
            workflow=workflow, subscriber=outcome.subscriber, dedupe_key=dedupe_key, context=context, now=now
        )
        if start.started and start.run is not None:
            run_id = start.run.pk
            transaction.on_commit(lambda: _advance(run_id))
    return start


def _advance(run_id: int) -> None:
    """Take the run's first steps now; if that fails, the run is still due and the engine's tick
    retries it, so the caller (an HTTP request) is not failed for it."""
    try:
        run_advance(run_id)
    except Exception:
        logger.exception("advancing workflow run %s after its hook failed; the tick will retry it", run_id)
