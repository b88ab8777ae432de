"""Writes for workflows and their runs: create, update, delete, activate, pause, resume, cancel, and the
validation of a workflow's trigger, entry conditions and actions (errors name the path, e.g.
`actions[2].then[0].tag`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Workspace
from automation.cron import cron_config_clean, workflow_periodic_task_remove, workflow_periodic_task_sync
from automation.models import (
    OPEN_RUN_STATUSES,
    ReEntry,
    RunStatus,
    TriggerType,
    WebhookEndpoint,
    Workflow,
    WorkflowRun,
    WorkflowStatus,
)
from core.errors import Conflict, NotFound, ValidationFailed
from sequences.models import Sequence, Template
from subscribers.models import FieldDefinition, FieldType, MailingList, Segment
from subscribers.segments import segment_validate
from subscribers.services.validation import email_normalize, json_storable, text_storable

MAX_ACTION_NODES = 200
MAX_ACTION_DEPTH = 8
DURATION_UNITS = ("minutes", "hours", "days", "weeks")
# The longest single wait: a year. Longer ones would outlive WORKFLOW_EXECUTION_TIMEOUT's default anyway.
MAX_DURATION_MINUTES = 366 * 24 * 60
PROFILE_FIELDS = ("first_name", "last_name", "locale", "time_zone")
ACTION_TYPES = (
    "enroll", "exit_sequence", "send_email", "add_tag", "remove_tag", "subscribe_list", "unsubscribe_list",
    "update_field", "wait", "wait_for_event", "branch", "webhook", "notify", "goal",
)  # fmt: skip
TIME_OF_DAY_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
# The cache key of the event names and trigger types that workflows use, read by the event matcher on
# the sending hot path; every workflow write drops it.
USAGE_CACHE_KEY = "automation:usage:v1"


def _fail(path: str, message: str, code: str | None = None) -> ValidationFailed:
    return ValidationFailed.for_field(path, message, code=code)


def _text(value: Any, path: str, *, max_length: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise _fail(path, "Must be a non-empty string." if required else "Must be a string.")
    value = value.strip()
    if len(value) > max_length:
        raise _fail(path, f"Must be at most {max_length} characters.")
    return text_storable(value=value, field=path)


def _int(value: Any, path: str, *, minimum: int = 1, maximum: int = 2**62) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _fail(path, f"Must be an integer from {minimum} to {maximum}.")
    return value


def _object(
    value: Any, path: str, allowed: set[str], required: frozenset[str] | set[str] = frozenset()
) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, "Must be an object.")
    for key in value:
        if key not in allowed:
            raise _fail(f"{path}.{key}", f"Unknown key; allowed: {', '.join(sorted(allowed))}.")
    for key in required:
        if key not in value:
            raise _fail(f"{path}.{key}", "This key is required.", code="required")
    return value


def _owned(model: Any, workspace: Workspace, value: Any, path: str, what: str) -> int:
    pk = _int(value, path)
    if not model.objects.filter(workspace=workspace, pk=pk).exists():
        raise _fail(path, f"No such {what} in this workspace.", code="not_found")
    return pk


def _merge_tags_check(value: str, path: str) -> None:
    from sequences.rendering import plain_engine

    try:
        plain_engine().from_string(value)
    except Exception as exc:  # noqa: BLE001 - any compile failure is the author's, shown with its path
        raise _fail(path, f"Merge tags do not compile: {exc}") from None


def duration_clean(value: Any, path: str) -> dict[str, Any]:
    node = _object(value, path, {"value", "unit"}, {"value", "unit"})
    unit = node["unit"]
    if unit not in DURATION_UNITS:
        raise _fail(f"{path}.unit", f"Must be one of: {', '.join(DURATION_UNITS)}.")
    per_unit = {"minutes": 1, "hours": 60, "days": 1440, "weeks": 10080}[unit]
    amount = _int(node["value"], f"{path}.value", minimum=1, maximum=MAX_DURATION_MINUTES // per_unit)
    return {"value": amount, "unit": unit}


# Triggers ---------------------------------------------------------------------------------------


def _list_id(workspace: Workspace, config: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    list_id = config.get("list_id")
    if list_id is None:
        return {"list_id": None}, "*"
    return {"list_id": _owned(MailingList, workspace, list_id, "trigger_config.list_id", "list")}, str(list_id)


def trigger_clean(*, workspace: Workspace, trigger_type: Any, config: Any) -> tuple[dict[str, Any], str]:
    """The normalized trigger_config and the trigger_key the matcher looks the workflow up by."""
    if trigger_type not in TriggerType.values:
        raise _fail("trigger_type", f"Must be one of: {', '.join(TriggerType.values)}.")
    config = {} if config is None else config
    path = "trigger_config"
    if trigger_type == TriggerType.EVENT:
        node = _object(config, path, {"name", "properties"}, {"name"})
        name = _text(node["name"], f"{path}.name", max_length=100)
        properties = node.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise _fail(f"{path}.properties", "Must be an object of property: value.")
        json_storable(value=properties, field=f"{path}.properties")
        return {"name": name, "properties": dict(properties)}, name.lower()
    if trigger_type in (TriggerType.LIST_SUBSCRIBED, TriggerType.UNSUBSCRIBED):
        return _list_id(workspace, _object(config, path, {"list_id"}))
    if trigger_type in (TriggerType.TAG_ADDED, TriggerType.TAG_REMOVED):
        node = _object(config, path, {"tag"}, {"tag"})
        tag = _text(node["tag"], f"{path}.tag", max_length=100)
        return {"tag": tag}, tag.lower()
    if trigger_type == TriggerType.FIELD_CHANGED:
        node = _object(config, path, {"field", "from", "to"}, {"field"})
        field = _text(node["field"], f"{path}.field", max_length=64)
        out: dict[str, Any] = {"field": field}
        for key in ("from", "to"):
            if key in node:
                json_storable(value=node[key], field=f"{path}.{key}")
                out[key] = node[key]
        return out, field.lower()
    if trigger_type == TriggerType.DATE:
        node = _object(config, path, {"field", "offset_days", "anniversary", "at_hour"}, {"field"})
        field = _text(node["field"], f"{path}.field", max_length=64)
        if not FieldDefinition.objects.filter(
            workspace=workspace, key=field, type__in=[FieldType.DATE, FieldType.DATETIME]
        ).exists():
            raise _fail(f"{path}.field", "Must be a date or datetime field of this workspace.", code="not_found")
        anniversary = node.get("anniversary", False)
        if not isinstance(anniversary, bool):
            raise _fail(f"{path}.anniversary", "Must be true or false.")
        return {
            "field": field,
            "offset_days": _int(node.get("offset_days", 0), f"{path}.offset_days", minimum=-365, maximum=365),
            "anniversary": anniversary,
            "at_hour": _int(node.get("at_hour", 9), f"{path}.at_hour", minimum=0, maximum=23),
        }, field.lower()
    if trigger_type in (TriggerType.SEGMENT_ENTERED, TriggerType.SEGMENT_LEFT):
        node = _object(config, path, {"segment_id"}, {"segment_id"})
        segment_id = _owned(Segment, workspace, node["segment_id"], f"{path}.segment_id", "segment")
        return {"segment_id": segment_id}, str(segment_id)
    if trigger_type == TriggerType.CRON:
        node = _object(config, path, {"cron", "timezone"}, {"cron"})
        # One validator for the service and the periodic task: beat parses exactly what passed here.
        schedule = cron_config_clean(config=dict(node), field=path)
        return {"cron": " ".join(node["cron"].split()), "timezone": schedule["timezone"]}, ""
    if trigger_type == TriggerType.WEBHOOK:
        # The name of the event the hook's runs carry (the context's trigger.event_name); "webhook" if none.
        node = _object(config, path, {"event_name"})
        if node.get("event_name") in (None, ""):
            return {}, ""
        return {"event_name": _text(node["event_name"], f"{path}.event_name", max_length=100)}, ""
    _object(config, path, set())  # api: nothing to configure
    return {}, ""


# Actions ----------------------------------------------------------------------------------------


class _ActionChecker:
    """Walks an action list, normalizing each node; counts nodes across the whole tree."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.count = 0

    def nodes(self, value: Any, path: str, depth: int) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise _fail(path, "Must be a list of actions.")
        if depth > MAX_ACTION_DEPTH:
            raise _fail(path, f"Branches may nest at most {MAX_ACTION_DEPTH} deep.")
        return [self.node(item, f"{path}[{index}]", depth) for index, item in enumerate(value)]

    def node(self, value: Any, path: str, depth: int) -> dict[str, Any]:
        self.count += 1
        if self.count > MAX_ACTION_NODES:
            raise _fail(path, f"A workflow has at most {MAX_ACTION_NODES} actions in all.")
        if not isinstance(value, Mapping):
            raise _fail(path, "Each action must be an object with a type.")
        kind = value.get("type")
        if kind not in ACTION_TYPES:
            raise _fail(f"{path}.type", f"Must be one of: {', '.join(ACTION_TYPES)}.")
        ws = self.workspace
        if kind in ("enroll", "exit_sequence"):
            node = _object(value, path, {"type", "sequence_id"}, {"sequence_id"})
            return {"type": kind, "sequence_id": _owned(Sequence, ws, node["sequence_id"], f"{path}.sequence_id",
                                                         "sequence")}  # fmt: skip
        if kind == "send_email":
            node = _object(value, path, {"type", "template_id"}, {"template_id"})
            return {"type": kind, "template_id": _owned(Template, ws, node["template_id"], f"{path}.template_id",
                                                         "template")}  # fmt: skip
        if kind in ("add_tag", "remove_tag"):
            node = _object(value, path, {"type", "tag"}, {"tag"})
            return {"type": kind, "tag": _text(node["tag"], f"{path}.tag", max_length=100)}
        if kind in ("subscribe_list", "unsubscribe_list"):
            node = _object(value, path, {"type", "list_id"}, {"list_id"})
            return {"type": kind, "list_id": _owned(MailingList, ws, node["list_id"], f"{path}.list_id", "list")}
        if kind == "update_field":
            node = _object(value, path, {"type", "field", "value"}, {"field", "value"})
            field = _text(node["field"], f"{path}.field", max_length=64)
            if field not in PROFILE_FIELDS and not FieldDefinition.objects.filter(workspace=ws, key=field).exists():
                raise _fail(f"{path}.field", "Must be a custom field of this workspace or a profile field "
                                             f"({', '.join(PROFILE_FIELDS)}).", code="not_found")  # fmt: skip
            field_value = node["value"]
            json_storable(value=field_value, field=f"{path}.value")
            if isinstance(field_value, list | dict):
                raise _fail(f"{path}.value", "Must be a string, number, boolean or null.")
            if isinstance(field_value, str):
                if len(field_value) > 2000:
                    raise _fail(f"{path}.value", "Must be at most 2000 characters.")
                _merge_tags_check(field_value, f"{path}.value")
            return {"type": kind, "field": field, "value": field_value}
        if kind == "wait":
            node = _object(value, path, {"type", "duration", "until_time"})
            if ("duration" in node) == ("until_time" in node):
                raise _fail(path, "A wait has either a duration or an until_time.", code="required")
            if "duration" in node:
                return {"type": kind, "duration": duration_clean(node["duration"], f"{path}.duration")}
            until = node["until_time"]
            if not isinstance(until, str) or not TIME_OF_DAY_RE.match(until):
                raise _fail(f"{path}.until_time", "Must be a time of day as HH:MM (24-hour clock).")
            return {"type": kind, "until_time": until}
        if kind == "wait_for_event":
            allowed = {"type", "event", "match_key", "timeout", "on_event", "on_timeout"}
            node = _object(value, path, allowed, {"event", "timeout"})
            out: dict[str, Any] = {"type": kind, "event": _text(node["event"], f"{path}.event", max_length=100)}
            if node.get("match_key") is not None:
                out["match_key"] = _text(node["match_key"], f"{path}.match_key", max_length=100)
            out["timeout"] = duration_clean(node["timeout"], f"{path}.timeout")
            out["on_event"] = self.nodes(node.get("on_event", []), f"{path}.on_event", depth + 1)
            out["on_timeout"] = self.nodes(node.get("on_timeout", []), f"{path}.on_timeout", depth + 1)
            return out
        if kind == "branch":
            node = _object(value, path, {"type", "rules", "then", "else"}, {"rules"})
            rules = segment_validate(workspace=ws, tree=node["rules"], field=f"{path}.rules")
            return {
                "type": kind,
                "rules": rules,
                "then": self.nodes(node.get("then", []), f"{path}.then", depth + 1),
                "else": self.nodes(node.get("else", []), f"{path}.else", depth + 1),
            }
        if kind == "webhook":
            node = _object(value, path, {"type", "endpoint_id"}, {"endpoint_id"})
            endpoint_id = _owned(WebhookEndpoint, ws, node["endpoint_id"], f"{path}.endpoint_id", "webhook endpoint")
            return {"type": kind, "endpoint_id": endpoint_id}
        if kind == "notify":
            node = _object(value, path, {"type", "to", "subject", "body"}, {"subject", "body"})
            out = {"type": kind}
            if node.get("to") is not None:
                to = node["to"]
                if not isinstance(to, list) or not 1 <= len(to) <= 20:
                    raise _fail(f"{path}.to", "Must be a list of 1 to 20 email addresses.")
                out["to"] = [email_normalize(email=email, field=f"{path}.to[{i}]") for i, email in enumerate(to)]
            out["subject"] = _text(node["subject"], f"{path}.subject", max_length=200)
            out["body"] = _text(node["body"], f"{path}.body", max_length=10_000)
            _merge_tags_check(out["subject"], f"{path}.subject")
            _merge_tags_check(out["body"], f"{path}.body")
            return out
        node = _object(value, path, {"type", "name"}, {"name"})  # goal
        return {"type": kind, "name": _text(node["name"], f"{path}.name", max_length=100)}


