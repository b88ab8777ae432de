"""Workflow editor forms, the workflow's own fields and its trigger: they only shape input into the JSON
that `automation.services` validates (the actions' forms are in ui/forms_workflow_actions.py)."""

from __future__ import annotations

import json
import math
from typing import Any

from django import forms
from django.db.models import Model

from accounts.models import Workspace
from automation.models import ReEntry, TriggerType, Workflow
from subscribers.models import FieldDefinition, FieldType, MailingList, Segment

EXAMPLE_RULES = '{"all": [{"status": "active"}, {"attribute": "plan", "op": "eq", "value": "pro"}]}'
JSON_WIDGET = {"rows": 4, "spellcheck": "false", "class": "code"}


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # 1e999: PostgreSQL's jsonb has no Infinity, so refuse it here, not with a 500
        raise ValueError(f"{text} is too large a number")
    return number


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_parse(text: str) -> Any:
    """json.loads that raises ValueError for anything PostgreSQL's jsonb cannot store or Python cannot nest."""
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def json_literal(text: str) -> Any:
    """A JSON literal typed in a text input; text that is none stays text."""
    try:
        return json_parse(text)
    except ValueError:
        return text


class JsonField(forms.CharField):
    """A textarea holding JSON; cleans to the parsed value (`empty` when left blank)."""

    def __init__(self, *, empty: Any = None, **kwargs: Any) -> None:
        self.empty = empty
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs=JSON_WIDGET))
        super().__init__(strip=True, **kwargs)

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if not text:
            return self.empty() if callable(self.empty) else self.empty
        try:
            return json_parse(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from None


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def pk_of(value: Model | None) -> int | None:
    return value.pk if value is not None else None


# Trigger and workflow fields ---------------------------------------------------------------------

# Which trigger types use which form field (the editor shows only those of the chosen type).
TRIGGER_FIELD_KINDS: dict[str, tuple[str, ...]] = {
    "event_name": (TriggerType.EVENT, TriggerType.WEBHOOK),
    "event_properties": (TriggerType.EVENT,),
    "trigger_list": (TriggerType.LIST_SUBSCRIBED, TriggerType.UNSUBSCRIBED),
    "trigger_tag": (TriggerType.TAG_ADDED, TriggerType.TAG_REMOVED),
    "changed_field": (TriggerType.FIELD_CHANGED,),
    "changed_from": (TriggerType.FIELD_CHANGED,),
    "changed_to": (TriggerType.FIELD_CHANGED,),
    "changed_literal": (TriggerType.FIELD_CHANGED,),
    "date_field": (TriggerType.DATE,),
    "offset_days": (TriggerType.DATE,),
    "anniversary": (TriggerType.DATE,),
    "at_hour": (TriggerType.DATE,),
    "segment": (TriggerType.SEGMENT_ENTERED, TriggerType.SEGMENT_LEFT),
    "cron": (TriggerType.CRON,),
    "cron_timezone": (TriggerType.CRON,),
}
# The service's trigger_config keys -> form fields (`field` depends on the type: see workflow_errors_place).
TRIGGER_ALIASES = {
    "name": "event_name", "properties": "event_properties", "list_id": "trigger_list", "tag": "trigger_tag",
    "from": "changed_from", "to": "changed_to", "offset_days": "offset_days", "anniversary": "anniversary",
    "at_hour": "at_hour", "segment_id": "segment", "cron": "cron", "timezone": "cron_timezone",
}  # fmt: skip


class WorkflowForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))
    trigger_type = forms.ChoiceField(
        choices=TriggerType.choices, label="Trigger", widget=forms.Select(attrs={"data-kind-switch": ""})
    )
    event_name = forms.CharField(required=False, max_length=100, label="Event name", help_text="e.g. order_placed")
    event_properties = JsonField(
        empty=dict, label="Only when its properties match (JSON, optional)", help_text='e.g. {"plan": "pro"}'
    )
    trigger_list = forms.ModelChoiceField(
        queryset=MailingList.objects.none(), required=False, empty_label="Any list", label="List"
    )
    trigger_tag = forms.CharField(required=False, max_length=100, label="Tag")
    changed_field = forms.CharField(required=False, max_length=64, label="Field", help_text="A field key, e.g. plan")
    changed_from = forms.CharField(required=False, label="From value (optional)")
    changed_to = forms.CharField(required=False, label="To value (optional)")
    # The matcher compares values exactly (5 is not "5"): say when they are JSON literals.
    changed_literal = forms.BooleanField(required=False, label='Values are JSON (a number, true/false, null, "text")')
    date_field = forms.ChoiceField(choices=[], required=False, label="Date field")
    offset_days = forms.IntegerField(
        required=False, initial=0, label="Days after the date", help_text="Negative: days before (e.g. -3)."
    )
    anniversary = forms.BooleanField(required=False, label="Every year (anniversary)")
    at_hour = forms.IntegerField(required=False, initial=9, label="At hour (subscriber's time)")
    segment = forms.ModelChoiceField(queryset=Segment.objects.none(), required=False, label="Segment")
    cron = forms.CharField(
        required=False, max_length=100, label="Schedule (cron)", help_text="m h dom mon dow, e.g. 30 9 * * 1-5"
    )
    cron_timezone = forms.CharField(required=False, max_length=64, initial="UTC", label="Schedule time zone")
    re_entry = forms.ChoiceField(choices=ReEntry.choices, initial=ReEntry.ONCE, label="Re-entry")
    dedupe_property = forms.CharField(
        required=False, max_length=100, label="Dedupe property (optional)",
        help_text="A trigger property (e.g. order_id) that makes a run unique.",
    )  # fmt: skip

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trigger_list"].queryset = MailingList.objects.filter(workspace=workspace).order_by("name")  # type: ignore[attr-defined]
        self.fields["segment"].queryset = Segment.objects.filter(workspace=workspace).order_by("name")  # type: ignore[attr-defined]
        date_fields = FieldDefinition.objects.filter(workspace=workspace, type__in=[FieldType.DATE, FieldType.DATETIME])
        self.fields["date_field"].choices = [  # type: ignore[attr-defined]
            ("", "Choose a field"),
            *((f.key, f.key) for f in date_fields.order_by("key")),
        ]  # type: ignore[attr-defined]

    def trigger_kind(self) -> str:
        return str(self["trigger_type"].value() or "")

    def trigger_fields(self) -> list[dict[str, Any]]:
        """The trigger's config fields with the types they belong to, for the template's show/hide."""
        kind = self.trigger_kind()
        return [
            {"field": self[name], "kinds": " ".join(kinds), "shown": kind in kinds}
            for name, kinds in TRIGGER_FIELD_KINDS.items()
        ]

    def trigger_config(self) -> dict[str, Any]:
        data, kind = self.cleaned_data, self.cleaned_data["trigger_type"]
        if kind == TriggerType.EVENT:
            return {"name": data["event_name"], "properties": data["event_properties"]}
        if kind in (TriggerType.LIST_SUBSCRIBED, TriggerType.UNSUBSCRIBED):
            return {"list_id": pk_of(data["trigger_list"])}
        if kind in (TriggerType.TAG_ADDED, TriggerType.TAG_REMOVED):
            return {"tag": data["trigger_tag"]}
        if kind == TriggerType.FIELD_CHANGED:
            config: dict[str, Any] = {"field": data["changed_field"]}
            for key in ("from", "to"):
                text = data[f"changed_{key}"]
                if text != "":
                    config[key] = json_literal(text) if data["changed_literal"] else text
            return config
        if kind == TriggerType.DATE:
            return {
                "field": data["date_field"], "offset_days": data["offset_days"] or 0,
                "anniversary": data["anniversary"], "at_hour": 9 if data["at_hour"] is None else data["at_hour"],
            }  # fmt: skip
        if kind in (TriggerType.SEGMENT_ENTERED, TriggerType.SEGMENT_LEFT):
            return {"segment_id": pk_of(data["segment"])}
        if kind == TriggerType.CRON:
            return {"cron": data["cron"], "timezone": data["cron_timezone"] or "UTC"}
        if kind == TriggerType.WEBHOOK and data["event_name"]:
            return {"event_name": data["event_name"]}
        return {}

    def service_fields(self) -> dict[str, Any]:
        """Every field but the entry rules, which are the segment builder's rows (ui.workflow_entry)."""
        data = self.cleaned_data
        return {
            "name": data["name"], "description": data["description"], "trigger_type": data["trigger_type"],
            "trigger_config": self.trigger_config(), "re_entry": data["re_entry"],
            "dedupe_property": data["dedupe_property"],
        }  # fmt: skip

    @staticmethod
    def initial_of(workflow: Workflow) -> dict[str, Any]:
        config = workflow.trigger_config or {}
        kind = workflow.trigger_type
        initial: dict[str, Any] = {
            "name": workflow.name, "description": workflow.description, "trigger_type": kind,
            "re_entry": workflow.re_entry, "dedupe_property": workflow.dedupe_property,
        }  # fmt: skip
        if kind == TriggerType.EVENT:
            initial.update(event_name=config.get("name", ""), event_properties=json_text(config["properties"])
                           if config.get("properties") else "")  # fmt: skip
        elif kind in (TriggerType.LIST_SUBSCRIBED, TriggerType.UNSUBSCRIBED):
            initial["trigger_list"] = config.get("list_id")
        elif kind in (TriggerType.TAG_ADDED, TriggerType.TAG_REMOVED):
            initial["trigger_tag"] = config.get("tag", "")
        elif kind == TriggerType.FIELD_CHANGED:
            values = {key: config[key] for key in ("from", "to") if key in config}
            literal = any(not isinstance(value, str) for value in values.values())
            initial.update(changed_field=config.get("field", ""), changed_literal=literal)
            for key, value in values.items():
                initial[f"changed_{key}"] = json.dumps(value) if literal else value
        elif kind == TriggerType.DATE:
            initial.update(date_field=config.get("field", ""), offset_days=config.get("offset_days", 0),
                           anniversary=config.get("anniversary", False), at_hour=config.get("at_hour", 9))  # fmt: skip
        elif kind in (TriggerType.SEGMENT_ENTERED, TriggerType.SEGMENT_LEFT):
            initial["segment"] = config.get("segment_id")
        elif kind == TriggerType.CRON:
            initial.update(cron=config.get("cron", ""), cron_timezone=config.get("timezone", "UTC"))
        elif kind == TriggerType.WEBHOOK:
            initial["event_name"] = config.get("event_name", "")
        return initial
