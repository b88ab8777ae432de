"""Matching recorded events to workflows (triggers) and to runs waiting for them.

`workflows_events_handler` runs after the events commit, on every path that records events, including
the sender's (a chunk of `sent` events at a time): it only looks at each event's type and name against
a cached set of what workflows use, and hands the ids of the rest to a task. The task finds runs waiting
for an event by index (workspace, wait_event_name) and workflows by index (workspace, trigger_type,
trigger_key): never a scan of every workflow per event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Q

from automation.models import RunStatus, TriggerType, Workflow, WorkflowRun, WorkflowStatus
from subscribers.models import Event, EventType

logger = logging.getLogger(__name__)

USAGE_TTL_SECONDS = 300
# Event types that map to a trigger type of their own (beside the `event` trigger by name).
TYPE_TRIGGERS: dict[str, tuple[str, ...]] = {
    EventType.SUBSCRIBED: (TriggerType.LIST_SUBSCRIBED,),
    EventType.UNSUBSCRIBED: (TriggerType.UNSUBSCRIBED,),
    "tag_added": (TriggerType.TAG_ADDED,),
    "tag_removed": (TriggerType.TAG_REMOVED,),
    "field_changed": (TriggerType.FIELD_CHANGED,),
}


@dataclass(frozen=True)
class Usage:
    """What any workflow could react to: trigger types of active workflows, and the (lower-cased) event
    names of `event` triggers and of wait-for-event actions (of any workflow: a paused one's runs wait)."""

    trigger_types: frozenset[str]
    event_names: frozenset[str]


def _usage_compute() -> dict[str, list[str]]:
    from automation.services import wait_event_names

    types = set(Workflow.objects.filter(status=WorkflowStatus.ACTIVE).values_list("trigger_type", flat=True))
    names = set(
        Workflow.objects.filter(status=WorkflowStatus.ACTIVE, trigger_type=TriggerType.EVENT).values_list(
            "trigger_key", flat=True
        )
    )
    for actions in Workflow.objects.exclude(status=WorkflowStatus.DRAFT).values_list("actions", flat=True):
        names |= wait_event_names(actions or [])
    return {"types": sorted(types), "names": sorted(names)}


def workflows_usage() -> Usage:
    """Cached in Redis for USAGE_TTL_SECONDS; every workflow write drops the cache."""
    from automation.services import USAGE_CACHE_KEY

    try:
        raw = cache.get(USAGE_CACHE_KEY)
    except Exception:  # noqa: BLE001 - without the cache, compute (correct, only slower)
        raw = None
    if raw is None:
        raw = _usage_compute()
        try:
            cache.set(USAGE_CACHE_KEY, raw, USAGE_TTL_SECONDS)
        except Exception:  # noqa: BLE001
            logger.warning("Could not cache the workflows' usage")
    return Usage(trigger_types=frozenset(raw["types"]), event_names=frozenset(raw["names"]))


def event_is_relevant(event: Event, usage: Usage) -> bool:
    if event.subscriber_id is None:
        return False
    if event.name.lower() in usage.event_names:
        return True
    return any(trigger in usage.trigger_types for trigger in TYPE_TRIGGERS.get(event.type, ()))


def workflows_events_handler(events: Sequence[Event]) -> None:
    """Registered with the event log; runs after the events commit. Cheap: no query unless the usage
    cache is cold, and one task per batch of events some workflow could react to."""
    if not events:
        return
    usage = workflows_usage()
    if not usage.trigger_types and not usage.event_names:
        return
    ids = [event.pk for event in events if event_is_relevant(event, usage)]
    if not ids:
        return
    from automation.tasks.engine import workflow_events_match

    try:
        workflow_events_match.delay(ids)
    except Exception:  # the broker is down: the events stay in the log, these triggers are missed
        logger.exception("Could not hand %d events to the workflow matcher", len(ids))


# The task's work ----------------------------------------------------------------------------------


def _trigger_filters(event: Event) -> Q:
    """The workflows this event could trigger, as an index-friendly filter on (trigger_type, trigger_key)."""
    properties = event.properties if isinstance(event.properties, dict) else {}
    query = Q(trigger_type=TriggerType.EVENT, trigger_key=event.name.lower()[:200])
    if event.type == EventType.SUBSCRIBED and properties.get("list_id") is not None:
        query |= Q(trigger_type=TriggerType.LIST_SUBSCRIBED, trigger_key__in=[str(properties["list_id"]), "*"])
    elif event.type == EventType.UNSUBSCRIBED:
        keys = ["*"] if properties.get("list_id") is None else [str(properties["list_id"]), "*"]
        query |= Q(trigger_type=TriggerType.UNSUBSCRIBED, trigger_key__in=keys)
    elif event.type in ("tag_added", "tag_removed") and isinstance(properties.get("tag"), str):
        query |= Q(trigger_type=event.type, trigger_key=properties["tag"].lower()[:200])
    elif event.type == "field_changed" and isinstance(properties.get("field"), str):
        query |= Q(trigger_type=TriggerType.FIELD_CHANGED, trigger_key=properties["field"].lower()[:200])
    return query


_MISSING = object()


def trigger_filter_holds(workflow: Workflow, event: Event) -> bool:
    """The trigger's finer conditions: an event trigger's property filter, a field trigger's from / to."""
    config = workflow.trigger_config or {}
    properties = event.properties if isinstance(event.properties, dict) else {}
    if workflow.trigger_type == TriggerType.EVENT:
        return all(properties.get(key, _MISSING) == value for key, value in (config.get("properties") or {}).items())
    if workflow.trigger_type == TriggerType.FIELD_CHANGED:
        return all(properties.get(key, _MISSING) == config[key] for key in ("from", "to") if key in config)
    return True


def event_context(event: Event) -> dict[str, Any]:
    """What a run started by this event keeps as its trigger context (merge tags see it as `trigger`)."""
    return {
        "event_id": event.pk,
        "event_name": event.name,
        "event_type": event.type,
        "properties": event.properties if isinstance(event.properties, dict) else {},
        "occurred_at": event.occurred_at.isoformat(),
    }


def dedupe_key_for(workflow: Workflow, *, properties: dict[str, Any], fallback: str) -> str:
    """`<dedupe_property>:<value>` when the workflow names a property the payload carries, else `fallback`."""
    if workflow.dedupe_property:
        value = properties.get(workflow.dedupe_property)
        if value is not None and not isinstance(value, dict | list):
            return f"{workflow.dedupe_property}:{value}"[:200]
    return fallback


def events_match(*, event_ids: Sequence[int], now: datetime | None = None) -> dict[str, int]:
    """Resume the runs waiting for these events, then start the workflows they trigger."""
    from automation.engine import run_advance, run_event_resume
    from automation.runs import workflow_run_start

    counts = {"resumed": 0, "started": 0}
    events = Event.objects.filter(pk__in=list(event_ids), subscriber__isnull=False).select_related(
        "subscriber", "workspace"
    )
    for event in events.order_by("occurred_at", "id"):
        subscriber = event.subscriber
        if subscriber is None:  # excluded by the query; says so to the type checker
            continue
        properties = event.properties if isinstance(event.properties, dict) else {}
        # A run waits for any such event (no key), or for one whose key property has its value: only
        # the values this event carries can match.
        key_values = [str(v)[:200] for v in properties.values() if v is not None and not isinstance(v, dict | list)]
        waiting = WorkflowRun.objects.filter(
            Q(wait_key_value="") | Q(wait_key_value__in=key_values),
            workspace_id=event.workspace_id, status=RunStatus.ACTIVE, wait_event_name=event.name.lower()[:100],
            subscriber_id=subscriber.pk,
        ).exclude(wait_event_name="").values_list("pk", flat=True)  # fmt: skip
        for run_id in list(waiting):
            if run_event_resume(run_id=run_id, event=event, now=now):
                counts["resumed"] += 1
        workflows = Workflow.objects.filter(
            _trigger_filters(event), workspace_id=event.workspace_id, status=WorkflowStatus.ACTIVE
        ).select_related("workspace")
        for workflow in workflows:
            if not trigger_filter_holds(workflow, event):
                continue
            start = workflow_run_start(
                workflow=workflow, subscriber=subscriber, trigger_event_id=event.pk, context=event_context(event),
                dedupe_key=dedupe_key_for(workflow, properties=properties, fallback=f"event:{event.pk}"), now=now,
            )  # fmt: skip
            if start.started and start.run is not None:
                counts["started"] += 1
                run_advance(start.run.pk, now)
    return counts