def actions_clean(*, workspace: Workspace, actions: Any) -> list[dict[str, Any]]:
    return _ActionChecker(workspace).nodes([] if actions is None else actions, "actions", 1)


def entry_rules_clean(*, workspace: Workspace, rules: Any) -> dict[str, Any] | None:
    if rules is None or rules == {}:
        return None
    return segment_validate(workspace=workspace, tree=rules, field="entry_rules")


def wait_event_names(actions: list[dict[str, Any]]) -> set[str]:
    """The (lower-cased) event names the wait_for_event actions of this tree wait for."""
    names: set[str] = set()
    for node in actions:
        if node.get("type") == "wait_for_event":
            names.add(str(node.get("event", "")).lower())
        for key in ("then", "else", "on_event", "on_timeout"):
            if isinstance(node.get(key), list):
                names |= wait_event_names(node[key])
    return names


# Workflows --------------------------------------------------------------------------------------


def _usage_changed() -> None:
    transaction.on_commit(lambda: cache.delete(USAGE_CACHE_KEY))
    cache.delete(USAGE_CACHE_KEY)


def _own(workspace: Workspace, workflow: Workflow) -> None:
    if workflow.workspace_id != workspace.pk:
        raise NotFound("No such workflow.")


def _save(workflow: Workflow) -> Workflow:
    try:
        with transaction.atomic():
            workflow.save()
    except IntegrityError:
        raise Conflict(f"A workflow named '{workflow.name}' exists.", code="workflow_exists") from None
    return workflow


