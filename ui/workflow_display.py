"""Workflows in words for the UI: a trigger's one-line summary and where a run stands in the action tree."""

from __future__ import annotations

from typing import Any

from automation.actions import duration_words
from automation.models import TriggerType, Workflow, WorkflowRun
from ui.forms_workflow_actions import ACTION_LABELS


def trigger_summary(workflow: Workflow, *, names: dict[str, dict[int, str]]) -> str:
    """e.g. "Event 'order_placed'", "Subscribed to Newsletter"; `names` maps list and segment ids to names."""
    config = workflow.trigger_config or {}
    kind = workflow.trigger_type
    if kind == TriggerType.EVENT:
        filters = config.get("properties") or {}
        return f"Event '{config.get('name', '')}'" + (f" with {len(filters)} property filter(s)" if filters else "")
    if kind in (TriggerType.LIST_SUBSCRIBED, TriggerType.UNSUBSCRIBED):
        list_id = config.get("list_id")
        where = names["lists"].get(list_id, f"list {list_id}") if list_id else "any list"
        verb = "Subscribed to" if kind == TriggerType.LIST_SUBSCRIBED else "Unsubscribed from"
        return f"{verb} {where}"
    if kind in (TriggerType.TAG_ADDED, TriggerType.TAG_REMOVED):
        return f"Tag '{config.get('tag', '')}' {'added' if kind == TriggerType.TAG_ADDED else 'removed'}"
    if kind == TriggerType.FIELD_CHANGED:
        return f"Field '{config.get('field', '')}' changed"
    if kind == TriggerType.DATE:
        offset = int(config.get("offset_days") or 0)
        when = "on" if offset == 0 else f"{abs(offset)} day(s) {'before' if offset < 0 else 'after'}"
        yearly = ", every year" if config.get("anniversary") else ""
        return f"Date: {when} {config.get('field', '')}{yearly}, at {int(config.get('at_hour', 9)):02d}:00"
    if kind in (TriggerType.SEGMENT_ENTERED, TriggerType.SEGMENT_LEFT):
        segment_id = int(config.get("segment_id") or 0)
        verb = "Entered" if kind == TriggerType.SEGMENT_ENTERED else "Left"
        return f"{verb} {names['segments'].get(segment_id, f'segment {segment_id}')}"
    if kind == TriggerType.CRON:
        return f"Schedule {config.get('cron', '')} ({config.get('timezone', 'UTC')})"
    return str(TriggerType(kind).label) if kind in TriggerType.values else kind


def action_at(actions: Any, position: list[Any]) -> dict[str, Any] | None:
    """The action a run's position points at ([2, "then", 0]), or None when it no longer exists."""
    node: Any = actions
    for part in position:
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(part, str) and isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node if isinstance(node, dict) else None


def position_words(position: list[Any]) -> str:
    """[2, "then", 0] -> "3 › then › 1" (people count from 1)."""
    return " › ".join(str(part + 1) if isinstance(part, int) else str(part) for part in position)


def step_path_words(path: str) -> str:
    """A step's stored path ("2.then.0") in the words of position_words ("3 › then › 1")."""
    return position_words([int(part) if part.isdigit() else part for part in path.split(".") if part])


def run_current_step(run: WorkflowRun) -> str:
    """Where an open run stands (its next action and any wait); a finished run's is empty."""
    if run.finished_at is not None or run.status not in ("active", "paused"):
        return ""
    position = list(run.position or [])
    node = action_at(run.workflow.actions, position)
    label = ACTION_LABELS.get(str(node.get("type")), "") if node else "end"
    text = f"{position_words(position)}: {label}" if position else label
    wait = run.wait or {}
    if wait.get("type") == "wait_for_event" and isinstance(wait.get("timeout"), dict):
        text = f"waiting up to {duration_words(wait['timeout'])} for '{wait.get('event', '')}'"
    elif isinstance(wait.get("duration"), dict):
        text = f"waiting {duration_words(wait['duration'])}"
    elif wait.get("until_time"):
        text = f"waiting until {wait['until_time']}"
    return text
