"""A workflow's run log (filter by status, paged) and one run's steps, with pause / resume / cancel of the
run through automation.services."""

from __future__ import annotations

from django import forms
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Workspace
from automation import selectors as automation_selectors
from automation import services as automation_services
from automation.models import OPEN_RUN_STATUSES, RunStatus, WorkflowRun
from core.errors import NotFound
from ui.access import request_workspace, workspace_view
from ui.actions import button_change
from ui.views_workflows import workflow_get
from ui.workflow_display import run_current_step, step_path_words

RUNS_PAGE_SIZE = 25
RUN_ACTIONS = {
    "pause": automation_services.workflow_run_pause,
    "resume": automation_services.workflow_run_resume,
    "cancel": automation_services.workflow_run_cancel,
}


class RunFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *RunStatus.choices])


def run_get(workspace: Workspace, run_id: int) -> WorkflowRun:
    run = automation_selectors.workflow_run_queryset().filter(workspace=workspace, pk=run_id).first()
    if run is None:
        raise NotFound("Run not found.")
    return run


@workspace_view()
@require_GET
def workflow_runs(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    workflow = workflow_get(workspace, workflow_id)
    form = RunFilterForm(request.GET or None)
    context = {"workflow": workflow, "form": form, "nav": "workflows"}
    if form.is_bound and not form.is_valid():
        return render(request, "ui/workflows/runs.html", context, status=400)
    runs = automation_selectors.workflow_run_queryset().filter(workspace=workspace, workflow=workflow)
    status = form.cleaned_data.get("status") if form.is_bound else ""
    if status:
        runs = runs.filter(status=status)
    page = Paginator(runs, RUNS_PAGE_SIZE).get_page(request.GET.get("page"))
    for run in page:
        run.workflow = workflow  # one workflow for every row: its actions name each run's current step
    query = request.GET.copy()
    query.pop("page", None)
    rows = [{"run": run, "current": run_current_step(run)} for run in page]
    context.update({"page": page, "rows": rows, "query": query.urlencode()})
    return render(request, "ui/workflows/runs.html", context)


@workspace_view()
@require_GET
def workflow_run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_get(request_workspace(request), run_id)
    context = {
        "run": run,
        "workflow": run.workflow,
        "steps": [
            {"step": step, "where": step_path_words(step.path)}
            for step in automation_selectors.workflow_run_steps(run=run)
        ],
        "current": run_current_step(run),
        "run_open": run.status in OPEN_RUN_STATUSES,
        "nav": "workflows",
    }
    return render(request, "ui/workflows/run.html", context)


@workspace_view()
@require_POST
def workflow_run_action(request: HttpRequest, run_id: int, action: str) -> HttpResponse:
    if action not in RUN_ACTIONS:
        raise Http404("No such action.")
    workspace = request_workspace(request)
    run = run_get(workspace, run_id)
    button_change(
        request, lambda: RUN_ACTIONS[action](workspace=workspace, run=run),
        done=lambda changed: f"The run is {changed.status}.",
    )  # fmt: skip
    return redirect("ui:workflow-run", run_id=run.pk)
