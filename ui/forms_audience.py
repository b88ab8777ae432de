"""Forms for lists, tags, custom fields and subscriber profiles: they shape input, the services validate it."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import Workspace
from subscribers.models import FieldDefinition, FieldType, MailingList, Subscriber

ATTRIBUTE_PREFIX = "attr_"
MAX_TAGS_INPUT = 1000
BOOLEAN_CHOICES = [("", "(not set)"), ("true", "Yes"), ("false", "No")]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class MailingListForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))
    double_opt_in = forms.BooleanField(
        required=False, label="Double opt-in", help_text="New members stay pending until they confirm."
    )


class TagForm(forms.Form):
    name = forms.CharField(max_length=100, label="Tag name")


class FieldCreateForm(forms.Form):
    key = forms.CharField(max_length=64, help_text="Lower-case letters, digits and _ (e.g. plan); fixed once created.")
    label = forms.CharField(max_length=100, required=False, help_text="Shown on profiles; defaults from the key.")
    type = forms.ChoiceField(choices=FieldType.choices, initial=FieldType.TEXT)
    choices = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="Choice fields only: one per line."
    )

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {"key": data["key"], "label": data["label"], "type": data["type"], "choices": _lines(data["choices"])}


class FieldUpdateForm(forms.Form):
    label = forms.CharField(max_length=100)
    choices = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}), help_text="One per line.")

    def __init__(self, *args: Any, definition: FieldDefinition, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.definition = definition
        if definition.type != FieldType.CHOICE:
            del self.fields["choices"]  # key and type are fixed; only choice fields have choices

    def service_fields(self) -> dict[str, Any]:
        changes: dict[str, Any] = {"label": self.cleaned_data["label"]}
        if "choices" in self.fields:
            changes["choices"] = _lines(self.cleaned_data["choices"])
        return changes

    @staticmethod
    def initial_of(definition: FieldDefinition) -> dict[str, Any]:
        return {"label": definition.label, "choices": "\n".join(str(c) for c in definition.choices or [])}


# Custom field values: one typed input per definition -------------------------------------------


def _attribute_field(definition: FieldDefinition, shown: str) -> forms.Field:
    """A form field for one definition, showing `shown` (the stored value as text). Values stay strings:
    the service coerces and checks them."""
    label, kind = definition.label or definition.key, definition.type
    if kind in (FieldType.BOOLEAN, FieldType.CHOICE):
        # Three states for booleans (a checkbox could not say "not set"). A stored value that is no longer
        # allowed stays offered, marked: a select without it would silently clear it on the next save.
        options = BOOLEAN_CHOICES if kind == FieldType.BOOLEAN else [("", "(not set)")]
        if kind == FieldType.CHOICE:
            options = [*options, *((str(c), str(c)) for c in definition.choices or [])]
        if shown and shown not in dict(options):
            options = [*options, (shown, f"{shown} (no longer allowed)")]
        # A Select on a CharField, not a ChoiceField: the service decides what is allowed, on this field.
        return forms.CharField(required=False, label=label, widget=forms.Select(choices=options))
    widgets: dict[str, forms.Widget] = {
        FieldType.NUMBER: forms.NumberInput(attrs={"step": "any"}),
        FieldType.DATE: forms.DateInput(attrs={"type": "date"}),
        FieldType.DATETIME: forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
    }
    help_text = "UTC" if kind == FieldType.DATETIME else ""
    return forms.CharField(required=False, label=label, widget=widgets.get(kind), help_text=help_text)


def attribute_initial(definition: FieldDefinition, value: Any) -> str:
    """A stored value as its input shows it (the reverse of the service's coercion)."""
    if value is None:
        return ""
    if definition.type == FieldType.BOOLEAN:
        return "true" if value is True else "false" if value is False else str(value)
    if definition.type == FieldType.DATETIME and isinstance(value, str):
        return value[:19]  # 2026-01-31T09:30:00+00:00 -> what datetime-local accepts (stored in UTC)
    return str(value)


class AttributesMixin(forms.Form):
    """Adds `attr_<key>` fields for the workspace's custom fields; `attribute_changes` sends only what changed."""

    def add_attribute_fields(self, definitions: list[FieldDefinition], current: dict[str, Any]) -> None:
        self.definitions = definitions
        self.current_attributes = current
        for definition in definitions:
            name = ATTRIBUTE_PREFIX + definition.key
            shown = attribute_initial(definition, current.get(definition.key))
            self.fields[name] = _attribute_field(definition, shown)
            self.initial.setdefault(name, shown)

    def attribute_fields(self) -> list[forms.BoundField]:
        return [self[ATTRIBUTE_PREFIX + d.key] for d in self.definitions]

    def attribute_aliases(self) -> dict[str, str]:
        """The service names attributes.KEY; the form calls that field attr_KEY."""
        return {f"attributes.{d.key}": ATTRIBUTE_PREFIX + d.key for d in self.definitions}

    def attribute_changes(self) -> dict[str, Any]:
        """Changed values only (an emptied one is None: the service removes it). Unchanged values are not
        sent again, so a value that a changed definition no longer allows does not block other edits."""
        changes: dict[str, Any] = {}
        for definition in self.definitions:
            submitted = (self.cleaned_data.get(ATTRIBUTE_PREFIX + definition.key) or "").strip()
            before = attribute_initial(definition, self.current_attributes.get(definition.key))
            if submitted != before:
                changes[definition.key] = submitted or None
        return changes


class ProfileForm(AttributesMixin):
    email = forms.CharField(max_length=320)
    first_name = forms.CharField(max_length=100, required=False)
    last_name = forms.CharField(max_length=100, required=False)
    time_zone = forms.CharField(
        max_length=64, required=False, help_text="An IANA zone such as Europe/Paris; empty uses the workspace's."
    )
    locale = forms.CharField(max_length=16, required=False, help_text="e.g. en or pt-BR.")

    PROFILE_FIELDS = ("email", "first_name", "last_name", "time_zone", "locale")

    def __init__(self, *args: Any, definitions: list[FieldDefinition], subscriber: Subscriber, **kwargs: Any):
        kwargs.setdefault("initial", {name: getattr(subscriber, name) for name in self.PROFILE_FIELDS})
        super().__init__(*args, **kwargs)
        current = subscriber.attributes if isinstance(subscriber.attributes, dict) else {}
        self.add_attribute_fields(definitions, current)

    def profile_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.PROFILE_FIELDS]

    def service_changes(self) -> dict[str, Any]:
        changes: dict[str, Any] = {name: self.cleaned_data[name] for name in self.PROFILE_FIELDS}
        attributes = self.attribute_changes()
        if attributes:
            changes["attributes"] = attributes
        return changes