def _apply(workflow: Workflow, *, workspace: Workspace, changes: Mapping[str, Any]) -> None:
    allowed = {"name", "description", "trigger_type", "trigger_config", "entry_rules", "actions", "re_entry",
               "dedupe_property"}  # fmt: skip
    unknown = set(changes) - allowed
    if unknown:
        raise _fail(sorted(unknown)[0], "This field cannot be changed here.")
    if "name" in changes:
        workflow.name = _text(changes["name"], "name", max_length=200)
    if "description" in changes:
        workflow.description = _text(changes["description"], "description", max_length=5000, required=False)
    if "trigger_type" in changes or "trigger_config" in changes:
        trigger_type = changes.get("trigger_type", workflow.trigger_type)
        config = changes.get("trigger_config", workflow.trigger_config if "trigger_type" not in changes else {})
        workflow.trigger_config, workflow.trigger_key = trigger_clean(
            workspace=workspace, trigger_type=trigger_type, config=config
        )
        workflow.trigger_type = trigger_type
    if "entry_rules" in changes:
        workflow.entry_rules = entry_rules_clean(workspace=workspace, rules=changes["entry_rules"])
    if "actions" in changes:
        workflow.actions = actions_clean(workspace=workspace, actions=changes["actions"])
    if "re_entry" in changes:
        if changes["re_entry"] not in ReEntry.values:
            raise _fail("re_entry", f"Must be one of: {', '.join(ReEntry.values)}.")
        workflow.re_entry = changes["re_entry"]
    if "dedupe_property" in changes:
        workflow.dedupe_property = _text(changes["dedupe_property"], "dedupe_property", max_length=100, required=False)


