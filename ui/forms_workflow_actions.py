"""Workflow editor: one form per action (its kind and that kind's inputs), the rows of a POST, and where a
service error goes: the service names the bad part by its path (`actions[2].tag`) and
`workflow_errors_place` puts that message beside the field or the action it names."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms

from accounts.models import Workspace
from automation.models import TriggerType, WebhookEndpoint
from automation.services import DURATION_UNITS, MAX_ACTION_NODES, PROFILE_FIELDS
from core.errors import ApplicationError
from sequences.models import Sequence, Template
from subscribers.models import MailingList
from ui.forms_workflows import (
    EXAMPLE_RULES,
    JSON_WIDGET,
    TRIGGER_ALIASES,
    JsonField,
    WorkflowForm,
    json_literal,
    json_text,
)

ACTION_KINDS = [
    ("send_email", "Send an email"),
    ("enroll", "Enroll in a sequence"),
    ("exit_sequence", "Exit a sequence"),
    ("add_tag", "Add a tag"),
    ("remove_tag", "Remove a tag"),
    ("subscribe_list", "Subscribe to a list"),
    ("unsubscribe_list", "Unsubscribe from a list"),
    ("update_field", "Set a field"),
    ("wait", "Wait"),
    ("wait_for_event", "Wait for an event"),
    ("branch", "Condition (branch)"),
    ("webhook", "Call a webhook"),
    ("notify", "Notify the team"),
    ("goal", "Goal reached (ends the run)"),
]
ACTION_LABELS = dict(ACTION_KINDS)
# Which action kinds use which form field (one input per field and row, shown for these kinds).
ACTION_FIELD_KINDS: dict[str, tuple[str, ...]] = {
    "sequence": ("enroll", "exit_sequence"),
    "template": ("send_email",),
    "tag": ("add_tag", "remove_tag"),
    "mailing_list": ("subscribe_list", "unsubscribe_list"),
    "field": ("update_field",),
    "value": ("update_field",),
    "value_literal": ("update_field",),
    "event": ("wait_for_event",),
    "match_key": ("wait_for_event",),
    "duration_value": ("wait", "wait_for_event"),
    "duration_unit": ("wait", "wait_for_event"),
    "until_time": ("wait",),
    "rules": ("branch",),
    "then": ("branch",),
    "otherwise": ("branch",),
    "on_event": ("wait_for_event",),
    "on_timeout": ("wait_for_event",),
    "endpoint": ("webhook",),
    "to": ("notify",),
    "subject": ("notify",),
    "body": ("notify",),
    "goal_name": ("goal",),
}
# The service's keys inside one action -> form fields.
ACTION_ALIASES = {
    "type": "type", "sequence_id": "sequence", "template_id": "template", "tag": "tag", "list_id": "mailing_list",
    "field": "field", "value": "value", "event": "event", "match_key": "match_key", "duration": "duration_value",
    "timeout": "duration_value", "until_time": "until_time", "rules": "rules", "then": "then", "else": "otherwise",
    "on_event": "on_event", "on_timeout": "on_timeout", "endpoint_id": "endpoint", "to": "to", "subject": "subject",
    "body": "body", "name": "goal_name",
}  # fmt: skip
REQUIRED_CHOICES = {
    "sequence": "a sequence",
    "template": "a template",
    "mailing_list": "a list",
    "endpoint": "an endpoint",
}
NESTED = "A list of actions as JSON (the same shapes as the JSON editor)."


class ActionForm(forms.Form):
    type = forms.ChoiceField(choices=ACTION_KINDS, label="Action", widget=forms.Select(attrs={"data-kind-switch": ""}))
    # Plain choices filled from ActionChoices: one query per kind for the whole page, not one per row.
    sequence = forms.TypedChoiceField(coerce=int, empty_value=None, required=False, label="Sequence")
    template = forms.TypedChoiceField(coerce=int, empty_value=None, required=False, label="Template")
    tag = forms.CharField(required=False, max_length=100, label="Tag")
    mailing_list = forms.TypedChoiceField(coerce=int, empty_value=None, required=False, label="List")
    field = forms.CharField(
        required=False, max_length=64, label="Field", help_text=f"A custom field key or {', '.join(PROFILE_FIELDS)}."
    )
    value = forms.CharField(
        required=False, max_length=2000, strip=False, label="Value", help_text="Merge tags allowed."
    )
    value_literal = forms.BooleanField(required=False, label="Value is a number, true/false or null")
    event = forms.CharField(required=False, max_length=100, label="Event name")
    match_key = forms.CharField(
        required=False, max_length=100, label="Match property (optional)",
        help_text="The awaited event must carry the trigger's value of this property.",
    )  # fmt: skip
    duration_value = forms.IntegerField(required=False, min_value=1, label="Wait for (or time out after)")
    duration_unit = forms.ChoiceField(
        choices=[(u, u) for u in DURATION_UNITS], required=False, initial="days", label="Unit"
    )
    until_time = forms.CharField(required=False, max_length=5, label="Or until (HH:MM, subscriber's time)")
    rules = JsonField(label="Condition (segment rules as JSON)", help_text=f"Example: {EXAMPLE_RULES}")
    then = JsonField(empty=list, label="Then (actions as JSON)", help_text=NESTED)
    otherwise = JsonField(empty=list, label="Else (actions as JSON)", help_text=NESTED)
    on_event = JsonField(empty=list, label="When the event arrives (actions as JSON)", help_text=NESTED)
    on_timeout = JsonField(empty=list, label="On timeout (actions as JSON)", help_text=NESTED)
    endpoint = forms.TypedChoiceField(coerce=int, empty_value=None, required=False, label="Webhook endpoint")
    to = forms.CharField(required=False, max_length=2000, label="To (comma-separated, optional)",
                         help_text="Empty: the workspace's owners and admins.")  # fmt: skip
    subject = forms.CharField(required=False, max_length=200, label="Subject")
    body = forms.CharField(required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 3}), label="Body")
    goal_name = forms.CharField(required=False, max_length=100, label="Goal name")

    def __init__(self, *args: Any, choices: dict[str, list[tuple[Any, str]]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, options in choices.items():
            self.fields[name].choices = options  # type: ignore[attr-defined]

    def kind(self) -> str:
        return str(self["type"].value() or "")

    def kind_label(self) -> str:
        return ACTION_LABELS.get(self.kind(), self.kind())

    def kind_fields(self) -> list[dict[str, Any]]:
        kind = self.kind()
        return [
            {"field": self[name], "kinds": " ".join(kinds), "shown": kind in kinds}
            for name, kinds in ACTION_FIELD_KINDS.items()
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name, what in REQUIRED_CHOICES.items():
            if data.get("type") in ACTION_FIELD_KINDS[name] and name in data and data[name] is None:
                self.add_error(name, f"Choose {what}.")
        return data

    def node(self) -> dict[str, Any]:
        """The action as the service takes it (the service checks it and names what is wrong)."""
        data, kind = self.cleaned_data, self.cleaned_data["type"]
        if kind in ("enroll", "exit_sequence"):
            return {"type": kind, "sequence_id": data["sequence"]}
        if kind == "send_email":
            return {"type": kind, "template_id": data["template"]}
        if kind in ("add_tag", "remove_tag"):
            return {"type": kind, "tag": data["tag"]}
        if kind in ("subscribe_list", "unsubscribe_list"):
            return {"type": kind, "list_id": data["mailing_list"]}
        if kind == "update_field":
            return {"type": kind, "field": data["field"], "value": self._value()}
        duration = {"value": data["duration_value"], "unit": data["duration_unit"]}
        if kind == "wait":
            until = data["until_time"].strip()
            return {"type": kind, "until_time": until} if until else {"type": kind, "duration": duration}
        if kind == "wait_for_event":
            node: dict[str, Any] = {"type": kind, "event": data["event"]}
            if data["match_key"]:
                node["match_key"] = data["match_key"]
            node.update(timeout=duration, on_event=data["on_event"], on_timeout=data["on_timeout"])
            return node
        if kind == "branch":
            return {"type": kind, "rules": data["rules"], "then": data["then"], "else": data["otherwise"]}
        if kind == "webhook":
            return {"type": kind, "endpoint_id": data["endpoint"]}
        if kind == "notify":
            node = {"type": kind, "subject": data["subject"], "body": data["body"]}
            recipients = [email.strip() for email in data["to"].split(",") if email.strip()]
            return {**node, "to": recipients} if recipients else node
        return {"type": kind, "name": data["goal_name"]}

    def _value(self) -> Any:
        text = self.cleaned_data["value"]
        # Not a literal after all: the service stores the text (and the field's type coerces it).
        return json_literal(text) if self.cleaned_data["value_literal"] else text

    @staticmethod
    def row_of(node: Any) -> dict[str, Any]:
        """The form values (as text) of one stored action: the inverse of node()."""
        if not isinstance(node, dict):
            return {"type": ""}
        row: dict[str, Any] = {"type": node.get("type", "")}
        for key, name in (("sequence_id", "sequence"), ("template_id", "template"), ("list_id", "mailing_list"),
                          ("endpoint_id", "endpoint"), ("tag", "tag"), ("field", "field"), ("event", "event"),
                          ("match_key", "match_key"), ("until_time", "until_time"), ("subject", "subject"),
                          ("body", "body")):  # fmt: skip
            if key in node:
                row[name] = node[key]
        if "value" in node:
            literal = not isinstance(node["value"], str)
            row.update(value=json.dumps(node["value"]) if literal else node["value"], value_literal=literal)
        duration = node.get("duration") or node.get("timeout")
        if isinstance(duration, dict):
            row.update(duration_value=duration.get("value"), duration_unit=duration.get("unit", "days"))
        for key, name in (("rules", "rules"), ("then", "then"), ("else", "otherwise"), ("on_event", "on_event"),
                          ("on_timeout", "on_timeout")):  # fmt: skip
            if key in node:
                row[name] = json_text(node[key])
        if node.get("type") == "notify":
            row["to"] = ", ".join(node.get("to") or [])
        if node.get("type") == "goal":
            row["goal_name"] = node.get("name", "")
        return row


class ActionsJsonForm(forms.Form):
    actions = JsonField(
        empty=list, label="Actions (JSON)", widget=forms.Textarea(attrs={**JSON_WIDGET, "rows": 24}),
        help_text="A list of actions with their branches; the shapes are in docs/automation.md.",
    )  # fmt: skip


# Action rows in a POST ----------------------------------------------------------------------------


def action_count(data: Any) -> int:
    """How many action rows the editor posted (bounded: a workflow has at most MAX_ACTION_NODES)."""
    try:
        return max(0, min(int(data.get("action_count", 0)), MAX_ACTION_NODES))
    except (TypeError, ValueError):
        return 0


def action_rows_posted(data: Any) -> list[dict[str, Any]]:
    """Each posted row's raw values, keyed by field name (so rows can be moved and renumbered)."""
    return [
        {name: data.get(f"a{index}-{name}", "") for name in ActionForm.base_fields}
        for index in range(action_count(data))
    ]


