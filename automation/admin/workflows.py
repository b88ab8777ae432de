"""Admin for workflows and their runs.

Every write goes through automation.services: adding and changing a workflow (whose trigger, entry
conditions and actions the service validates, naming the path of a bad node), the state actions on
workflows and runs, and deleting. Runs are read-only: a "why" summary on top, the step log inline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from automation import services
from automation.models import (
    OPEN_RUN_STATUSES,
    RunStatus,
    TriggerType,
    Workflow,
    WorkflowRun,
    WorkflowRunStep,
)
from core.errors import ApplicationError

JSON_FIELDS = ("trigger_config", "entry_rules", "actions")
# What the add / change form hands to workflow_create / workflow_update (the service's own fields).
SERVICE_FIELDS = (
    "name", "description", "trigger_type", "trigger_config", "entry_rules", "actions", "re_entry", "dedupe_property",
)  # fmt: skip
# `actions[2].then[0].tag` -> `actions`: the form field a service error path belongs to.
FIELD_OF_PATH_RE = re.compile(r"^[^.\[]+")


def _pretty_json(value: Any) -> str:
    return format_html(
        '<pre style="white-space: pre-wrap; margin: 0">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False)
    )


def workflow_hook_url(workflow: Workflow) -> str:
    return f"{settings.PUBLIC_BASE_URL}/hooks/{workflow.hook_token}"


class PrettyJSONField(forms.JSONField):
    """A JSON text area that shows the stored value indented, one key a line, so a tree of actions can
    be read and edited; text that is not JSON is a form error ("Enter a valid JSON.")."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value  # re-shown as typed, beside its error
        if value is None:
            return ""  # no entry conditions: an empty box, not "null"
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


def _json_widget(rows: int) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, "cols": 100, "style": "font-family: monospace"})


class _DryRun(Exception):
    """Raised inside a savepoint to roll back a service call made only to validate."""


def _service_errors_to_form(form: forms.BaseForm, error: ApplicationError) -> None:
    """Put a service error on the field its path starts with (`actions[2].tag` -> actions), keeping the
    full path in the message; what names no field of the form goes on top of the form."""
    if isinstance(error.details, dict) and error.details:
        for path, path_messages in error.details.items():
            match = FIELD_OF_PATH_RE.match(str(path))
            field = match.group(0) if match else ""
            for message in path_messages if isinstance(path_messages, list) else [path_messages]:
                if field in form.fields:
                    form.add_error(field, message if path == field else f"{path}: {message}")
                else:
                    form.add_error(None, f"{path}: {message}")
        return
    form.add_error("name" if error.code == "workflow_exists" else None, error.message)


class WorkflowAdminForm(forms.ModelForm):
    trigger_config = PrettyJSONField(
        required=False, widget=_json_widget(6), help_text="An object; its keys depend on the trigger type."
    )
    entry_rules = PrettyJSONField(
        required=False, widget=_json_widget(8), help_text="A segment rule tree; empty: every subscriber enters."
    )
    actions = PrettyJSONField(
        required=False, widget=_json_widget(20), help_text="The ordered list of actions (see docs/automation.md)."
    )

    class Meta:
        model = Workflow
        fields = ["workspace", *SERVICE_FIELDS]

    def service_changes(self) -> dict[str, Any]:
        """The fields to hand to the service: all of them for a new workflow, the changed ones otherwise
        (a new trigger type goes with its config, which the service reads with it)."""
        if self.instance.pk is None:
            return {key: self.cleaned_data.get(key) for key in SERVICE_FIELDS}
        changed = set(self.changed_data)
        if changed & {"trigger_type", "trigger_config"}:
            changed |= {"trigger_type", "trigger_config"}
        return {key: self.cleaned_data.get(key) for key in SERVICE_FIELDS if key in changed}

    def service_save(self) -> Workflow:
        """Create or update the workflow through the service (raises its ApplicationError)."""
        changes = self.service_changes()
        if self.instance.pk is None:
            workspace = self.cleaned_data["workspace"]
            return services.workflow_create(workspace=workspace, **changes)
        if not changes:
            return self.instance
        return services.workflow_update(workspace=self.instance.workspace, workflow=self.instance, **changes)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors or (self.instance.pk is None and cleaned.get("workspace") is None):
            return cleaned
        # The service is the one validator (trigger, entry rules, actions, unique name, the workspace's
        # limit): it runs here in a savepoint that is rolled back, so its errors land on the form's
        # fields, and save_model then makes the same call for real in the same transaction.
        try:
            with transaction.atomic():
                self.service_save()
                raise _DryRun
        except _DryRun:
            pass
        except ApplicationError as error:
            _service_errors_to_form(self, error)
        return cleaned

    def _post_clean(self) -> None:
        # The model's own validation (construct_instance, full_clean) is the service's job here, and
        # must not write the raw form values onto the instance the service re-reads.
        pass


