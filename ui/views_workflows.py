"""Workflow pages: the list with status controls, the editor (trigger, entry conditions, re-entry and the
actions, one form per action) and the actions' JSON editor. Thin views over automation.services; the
run log is in ui/views_workflow_runs.py."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Workspace
from automation import selectors as automation_selectors
from automation import services as automation_services
from automation.models import OPEN_RUN_STATUSES, RunStatus, TriggerType, Workflow
from core.errors import ApplicationError, NotFound
from subscribers.models import MailingList, Segment
from ui.access import request_workspace, workspace_view
from ui.actions import button_change
from ui.forms_workflow_actions import (
    ACTION_KINDS,
    ActionForm,
    ActionsJsonForm,
    action_forms,
    action_rows_posted,
    workflow_errors_place,
)
from ui.forms_workflows import WorkflowForm, json_text
from ui.segment_rules import Editor
from ui.workflow_display import trigger_summary
from ui.workflow_entry import entry_check, entry_context, entry_errors_take, entry_posted, entry_saved

ROW_OP_RE = re.compile(r"^(remove|up|down)-(\d{1,3})$")


def workflow_get(workspace: Workspace, workflow_id: int) -> Workflow:
    """Scoped lookup: another workspace's workflow is NotFound (the decorator's 404)."""
    workflow = automation_selectors.workflow_queryset().filter(workspace=workspace, pk=workflow_id).first()
    if workflow is None:
        raise NotFound("Workflow not found.")
    return workflow


def _names(workspace: Workspace) -> dict[str, dict[int, str]]:
    return {
        "lists": dict(MailingList.objects.filter(workspace=workspace).values_list("pk", "name")),
        "segments": dict(Segment.objects.filter(workspace=workspace).values_list("pk", "name")),
    }


@workspace_view()
@require_GET
def workflow_list(request: HttpRequest) -> HttpResponse:
    workspace = request_workspace(request)
    workflows = automation_selectors.workflow_queryset().filter(workspace=workspace).annotate(
        runs_open=Count("runs", filter=Q(runs__status__in=OPEN_RUN_STATUSES)),
        runs_completed=Count("runs", filter=Q(runs__status=RunStatus.COMPLETED)),
    )  # fmt: skip
    names = _names(workspace)
    rows = [{"workflow": w, "trigger": trigger_summary(w, names=names)} for w in workflows]
    return render(request, "ui/workflows/list.html", {"rows": rows, "nav": "workflows"})


WORKFLOW_ACTIONS = {
    "activate": automation_services.workflow_activate,
    "pause": automation_services.workflow_pause,
    "resume": automation_services.workflow_resume,
}


@workspace_view()
@require_POST
def workflow_action(request: HttpRequest, workflow_id: int, action: str) -> HttpResponse:
    """Activate, pause, resume or cancel (pauses and cancels the open runs), through the services."""
    if action not in (*WORKFLOW_ACTIONS, "cancel"):
        raise Http404("No such action.")
    workspace = request_workspace(request)
    workflow = workflow_get(workspace, workflow_id)
    if action == "cancel":
        button_change(
            request, lambda: automation_services.workflow_cancel(workspace=workspace, workflow=workflow),
            done=lambda cancelled: f"{workflow.name} is paused; {cancelled} open run(s) cancelled.",
            subject=workflow.name,
        )  # fmt: skip
    else:
        button_change(
            request, lambda: WORKFLOW_ACTIONS[action](workspace=workspace, workflow=workflow),
            done=lambda changed: f"{changed.name} is {changed.status}.", subject=workflow.name,
        )  # fmt: skip
    back = request.POST.get("next", "")
    if back == "edit":
        return redirect("ui:workflow", workflow_id=workflow.pk)
    return redirect("ui:workflows")


def _editor_context(
    request: HttpRequest, workflow: Workflow | None, form: WorkflowForm, rows: list[ActionForm], entry: Editor
) -> dict[str, Any]:
    hook_url = None
    if workflow is not None and workflow.trigger_type == TriggerType.WEBHOOK:
        hook_url = request.build_absolute_uri(f"/hooks/{workflow.hook_token}")  # as the API's hook_url
    return {
        "workflow": workflow, "form": form, "rows": rows, "action_kinds": ACTION_KINDS, "hook_url": hook_url,
        "nav": "workflows", **entry_context(request_workspace(request), entry),
    }  # fmt: skip


def _row_op(op: str, rows: list[dict[str, Any]], new_kind: str) -> list[dict[str, Any]]:
    """Add, remove or move one action row of the unsaved form (nothing is saved until Save)."""
    if op == "add":
        kind = new_kind if new_kind in dict(ACTION_KINDS) else ACTION_KINDS[0][0]
        return [*rows, {"type": kind}]
    match = ROW_OP_RE.match(op)
    if match is None or int(match.group(2)) >= len(rows):
        return rows
    what, at = match.group(1), int(match.group(2))
    if what == "remove":
        return rows[:at] + rows[at + 1 :]
    to = at - 1 if what == "up" else at + 1
    if 0 <= to < len(rows):
        rows = list(rows)
        rows[at], rows[to] = rows[to], rows[at]
    return rows


def _editor(request: HttpRequest, workflow: Workflow | None) -> HttpResponse:
    workspace = request_workspace(request)
    if request.method != "POST":
        form = WorkflowForm(initial=WorkflowForm.initial_of(workflow) if workflow else {}, workspace=workspace)
        nodes = workflow.actions if workflow else []
        rows = action_forms([ActionForm.row_of(n) for n in nodes], workspace=workspace, bound=False)
        entry = entry_saved(workflow.entry_rules if workflow else None)
        return render(request, "ui/workflows/edit.html", _editor_context(request, workflow, form, rows, entry))
    posted = action_rows_posted(request.POST)
    entry, entry_rules = entry_posted(request.POST)
    op = request.POST.get("op", "save")
    if op != "save":  # rearranging the unsaved actions: show the values as typed, without errors
        form = WorkflowForm(initial=request.POST.dict(), workspace=workspace)
        changed = _row_op(op, posted, request.POST.get("new_action_type", ""))
        rows = action_forms(changed, workspace=workspace, bound=False)
        entry.json_errors.clear()
        return render(request, "ui/workflows/edit.html", _editor_context(request, workflow, form, rows, entry))
    form = WorkflowForm(request.POST, workspace=workspace)
    rows = action_forms(posted, workspace=workspace, bound=True)
    rows_valid = [row.is_valid() for row in rows]  # every row validated, so each shows its own errors
    if form.is_valid() and all(rows_valid) and not entry.json_errors:
        fields = {**form.service_fields(), "entry_rules": entry_rules, "actions": [row.node() for row in rows]}
        try:
            if workflow is None:
                workflow = automation_services.workflow_create(workspace=workspace, **fields)
            else:
                workflow = automation_services.workflow_update(workspace=workspace, workflow=workflow, **fields)
        except ApplicationError as error:
            rest = entry_errors_take(entry, error)
            if rest is not None:
                workflow_errors_place(form, rows, rest)
        else:
            messages.success(request, f"Saved {workflow.name}.")
            return redirect("ui:workflow", workflow_id=workflow.pk)
    else:  # not saved for another field's sake: still say what is wrong with the entry conditions
        entry_check(workspace, entry, entry_rules)
    context = _editor_context(request, workflow, form, rows, entry)
    return render(request, "ui/workflows/edit.html", context, status=400)


@workspace_view()
@require_http_methods(["GET", "POST"])
def workflow_new(request: HttpRequest) -> HttpResponse:
    return _editor(request, None)


@workspace_view()
@require_http_methods(["GET", "POST"])
def workflow_edit(request: HttpRequest, workflow_id: int) -> HttpResponse:
    return _editor(request, workflow_get(request_workspace(request), workflow_id))


@workspace_view()
@require_http_methods(["GET", "POST"])
def workflow_actions_json(request: HttpRequest, workflow_id: int) -> HttpResponse:
    """The actions as one JSON document: every shape the form editor has no inputs for (deep branches)."""
    workspace = request_workspace(request)
    workflow = workflow_get(workspace, workflow_id)
    if request.method == "POST":
        form = ActionsJsonForm(request.POST)
        if form.is_valid():
            try:
                automation_services.workflow_update(
                    workspace=workspace, workflow=workflow, actions=form.cleaned_data["actions"]
                )
            except ApplicationError as error:
                details = error.details if isinstance(error.details, dict) else {}
                for path, problems in details.items() or [("", [error.message])]:
                    for problem in problems if isinstance(problems, list) else [problems]:
                        form.add_error("actions", f"{path}: {problem}" if path else str(problem))
            else:
                messages.success(request, f"Saved the actions of {workflow.name}.")
                return redirect("ui:workflow", workflow_id=workflow.pk)
        status = 400
    else:
        form = ActionsJsonForm(initial={"actions": json_text(workflow.actions or [])})
        status = 200
    context = {"workflow": workflow, "form": form, "nav": "workflows"}
    return render(request, "ui/workflows/actions_json.html", context, status=status)


@workspace_view()
@require_POST
def workflow_remove(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    workflow = workflow_get(workspace, workflow_id)
    automation_services.workflow_delete(workspace=workspace, workflow=workflow)
    messages.success(request, f"Deleted {workflow.name} with its runs.")
    return redirect("ui:workflows")