def action_choices(*, workspace: Workspace) -> dict[str, list[tuple[Any, str]]]:
    """The workspace's sequences, templates, lists and webhook endpoints: another workspace's id is an
    invalid choice, refused on the field."""

    def options(queryset: Any, label: str) -> list[tuple[Any, str]]:
        return [("", "Choose"), *((pk, text) for pk, text in queryset.values_list("pk", label))]

    return {
        "sequence": options(Sequence.objects.filter(workspace=workspace).order_by("name"), "name"),
        "template": options(Template.objects.filter(workspace=workspace).order_by("name"), "name"),
        "mailing_list": options(MailingList.objects.filter(workspace=workspace).order_by("name"), "name"),
        "endpoint": options(WebhookEndpoint.objects.filter(workspace=workspace).order_by("id"), "url"),
    }


def action_forms(rows: list[dict[str, Any]], *, workspace: Workspace, bound: bool) -> list[ActionForm]:
    """One form per row, prefixed by its position; bound ones validate, unbound ones only show the values."""
    choices = action_choices(workspace=workspace)
    forms_: list[ActionForm] = []
    for index, row in enumerate(rows):
        prefix = f"a{index}"
        if bound:
            data = {f"{prefix}-{name}": value for name, value in row.items() if value not in (None, False)}
            forms_.append(ActionForm(data, choices=choices, prefix=prefix))
        else:
            forms_.append(ActionForm(initial=row, choices=choices, prefix=prefix))
    return forms_


