"""UI forms: they only shape input for the services, which do the real validation."""

from __future__ import annotations

import re

from django import forms

from accounts.models import ApiKeyScope, Workspace
from core.errors import ApplicationError
from subscribers.models import MailingList, MembershipStatus, Segment, SubscriberStatus, Tag

PATH_HEAD = re.compile(r"[^.\[]+")  # the field a service's error path starts with


def form_errors_add(form: forms.BaseForm, error: ApplicationError, *, aliases: dict[str, str] | None = None) -> None:
    """Put a service's error on the form field it names (`aliases` maps service names such as
    mailing_list_id to form fields), or on the form when it names none the form has. A path into a
    field (`choices[2]`, `actions[1].config.url`) goes on that field, prefixed with the path."""
    details = error.details if isinstance(error.details, dict) else {}
    placed = False
    for name, field_messages in details.items():
        field, prefix = (aliases or {}).get(name, name), ""
        if field not in form.fields:
            head = PATH_HEAD.match(name)
            if head and head.group(0) != name:
                field, prefix = (aliases or {}).get(head.group(0), head.group(0)), f"{name}: "
        if field in form.fields:
            for message in field_messages if isinstance(field_messages, list) else [field_messages]:
                form.add_error(field, f"{prefix}{message}")
            placed = True
    if not placed:
        form.add_error(None, error.message)


class SubscriberFilterForm(forms.Form):
    search = forms.CharField(required=False, max_length=200, label="Search email or name")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *SubscriberStatus.choices])
    list = forms.ModelChoiceField(queryset=MailingList.objects.none(), required=False, empty_label="Any list")
    list_status = forms.ChoiceField(
        required=False, choices=[("", "Any list state"), *MembershipStatus.choices], label="List state"
    )
    tag = forms.ModelChoiceField(queryset=Tag.objects.none(), required=False, empty_label="Any tag")
    segment = forms.ModelChoiceField(queryset=Segment.objects.none(), required=False, empty_label="No segment")

    def __init__(self, *args, workspace: Workspace, **kwargs):
        super().__init__(*args, **kwargs)
        # Choices come from the current workspace only: another workspace's id is an invalid choice.
        self.fields["list"].queryset = MailingList.objects.filter(workspace=workspace).order_by("name")  # type: ignore[attr-defined]
        self.fields["tag"].queryset = Tag.objects.filter(workspace=workspace).order_by("name")  # type: ignore[attr-defined]
        self.fields["segment"].queryset = Segment.objects.filter(workspace=workspace).order_by("name")  # type: ignore[attr-defined]


class ImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8, first row names the columns (one named email).")
    mailing_list = forms.ModelChoiceField(
        queryset=MailingList.objects.none(), required=False, empty_label="No list", label="Add to list"
    )
    tags = forms.CharField(required=False, max_length=500, help_text="Comma-separated tag names.")
    update_existing = forms.BooleanField(required=False, initial=True, label="Update existing subscribers")

    def __init__(self, *args, workspace: Workspace, **kwargs):
        super().__init__(*args, **kwargs)
        mailing_lists = MailingList.objects.filter(workspace=workspace).order_by("name")
        self.fields["mailing_list"].queryset = mailing_lists  # type: ignore[attr-defined]

    def tag_names(self) -> list[str]:
        return [name.strip() for name in self.cleaned_data["tags"].split(",") if name.strip()]


class WorkspaceSettingsForm(forms.ModelForm):
    class Meta:
        model = Workspace
        fields = [
            "name", "time_zone", "from_name", "from_email", "reply_to", "postal_address",
            "sending_rate_per_second", "quiet_hours_start", "quiet_hours_end", "frequency_cap_count",
            "frequency_cap_hours", "track_opens",
        ]  # fmt: skip
        widgets = {"postal_address": forms.Textarea(attrs={"rows": 2})}


class ApiKeyForm(forms.Form):
    prefix = "key"  # beside the workspace form on one page: its field ids must not collide (id_name)

    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=ApiKeyScope.choices, initial=ApiKeyScope.READ)
