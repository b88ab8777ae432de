"""Admin for workflows and their runs.

Workflows are built and validated through the API (automation.services); here they are read, renamed,
activated, paused and deleted. Runs are read-only: their step log is an inline table readable at a glance.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from automation.cron import workflow_periodic_task_remove, workflow_periodic_task_sync
from automation.models import (
    OPEN_RUN_STATUSES,
    RunStatus,
    TriggerType,
    Workflow,
    WorkflowRun,
    WorkflowRunStep,
    WorkflowStatus,
)
from core.errors import ApplicationError

JSON_FIELDS = ("trigger_config", "entry_rules", "actions")


def _pretty_json(value: Any) -> str:
    return format_html(
        '<pre style="white-space: pre-wrap; margin: 0">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False)
    )


def workflow_hook_url(workflow: Workflow) -> str:
    return f"{settings.PUBLIC_BASE_URL}/hooks/{workflow.hook_token}"


def _on_each(request: HttpRequest, queryset: QuerySet[Workflow], change: Callable[[Workflow], None], verb: str) -> None:
    done = 0
    for workflow in queryset.select_related("workspace"):
        try:
            with transaction.atomic():
                change(workflow)
        except ApplicationError as error:
            messages.error(request, f"{workflow}: {error.message}")
        else:
            done += 1
    if done:
        messages.success(request, f"{done} workflow(s) {verb}.")


def _status_set(workflow: Workflow, status: str) -> None:
    # Until automation.services merges its activate / pause, the admin changes the status itself and
    # keeps the cron PeriodicTask in step (enabled only while active).
    workflow.status = status
    fields = ["status", "updated_at"]
    if status == WorkflowStatus.ACTIVE and workflow.activated_at is None:
        workflow.activated_at = timezone.now()
        fields.append("activated_at")
    workflow.save(update_fields=fields)
    workflow_periodic_task_sync(workflow)


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "status", "trigger_type", "runs_open", "runs_completed", "runs_failed"]
    list_filter = ["status", "trigger_type", "workspace"]
    search_fields = ["name", "description"]
    list_select_related = ["workspace"]
    fields = [
        "workspace", "name", "description", "status", "trigger_type", "trigger_key", "trigger_config_json",
        "hook_url", "entry_rules_json", "actions_json", "re_entry", "dedupe_property", "periodic_task",
        "activated_at", "created_at", "updated_at",
    ]  # fmt: skip
    readonly_fields = [
        "workspace", "status", "trigger_type", "trigger_key", "trigger_config_json", "hook_url", "entry_rules_json",
        "actions_json", "re_entry", "dedupe_property", "periodic_task", "activated_at", "created_at", "updated_at",
    ]  # fmt: skip
    actions = ["activate", "pause"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        # The run counts of the whole page in the page's one query, not one query per row.
        return (
            super()
            .get_queryset(request)
            .annotate(
                open_runs=Count("runs", filter=Q(runs__status__in=OPEN_RUN_STATUSES)),
                completed_runs=Count("runs", filter=Q(runs__status=RunStatus.COMPLETED)),
                failed_runs=Count("runs", filter=Q(runs__status__in=[RunStatus.FAILED, RunStatus.TIMED_OUT])),
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # built through the API, whose service validates the trigger and the actions

    @admin.display(description="open runs", ordering="open_runs")
    def runs_open(self, obj: Workflow) -> int:
        return getattr(obj, "open_runs", 0)

    @admin.display(description="completed", ordering="completed_runs")
    def runs_completed(self, obj: Workflow) -> int:
        return getattr(obj, "completed_runs", 0)

    @admin.display(description="failed / timed out", ordering="failed_runs")
    def runs_failed(self, obj: Workflow) -> int:
        return getattr(obj, "failed_runs", 0)

    @admin.display(description="trigger config")
    def trigger_config_json(self, obj: Workflow) -> str:
        return _pretty_json(obj.trigger_config)

    @admin.display(description="entry conditions")
    def entry_rules_json(self, obj: Workflow) -> str:
        return _pretty_json(obj.entry_rules) if obj.entry_rules else "none: every subscriber"

    @admin.display(description="actions")
    def actions_json(self, obj: Workflow) -> str:
        return _pretty_json(obj.actions)

    @admin.display(description="hook URL")
    def hook_url(self, obj: Workflow) -> str:
        if obj.trigger_type != TriggerType.WEBHOOK:
            return "-"
        return format_html("<code>POST {}</code>", workflow_hook_url(obj))

    def save_model(self, request: HttpRequest, obj: Workflow, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            workflow_periodic_task_sync(obj)  # the PeriodicTask carries the workflow's name

    def delete_model(self, request: HttpRequest, obj: Workflow) -> None:
        with transaction.atomic():
            workflow_periodic_task_remove(obj)
            obj.delete()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        for workflow in queryset:
            self.delete_model(request, workflow)

    @admin.action(description="Activate selected workflows")
    def activate(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        _on_each(request, queryset, lambda w: _status_set(w, WorkflowStatus.ACTIVE), "activated")

    @admin.action(description="Pause selected workflows")
    def pause(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        _on_each(request, queryset, lambda w: _status_set(w, WorkflowStatus.PAUSED), "paused")


STEP_LOG_FIELDS = ("seq", "path", "action_type", "status", "detail", "error", "started_at", "time_taken")
RUN_FIELDS = (
    "workspace", "workflow", "subscriber", "status", "trigger_type", "dedupe_key", "trigger_event_id",
    "context_json", "position", "due_at", "wait_json", "wait_event_name", "wait_key_value", "step_count",
    "outcome", "error", "started_at", "updated_at", "finished_at",
)  # fmt: skip


class WorkflowRunStepInline(admin.TabularInline):
    model = WorkflowRunStep
    fields = STEP_LOG_FIELDS
    readonly_fields = STEP_LOG_FIELDS
    extra = 0
    can_delete = False
    ordering = ["seq"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="time taken")
    def time_taken(self, obj: WorkflowRunStep) -> str:
        if obj.finished_at is None:
            return "-"
        seconds = (obj.finished_at - obj.started_at).total_seconds()
        return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    list_display = ["id", "workflow", "subscriber_email", "status", "started_at", "outcome"]
    list_filter = ["status", "workflow"]
    search_fields = ["subscriber__email", "workflow__name", "dedupe_key"]
    list_select_related = ["workflow", "subscriber"]
    fields = RUN_FIELDS
    readonly_fields = RUN_FIELDS
    inlines = [WorkflowRunStepInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs are started by triggers only

    @admin.display(description="subscriber", ordering="subscriber__email")
    def subscriber_email(self, obj: WorkflowRun) -> str:
        return obj.subscriber.email

    @admin.display(description="context")
    def context_json(self, obj: WorkflowRun) -> str:
        return _pretty_json(obj.context)

    @admin.display(description="wait")
    def wait_json(self, obj: WorkflowRun) -> str:
        return _pretty_json(obj.wait) if obj.wait else "-"