@transaction.atomic
def workflow_create(
    *,
    workspace: Workspace,
    name: str,
    trigger_type: str,
    trigger_config: Any = None,
    entry_rules: Any = None,
    actions: Any = None,
    re_entry: str = ReEntry.ONCE,
    dedupe_property: str = "",
    description: str = "",
) -> Workflow:
    """A new draft workflow; at most AUTOMATION_MAX_WORKFLOWS per workspace (409 beyond)."""
    # Serialize creations per workspace so the limit holds under concurrent requests.
    Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
    if Workflow.objects.filter(workspace=workspace).count() >= settings.AUTOMATION_MAX_WORKFLOWS:
        raise Conflict(
            f"A workspace has at most {settings.AUTOMATION_MAX_WORKFLOWS} workflows.", code="workflow_limit_reached"
        )
    workflow = Workflow(workspace=workspace, status=WorkflowStatus.DRAFT)
    _apply(
        workflow, workspace=workspace,
        changes={"name": name, "description": description, "trigger_type": trigger_type,
                 "trigger_config": trigger_config, "entry_rules": entry_rules, "actions": actions,
                 "re_entry": re_entry, "dedupe_property": dedupe_property},
    )  # fmt: skip
    _save(workflow)
    workflow_periodic_task_sync(workflow)
    _usage_changed()
    return workflow