# Service errors -> fields ------------------------------------------------------------------------

ACTION_PATH_RE = re.compile(r"^actions\[(\d+)\](.*)$")
FIRST_KEY_RE = re.compile(r"^\.?([A-Za-z_]+)")


def _with_path(path: str, exact: str, message: str) -> str:
    return message if path == exact else f"{path}: {message}"


def _place_action(rows: list[ActionForm], path: str, message: str) -> bool:
    match = ACTION_PATH_RE.match(path)
    if match is None or int(match.group(1)) >= len(rows):
        return False
    row, rest = rows[int(match.group(1))], match.group(2)
    key = FIRST_KEY_RE.match(rest)
    name = ACTION_ALIASES.get(key.group(1)) if key else None
    if name == "duration_value" and rest.endswith(".unit"):
        name = "duration_unit"
    if name is None:
        row.add_error(None, _with_path(path, f"actions[{match.group(1)}]", message))
        return True
    exact = f"actions[{match.group(1)}].{key.group(1) if key else ''}"
    exact_ends = (exact, f"{exact}.value", f"{exact}.unit")
    row.add_error(name, message if path in exact_ends else f"{path}: {message}")
    return True


def workflow_errors_place(form: WorkflowForm, rows: list[ActionForm], error: ApplicationError) -> None:
    """Put each message of a service error beside what it names: an action's field (actions[2].tag), the
    action itself, a trigger or workflow field; a nested path (actions[1].then[0].tag) keeps its path."""
    details = error.details if isinstance(error.details, dict) else {}
    if not details:
        field = "name" if getattr(error, "code", None) == "workflow_exists" else None
        form.add_error(field, error.message)
        return
    kind = form.cleaned_data.get("trigger_type", "") if hasattr(form, "cleaned_data") else ""
    for path, messages in details.items():
        for message in messages if isinstance(messages, list) else [messages]:
            text = str(message)
            if _place_action(rows, path, text):
                continue
            head = FIRST_KEY_RE.match(path)
            root = head.group(1) if head else ""
            if root == "trigger_config":
                key = path.removeprefix("trigger_config.").split(".")[0].split("[")[0]
                name = TRIGGER_ALIASES.get(key)
                if key == "field":
                    name = "date_field" if kind == TriggerType.DATE else "changed_field"
                exact = f"trigger_config.{key}"
                form.add_error(name or "trigger_type", text if path == exact and name else f"{path}: {text}")
            elif root in form.fields:
                form.add_error(root, _with_path(path, root, text))
            else:
                form.add_error(None, f"{path}: {text}")
