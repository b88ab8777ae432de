"""The campaign compose form: it only shapes input for sequences.campaigns, which does the validation."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.utils import timezone

from accounts.models import Workspace
from sequences.models import Campaign, Template
from subscribers.models import MailingList, Segment, Tag

# The service's argument names are the form's field names, so its errors land on the right field;
# only the template is passed as an id.
CAMPAIGN_ALIASES = {"template_id": "template"}
AUDIENCE_FIELDS = ("lists", "tags", "segment_ids", "exclude_lists", "exclude_tags", "exclude_segment_ids")
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


def workspace_zone(workspace: Workspace) -> ZoneInfo:
    try:
        return ZoneInfo(workspace.time_zone)
    except (ZoneInfoNotFoundError, ValueError):  # the settings form validates it; an old row may not be
        return ZoneInfo("UTC")


def _choices(model: type[MailingList] | type[Tag] | type[Segment], label: str) -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=model.objects.none(), required=False, widget=forms.CheckboxSelectMultiple, label=label
    )


class AudienceForm(forms.Form):
    """Lists, tags and saved segments to send to, and those to leave out (the workspace's only)."""

    lists = _choices(MailingList, "Lists")
    tags = _choices(Tag, "Tags")
    segment_ids = _choices(Segment, "Saved segments")
    exclude_lists = _choices(MailingList, "Leave out members of these lists")
    exclude_tags = _choices(Tag, "Leave out subscribers with these tags")
    exclude_segment_ids = _choices(Segment, "Leave out these saved segments")

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Another workspace's id is an invalid choice, named on its field.
        querysets = {
            "lists": MailingList.objects.filter(workspace=workspace).order_by("name"),
            "tags": Tag.objects.filter(workspace=workspace).order_by("name"),
            "segment_ids": Segment.objects.filter(workspace=workspace).order_by("name"),
        }
        for name in AUDIENCE_FIELDS:
            self.fields[name].queryset = querysets[name.removeprefix("exclude_")]  # type: ignore[attr-defined]

    def audience_ids(self) -> dict[str, list[int]]:
        return {name: [row.pk for row in self.cleaned_data[name]] for name in AUDIENCE_FIELDS}

    @staticmethod
    def initial_of(campaign: Campaign) -> dict[str, Any]:
        return {
            "lists": list(campaign.lists.all()), "tags": list(campaign.tags.all()),
            "segment_ids": list(campaign.segments.all()), "exclude_lists": list(campaign.exclude_lists.all()),
            "exclude_tags": list(campaign.exclude_tags.all()),
            "exclude_segment_ids": list(campaign.exclude_segments.all()),
        }  # fmt: skip


class CampaignForm(AudienceForm):
    # What the submit button asks for: save (a draft, or keep it scheduled), schedule at the time, or send now.
    SAVE, SCHEDULE, SEND = "save", "schedule", "send"

    name = forms.CharField(max_length=200)
    template = forms.ModelChoiceField(queryset=Template.objects.none(), empty_label="Pick a template")
    high_priority = forms.BooleanField(
        required=False, label="High priority", help_text="Sent even to subscribers who reached the frequency cap."
    )
    scheduled_at = forms.DateTimeField(
        required=False,
        label="Send at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
    )
    intent = forms.ChoiceField(choices=[(SAVE, SAVE), (SCHEDULE, SCHEDULE), (SEND, SEND)], required=False)

    field_order = ["name", "template", *AUDIENCE_FIELDS, "high_priority", "scheduled_at"]

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, workspace=workspace, **kwargs)
        self.zone = workspace_zone(workspace)
        self.fields["template"].queryset = Template.objects.filter(workspace=workspace).order_by("name")  # type: ignore[attr-defined]
        self.fields["scheduled_at"].help_text = f"In the workspace's time zone, {self.zone.key}."

    def full_clean(self) -> None:
        # The datetime-local value has no zone: it is read in the workspace's (a time that does not
        # exist there, in a DST gap, is a field error), and stored as an aware UTC time.
        with timezone.override(self.zone):
            super().full_clean()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        data["intent"] = data.get("intent") or self.SAVE  # Enter in a field: the first button, Save
        if data["intent"] == self.SCHEDULE and not data.get("scheduled_at") and "scheduled_at" not in self.errors:
            self.add_error("scheduled_at", "Pick a date and time to schedule the campaign.")
        return data

    def service_fields(self) -> dict[str, Any]:
        """Arguments for campaign_create / campaign_update (sending now keeps no time of its own)."""
        data = self.cleaned_data
        fields: dict[str, Any] = {
            "name": data["name"], "template_id": data["template"].pk, "high_priority": data["high_priority"],
            **self.audience_ids(),
        }  # fmt: skip
        if data["intent"] != self.SEND:
            fields["scheduled_at"] = data["scheduled_at"]
        return fields

    @classmethod
    def initial_of(cls, campaign: Campaign) -> dict[str, Any]:
        zone = workspace_zone(campaign.workspace)
        scheduled = campaign.scheduled_at.astimezone(zone).replace(tzinfo=None) if campaign.scheduled_at else None
        return {
            **AudienceForm.initial_of(campaign), "name": campaign.name, "template": campaign.template_id,
            "high_priority": campaign.high_priority, "scheduled_at": scheduled,
        }  # fmt: skip