@transaction.atomic
def workflow_update(*, workspace: Workspace, workflow: Workflow, **changes: Any) -> Workflow:
    """Change any part of a workflow. Runs in flight continue from their position in the new actions."""
    _own(workspace, workflow)
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    _apply(workflow, workspace=workspace, changes=changes)
    _save(workflow)
    workflow_periodic_task_sync(workflow)
    _usage_changed()
    return workflow


@transaction.atomic
def workflow_delete(*, workspace: Workspace, workflow: Workflow) -> None:
    """Delete the workflow with its runs and their logs."""
    _own(workspace, workflow)
    workflow_periodic_task_remove(workflow)  # the periodic task of a cron workflow goes with it
    workflow.delete()
    _usage_changed()


def _transition(workspace: Workspace, workflow: Workflow, *, to: str, allowed_from: tuple[str, ...]) -> Workflow:
    _own(workspace, workflow)
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    if workflow.status == to:
        return workflow
    if workflow.status not in allowed_from:
        raise Conflict(f"The workflow is {workflow.status}.", code="workflow_state")
    if to == WorkflowStatus.ACTIVE:
        if not workflow.actions:
            raise Conflict("A workflow needs at least one action to run.", code="workflow_has_no_actions")
        # Re-check what the rows refer to: a list or template may have gone since it was saved.
        actions_clean(workspace=workspace, actions=workflow.actions)
        if workflow.activated_at is None:
            workflow.activated_at = timezone.now()
    workflow.status = to
    workflow.save(update_fields=["status", "activated_at", "updated_at"])
    workflow_periodic_task_sync(workflow)
    _usage_changed()
    return workflow


