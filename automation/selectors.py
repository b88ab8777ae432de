"""Reads of workflows and runs, scoped to a workspace."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import Workspace
from automation.models import TriggerType, Workflow, WorkflowRun, WorkflowRunStep
from core.errors import NotFound
from subscribers.models import Segment, Subscriber
from subscribers.segments import segment_q


def workflow_queryset() -> QuerySet[Workflow]:
    """Every workflow (the API's scoping mixin narrows it to the caller's workspace)."""
    return Workflow.objects.order_by("name", "id")


def workflow_run_queryset() -> QuerySet[WorkflowRun]:
    return WorkflowRun.objects.select_related("workflow", "subscriber").order_by("-started_at", "-id")


def workflow_run_steps(*, run: WorkflowRun) -> QuerySet[WorkflowRunStep]:
    return WorkflowRunStep.objects.filter(run=run).order_by("seq")


def subscriber_for_workflow(
    *, workspace: Workspace, subscriber_id: int | None = None, email: str | None = None
) -> Subscriber:
    """The workspace's subscriber by id or (case-insensitive) address; 404 for another workspace's."""
    subscribers = Subscriber.objects.filter(workspace=workspace)
    if subscriber_id is not None:
        subscriber = subscribers.filter(pk=subscriber_id).first()
    elif email:
        subscriber = subscribers.filter(email__iexact=email.strip()).first()
    else:
        subscriber = None
    if subscriber is None:
        raise NotFound("No such subscriber.")
    return subscriber


def workflow_entry_holds(*, workflow: Workflow, subscriber: Subscriber) -> bool:
    """Whether the subscriber meets the workflow's entry conditions now (true without conditions)."""
    if not workflow.entry_rules:
        return True
    return (
        Subscriber.objects.filter(pk=subscriber.pk, workspace_id=workflow.workspace_id)
        .filter(segment_q(workspace=workflow.workspace, tree=workflow.entry_rules))
        .exists()
    )


def _rules_use_segment(node: Any, segment_id: int) -> bool:
    if isinstance(node, dict):
        if node.get("segment") == segment_id:
            return True
        return any(_rules_use_segment(value, segment_id) for value in node.values())
    if isinstance(node, list):
        return any(_rules_use_segment(item, segment_id) for item in node)
    return False


def _actions_use_segment(actions: Any, segment_id: int) -> bool:
    for node in actions if isinstance(actions, list) else []:
        if not isinstance(node, dict):
            continue
        if node.get("type") == "branch" and _rules_use_segment(node.get("rules"), segment_id):
            return True
        if any(_actions_use_segment(node.get(key), segment_id) for key in ("then", "else", "on_event", "on_timeout")):
            return True
    return False


def workflow_segment_usage(segment: Segment) -> list[str]:
    """The workflows that use `segment` (trigger, entry conditions or a branch), in words, for the segment
    in-use check: a segment a workflow relies on cannot be deleted from under it."""
    uses = []
    for workflow in Workflow.objects.filter(workspace_id=segment.workspace_id).only(
        "name", "trigger_type", "trigger_key", "entry_rules", "actions"
    ):
        by_segment = workflow.trigger_type in (TriggerType.SEGMENT_ENTERED, TriggerType.SEGMENT_LEFT)
        if by_segment and workflow.trigger_key == str(segment.pk):
            uses.append(f"workflow '{workflow.name}' (trigger)")
        elif _rules_use_segment(workflow.entry_rules, segment.pk):
            uses.append(f"workflow '{workflow.name}' (entry conditions)")
        elif _actions_use_segment(workflow.actions, segment.pk):
            uses.append(f"workflow '{workflow.name}' (a branch)")
    return uses