def _on_each(
    request: HttpRequest, objects: Iterable[Any], change: Callable[[Any], Any], done: Callable[[list[Any]], str]
) -> None:
    """Apply `change` to each object in its own transaction; a refusal is reported per object and does not
    stop the others. `done` words the results of those that succeeded."""
    results = []
    for obj in objects:
        try:
            with transaction.atomic():
                results.append(change(obj))
        except ApplicationError as error:
            messages.error(request, f"{obj}: {error.message}")
    if results:
        messages.success(request, done(results))


def _count(results: list[Any], noun: str, verb: str) -> str:
    return f"{len(results)} {noun}{'' if len(results) == 1 else 's'} {verb}."


def _cancelled_words(runs_cancelled: list[int]) -> str:
    workflows, runs = len(runs_cancelled), sum(runs_cancelled)
    plural = ("" if workflows == 1 else "s", "" if runs == 1 else "s")
    return f"{workflows} workflow{plural[0]} cancelled (paused); {runs} open run{plural[1]} cancelled."


def _service_action(
    service: Callable[..., Any], *, noun: str, description: str, done: Callable[[list[Any]], str]
) -> Callable[[Any, HttpRequest, QuerySet[Any]], None]:
    """An admin action that calls `service(workspace=..., <noun>=obj)` on each selected object."""

    @admin.action(description=description)
    def act(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        _on_each(
            request, queryset.select_related("workspace"),
            lambda obj: service(workspace=obj.workspace, **{noun: obj}), done,
        )  # fmt: skip

    return act


def _counted(noun: str, verb: str) -> Callable[[list[Any]], str]:
    return lambda done: _count(done, noun, verb)


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    form = WorkflowAdminForm
    list_display = ["name", "workspace", "status", "trigger_type", "runs_open", "runs_completed", "runs_failed"]
    list_filter = ["status", "trigger_type", "workspace"]
    search_fields = ["name", "description"]
    list_select_related = ["workspace"]
    fields = [
        "workspace", "name", "description", "status", "trigger_type", "trigger_config", "trigger_key", "hook_url",
        "entry_rules", "actions", "re_entry", "dedupe_property", "periodic_task", "activated_at", "created_at",
        "updated_at",
    ]  # fmt: skip
    # The status changes by the actions only (activate, pause, resume, cancel), through the services.
    readonly_fields = ["status", "trigger_key", "hook_url", "periodic_task", "activated_at", "created_at", "updated_at"]
    actions = ["activate", "pause", "resume", "cancel"]

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

    def get_readonly_fields(self, request: HttpRequest, obj: Workflow | None = None) -> list[str]:
        # A workflow stays in the workspace it was made in: its actions refer to that workspace's rows.
        return [*self.readonly_fields, "workspace"] if obj is not None else list(self.readonly_fields)

    @admin.display(description="open runs", ordering="open_runs")
    def runs_open(self, obj: Workflow) -> int:
        return getattr(obj, "open_runs", 0)

    @admin.display(description="completed", ordering="completed_runs")
    def runs_completed(self, obj: Workflow) -> int:
        return getattr(obj, "completed_runs", 0)

    @admin.display(description="failed / timed out", ordering="failed_runs")
    def runs_failed(self, obj: Workflow) -> int:
        return getattr(obj, "failed_runs", 0)

    @admin.display(description="hook URL")
    def hook_url(self, obj: Workflow) -> str:
        if obj.pk is None or obj.trigger_type != TriggerType.WEBHOOK:
            return "-"
        return format_html("<code>POST {}</code>", workflow_hook_url(obj))

    def save_model(self, request: HttpRequest, obj: Workflow, form: Any, change: bool) -> None:
        # The form validated this exact call in a rolled-back savepoint of the same transaction.
        saved = form.service_save()
        obj.pk = saved.pk
        obj.refresh_from_db()
        obj._state.adding = False  # the admin then logs and links to the row the service wrote

    def delete_model(self, request: HttpRequest, obj: Workflow) -> None:
        try:
            services.workflow_delete(workspace=obj.workspace, workflow=obj)
        except ApplicationError as error:
            messages.error(request, f"{obj}: {error.message}")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        for workflow in queryset.select_related("workspace"):
            self.delete_model(request, workflow)

    activate = _service_action(
        services.workflow_activate, noun="workflow", description="Activate selected workflows",
        done=_counted("workflow", "activated"),
    )  # fmt: skip
    pause = _service_action(
        services.workflow_pause, noun="workflow", description="Pause selected workflows (open runs hold)",
        done=_counted("workflow", "paused"),
    )  # fmt: skip
    resume = _service_action(
        services.workflow_resume, noun="workflow", description="Resume selected paused workflows",
        done=_counted("workflow", "resumed"),
    )  # fmt: skip
    cancel = _service_action(
        services.workflow_cancel, noun="workflow",
        description="Cancel selected workflows (pause them and cancel their open runs)", done=_cancelled_words,
    )  # fmt: skip


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


def run_wait_words(run: WorkflowRun) -> str:
    """The wait a run is in, in words ("" when it is not waiting)."""
    if run.status not in OPEN_RUN_STATUSES:
        return ""
    wait = run.wait or {}
    due = f"{run.due_at:%Y-%m-%d %H:%M %Z}" if run.due_at else ""
    if run.wait_event_name:
        key = f" with {wait.get('match_key')}={run.wait_key_value}" if run.wait_key_value else ""
        return f"waiting for '{run.wait_event_name}'{key}" + (f", timing out at {due}" if due else "")
    if due and wait:
        return f"waiting until {due}"
    if due:
        return f"due at {due}"
    return ""


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    list_display = ["id", "workflow", "subscriber_email", "status", "started_at", "outcome"]
    list_filter = ["status", "workflow"]
    search_fields = ["subscriber__email", "workflow__name", "dedupe_key"]
    list_select_related = ["workflow", "subscriber"]
    fieldsets = [("Why", {"fields": ["why"]}), ("Run", {"fields": RUN_FIELDS})]
    readonly_fields = ["why", *RUN_FIELDS]
    inlines = [WorkflowRunStepInline]
    actions = ["pause", "resume", "cancel"]

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

    @admin.display(description="at a glance")
    def why(self, obj: WorkflowRun) -> str:
        """Where the run is and why, from its row and its last log line: the outcome of a finished run,
        the error, the wait of an open one."""
        lines: list[tuple[str, str]] = [("Status", obj.get_status_display())]
        if obj.outcome:
            lines.append(("Outcome", obj.outcome))
        elif obj.status in OPEN_RUN_STATUSES:
            lines.append(("Outcome", "still open"))
        if obj.error:
            lines.append(("Error", obj.error))
        wait = run_wait_words(obj)
        if wait:
            lines.append(("Now", wait))
        if obj.status == RunStatus.PAUSED:
            lines.append(("Held", "paused: the engine leaves it where it is until it is resumed"))
        last = obj.steps.order_by("-seq").first()
        if last is not None:
            step = f"#{last.seq} {last.action_type} at {last.path}: {last.get_status_display().lower()}"
            lines.append(("Last step", f"{step}, {last.error or last.detail}" if last.error or last.detail else step))
        lines.append(("Steps", str(obj.step_count)))
        return format_html(
            '<dl style="margin: 0">{}</dl>',
            format_html_join("", "<dt><strong>{}</strong></dt><dd>{}</dd>", lines),
        )

    pause = _service_action(
        services.workflow_run_pause, noun="run", description="Pause selected runs", done=_counted("run", "paused")
    )
    resume = _service_action(
        services.workflow_run_resume, noun="run", description="Resume selected paused runs",
        done=_counted("run", "resumed"),
    )  # fmt: skip
    cancel = _service_action(
        services.workflow_run_cancel, noun="run", description="Cancel selected runs", done=_counted("run", "cancelled")
    )