def _list_label(mailing_list: MailingList) -> str:
    return f"{mailing_list.name} (double opt-in)" if mailing_list.double_opt_in else mailing_list.name


class SubscriberCreateForm(AttributesMixin):
    email = forms.CharField(max_length=320)
    first_name = forms.CharField(max_length=100, required=False)
    last_name = forms.CharField(max_length=100, required=False)
    lists = forms.ModelMultipleChoiceField(
        queryset=MailingList.objects.none(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="On a double opt-in list the subscriber stays pending until they confirm.",
    )  # fmt: skip
    tags = forms.CharField(
        required=False, max_length=MAX_TAGS_INPUT, help_text="Comma-separated; new tags are created."
    )

    def __init__(self, *args: Any, workspace: Workspace, definitions: list[FieldDefinition], **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Only this workspace's lists: another workspace's id is an invalid choice, named on the field.
        self.fields["lists"].queryset = MailingList.objects.filter(workspace=workspace).order_by("name")  # type: ignore[attr-defined]
        self.fields["lists"].label_from_instance = _list_label  # type: ignore[attr-defined]
        self.add_attribute_fields(definitions, {})

    def tag_names(self) -> list[str]:
        return [name.strip() for name in self.cleaned_data["tags"].split(",") if name.strip()]

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "email": data["email"], "first_name": data["first_name"], "last_name": data["last_name"],
            "attributes": self.attribute_changes(), "mailing_lists": list(data["lists"]),
            "tag_names": self.tag_names(),
        }  # fmt: skip

    def aliases(self) -> dict[str, str]:
        # tag_names_clean names tags[i]; the form has one comma-separated input
        return {**self.attribute_aliases(), **{f"tags[{i}]": "tags" for i in range(MAX_TAGS_INPUT)}}


class ListAddForm(forms.Form):
    mailing_list = forms.ModelChoiceField(queryset=MailingList.objects.none(), label="Add to list", empty_label=None)

    def __init__(self, *args: Any, workspace: Workspace, offered_without: Any = (), **kwargs: Any) -> None:
        """`offered_without`: list ids left out of the choices shown (those the subscriber is already on)."""
        super().__init__(*args, **kwargs)
        lists = MailingList.objects.filter(workspace=workspace).exclude(pk__in=list(offered_without))
        self.fields["mailing_list"].queryset = lists.order_by("name")  # type: ignore[attr-defined]


class TagAddForm(forms.Form):
    tags = forms.CharField(max_length=MAX_TAGS_INPUT, label="Add tags", help_text="Comma-separated.")

    def tag_names(self) -> list[str]:
        return [name.strip() for name in self.cleaned_data["tags"].split(",") if name.strip()]

    @staticmethod
    def aliases() -> dict[str, str]:
        return {f"tags[{i}]": "tags" for i in range(MAX_TAGS_INPUT)}


class UnsubscribeForm(forms.Form):
    reason = forms.CharField(max_length=255, required=False, label="Reason (optional)")