@transaction.atomic
def workflow_activate(*, workspace: Workspace, workflow: Workflow) -> Workflow:
    """Draft or paused -> active: new triggers start runs, held runs continue."""
    return _transition(workspace, workflow, to=WorkflowStatus.ACTIVE, allowed_from=(WorkflowStatus.DRAFT,
                                                                                    WorkflowStatus.PAUSED))  # fmt: skip


@transaction.atomic
def workflow_pause(*, workspace: Workspace, workflow: Workflow) -> Workflow:
    """No new runs; open runs hold where they are (the tick skips them) until resumed."""
    return _transition(workspace, workflow, to=WorkflowStatus.PAUSED, allowed_from=(WorkflowStatus.ACTIVE,))


@transaction.atomic
def workflow_resume(*, workspace: Workspace, workflow: Workflow) -> Workflow:
    """Paused -> active: held runs continue (a wait that ended meanwhile is taken at the next tick)."""
    return _transition(workspace, workflow, to=WorkflowStatus.ACTIVE, allowed_from=(WorkflowStatus.PAUSED,))


def _runs_close(runs: Any, *, status: str, outcome: str) -> int:
    return int(
        runs.update(
            status=status, outcome=outcome[:300], finished_at=timezone.now(), due_at=None, wait_event_name="",
            updated_at=timezone.now(),
        )
    )  # fmt: skip


@transaction.atomic
def workflow_cancel(*, workspace: Workspace, workflow: Workflow) -> int:
    """Pause the workflow and cancel all its open runs; returns how many runs were cancelled."""
    _own(workspace, workflow)
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    if workflow.status != WorkflowStatus.PAUSED:
        workflow.status = WorkflowStatus.PAUSED
        workflow.save(update_fields=["status", "updated_at"])
        workflow_periodic_task_sync(workflow)
        _usage_changed()
    runs = WorkflowRun.objects.filter(workflow=workflow, status__in=OPEN_RUN_STATUSES)
    return _runs_close(runs, status=RunStatus.CANCELLED, outcome="cancelled with the workflow")


# Runs -------------------------------------------------------------------------------------------


def _run_locked(workspace: Workspace, run: WorkflowRun) -> WorkflowRun:
    locked = WorkflowRun.objects.select_for_update().filter(workspace=workspace, pk=run.pk).first()
    if locked is None:
        raise NotFound("No such workflow run.")
    return locked


@transaction.atomic
def workflow_run_pause(*, workspace: Workspace, run: WorkflowRun) -> WorkflowRun:
    """Hold one run where it is: the tick and incoming events leave it alone until it is resumed."""
    run = _run_locked(workspace, run)
    if run.status == RunStatus.PAUSED:
        return run
    if run.status != RunStatus.ACTIVE:
        raise Conflict(f"The run is {run.status}.", code="run_state")
    run.status = RunStatus.PAUSED
    run.save(update_fields=["status", "updated_at"])
    return run


@transaction.atomic
def workflow_run_resume(*, workspace: Workspace, run: WorkflowRun) -> WorkflowRun:
    """Let a paused run go on: a wait that ended while it was paused is taken at the next tick."""
    run = _run_locked(workspace, run)
    if run.status == RunStatus.ACTIVE:
        return run
    if run.status != RunStatus.PAUSED:
        raise Conflict(f"The run is {run.status}.", code="run_state")
    run.status = RunStatus.ACTIVE
    run.save(update_fields=["status", "updated_at"])
    return run


@transaction.atomic
def workflow_run_cancel(*, workspace: Workspace, run: WorkflowRun) -> WorkflowRun:
    """End an open run for good; a finished run answers 409."""
    run = _run_locked(workspace, run)
    if run.status == RunStatus.CANCELLED:
        return run
    if run.status not in OPEN_RUN_STATUSES:
        raise Conflict(f"The run is {run.status}.", code="run_state")
    _runs_close(WorkflowRun.objects.filter(pk=run.pk), status=RunStatus.CANCELLED, outcome="cancelled")
    run.refresh_from_db()
    return run
