"""Admin for templates, sequences (steps inline, state actions), campaigns, enrollments and the local outbox."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import escape, format_html

from core.errors import ApplicationError
from sequences import campaigns, services
from sequences.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    OutboxEmail,
    Sequence,
    SequenceStatus,
    Step,
    Template,
)
from subscribers.models import MailingList


class TemplateAdminForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = ["workspace", "name", "subject", "preheader", "html", "text", "from_name", "from_email"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        try:
            services.template_compile(
                subject=cleaned.get("subject", ""), preheader=cleaned.get("preheader", ""),
                html=cleaned.get("html", ""), text=cleaned.get("text", ""),
            )  # fmt: skip
        except ApplicationError as exc:
            for field, field_messages in (exc.details or {"__all__": [exc.message]}).items():
                for message in field_messages:
                    self.add_error(field if field in self.fields else None, f"{message}")
        return cleaned


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    form = TemplateAdminForm
    list_display = ["name", "subject", "workspace", "updated_at"]
    list_filter = ["workspace"]
    search_fields = ["name", "subject"]
    readonly_fields = ["preview", "created_at", "updated_at"]

    @admin.display(description="Preview (sample subscriber)")
    def preview(self, obj: Template) -> str:
        if obj.pk is None:
            return "-"
        try:
            rendered = services.template_preview(workspace=obj.workspace, template=obj)
        except ApplicationError as exc:
            return exc.message
        return format_html(
            '<p><strong>{}</strong> <span style="color:#666">{}</span></p>'
            '<iframe sandbox="" srcdoc="{}" style="width:100%;min-height:360px;border:1px solid #ccc"></iframe>',
            rendered.subject, rendered.preheader, escape(rendered.html),  # escape(): ignores "safe" marks
        )  # fmt: skip

    def delete_model(self, request: HttpRequest, obj: Template) -> None:
        try:
            services.template_delete(workspace=obj.workspace, template=obj)
        except ApplicationError as exc:
            messages.error(request, exc.message)


class StepInlineFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        for form in self.forms:
            template = form.cleaned_data.get("template") if hasattr(form, "cleaned_data") else None
            if template is not None and template.workspace_id != self.instance.workspace_id:
                form.add_error("template", "Pick a template of the sequence's workspace.")


class StepInline(admin.TabularInline):
    model = Step
    formset = StepInlineFormSet
    fields = ["position", "name", "template", "delay_value", "delay_unit"]
    ordering = ["position", "id"]
    extra = 0


def _run_on_each(request: HttpRequest, queryset: QuerySet, run, done: str) -> None:
    succeeded = 0
    for obj in queryset:
        try:
            run(obj)
            succeeded += 1
        except ApplicationError as exc:
            messages.error(request, f"{obj}: {exc.message}")
    if succeeded:
        messages.success(request, f"{succeeded} {done}.")


class SequenceAdminForm(forms.ModelForm):
    class Meta:
        model = Sequence
        fields = [
            "workspace", "name", "description", "send_days", "send_start_hour", "send_end_hour", "re_entry",
            "goal_event", "mailing_list",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "mailing_list" in self.fields and self.instance.workspace_id is not None:
            lists = MailingList.objects.filter(workspace=self.instance.workspace_id)
            self.fields["mailing_list"].queryset = lists  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        workspace, mailing_list = cleaned.get("workspace"), cleaned.get("mailing_list")
        if workspace is not None and mailing_list is not None and mailing_list.workspace_id != workspace.pk:
            self.add_error("mailing_list", "Pick a list of the sequence's workspace.")
        keys = ("send_days", "send_start_hour", "send_end_hour")
        window: dict[str, Any] = {key: cleaned[key] for key in keys if key in cleaned}
        try:
            cleaned.update(services.sequence_fields_validate(fields=window))
        except ApplicationError as exc:
            for field, field_messages in (exc.details or {"__all__": [exc.message]}).items():
                for message in field_messages:
                    self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(Sequence)
class SequenceAdmin(admin.ModelAdmin):
    form = SequenceAdminForm
    list_display = ["name", "workspace", "status", "re_entry", "activated_at", "created_at"]
    list_filter = ["status", "re_entry", "workspace"]
    search_fields = ["name", "description"]
    readonly_fields = ["status", "activated_at", "created_at", "updated_at"]
    inlines = [StepInline]
    actions = ["activate", "pause", "archive", "backfill_from_list"]

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool) -> None:
        if formset.model is not Step:
            return super().save_formset(request, form, formset, change)
        instances = formset.save(commit=False)
        for step in formset.deleted_objects:  # through the service: active enrollments move on
            try:
                services.step_delete(workspace=step.sequence.workspace, step=step)
            except ApplicationError as exc:
                messages.error(request, f"{step}: {exc.message}")
        for step in instances:
            if step.position is None:
                step.position = Step.objects.filter(sequence=step.sequence).count() + 1
            step.save()
        formset.save_m2m()
        return None

    def has_delete_permission(self, request: HttpRequest, obj: Sequence | None = None) -> bool:
        # An active sequence is paused or archived first (the service refuses it too).
        return super().has_delete_permission(request, obj) and (obj is None or obj.status != SequenceStatus.ACTIVE)

    def delete_model(self, request: HttpRequest, obj: Sequence) -> None:
        try:
            services.sequence_delete(workspace=obj.workspace, sequence=obj)
        except ApplicationError as exc:
            messages.error(request, exc.message)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Sequence]) -> None:
        for sequence in queryset.select_related("workspace"):
            self.delete_model(request, sequence)

    @admin.action(description="Activate selected sequences")
    def activate(self, request: HttpRequest, queryset: QuerySet[Sequence]) -> None:
        _run_on_each(
            request, queryset, lambda s: services.sequence_activate(workspace=s.workspace, sequence=s), "activated"
        )

    @admin.action(description="Pause selected sequences")
    def pause(self, request: HttpRequest, queryset: QuerySet[Sequence]) -> None:
        _run_on_each(request, queryset, lambda s: services.sequence_pause(workspace=s.workspace, sequence=s), "paused")

    @admin.action(description="Archive selected sequences (active enrollments exit)")
    def archive(self, request: HttpRequest, queryset: QuerySet[Sequence]) -> None:
        _run_on_each(
            request, queryset, lambda s: services.sequence_archive(workspace=s.workspace, sequence=s), "archived"
        )

    @admin.action(description="Backfill from list…")
    def backfill_from_list(self, request: HttpRequest, queryset: QuerySet[Sequence]) -> HttpResponse | None:
        """Enroll a list's subscribed members into one sequence: a form, then `sequence_backfill`."""
        if queryset.count() != 1:
            messages.error(request, "Select exactly one sequence to backfill.")
            return None
        sequence = queryset.select_related("workspace").get()
        form = BackfillForm(request.POST if "apply" in request.POST else None, sequence=sequence)
        if form.is_bound and form.is_valid():
            try:
                result = services.sequence_backfill(
                    workspace=sequence.workspace, sequence=sequence, list_id=form.cleaned_data["mailing_list"].pk,
                    start_by_join_age=form.cleaned_data["start_by_join_age"], dry_run=form.cleaned_data["dry_run"],
                )  # fmt: skip
            except ApplicationError as exc:
                messages.error(request, f"{sequence}: {exc.message}")
                return None
            messages.success(request, _backfill_summary(result))
            return None
        context = {
            **self.admin_site.each_context(request), "title": f"Backfill {sequence} from a list", "form": form,
            "sequence": sequence, "opts": self.model._meta, "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }  # fmt: skip
        return TemplateResponse(request, "admin/sequences/sequence/backfill.html", context)


class BackfillForm(forms.Form):
    mailing_list = forms.ModelChoiceField(queryset=MailingList.objects.none(), label="List")
    start_by_join_age = forms.BooleanField(
        required=False, help_text="Start each member at the step matching how long ago they joined the list."
    )
    dry_run = forms.BooleanField(required=False, help_text="Only count what would happen.")

    def __init__(self, *args: Any, sequence: Sequence, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["mailing_list"].queryset = MailingList.objects.filter(workspace=sequence.workspace_id)  # type: ignore[attr-defined]
        self.fields["mailing_list"].initial = sequence.mailing_list_id  # the sequence's own list, when it has one


def _backfill_summary(result: services.BackfillResult) -> str:
    if result.queued:
        return f"{result.members} members: too many to enroll now; a worker is enrolling them."
    skipped = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in sorted(result.skipped.items()))
    verb = "would be enrolled" if result.dry_run else "enrolled"
    return f"{result.enrolled} of {result.members} members {verb}" + (f"; skipped: {skipped}." if skipped else ".")


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ["id", "subscriber", "sequence", "status", "current_step", "next_run_at", "enrolled_at", "source"]
    list_filter = ["status", "sequence__workspace", "sequence"]
    search_fields = ["subscriber__email", "sequence__name"]
    list_select_related = ["subscriber", "sequence", "current_step"]
    readonly_fields = [
        "workspace", "sequence", "subscriber", "status", "current_step", "next_run_at", "enrolled_at", "finished_at",
        "exit_reason", "source",
    ]  # fmt: skip
    actions = ["exit_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # enroll through the API or a workflow: the service checks status and re-entry

    @admin.action(description="Exit selected enrollments")
    def exit_selected(self, request: HttpRequest, queryset: QuerySet[Enrollment]) -> None:
        _run_on_each(
            request,
            queryset.filter(status=EnrollmentStatus.ACTIVE).select_related("workspace"),
            lambda e: services.enrollment_exit(workspace=e.workspace, enrollment=e, reason="exited by an admin"),
            "exited",
        )


OUTBOX_FIELDS: list[str] = [
    "created_at", "from_email", "recipients", "subject", "html_preview", "html_source", "text", "header_list",
]  # fmt: skip


@admin.register(OutboxEmail)
class OutboxEmailAdmin(admin.ModelAdmin):
    """The local outbox of the embedded mode: what would have been sent, read-only."""

    list_display = ["created_at", "recipients", "subject"]
    search_fields = ["subject", "to", "from_email"]
    date_hierarchy = "created_at"
    fields = OUTBOX_FIELDS  # type: ignore[assignment]
    readonly_fields = OUTBOX_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OutboxEmail | None = None) -> bool:
        return False

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        # The sandboxed srcdoc frame inherits this page's policy: let the email's own inline styles apply
        # (scripts stay blocked by the sandbox and the policy; remote images stay blocked too).
        response._csp_update = {"style-src": ["'unsafe-inline'"]}  # type: ignore[attr-defined]
        return response

    @admin.display(description="To")
    def recipients(self, obj: OutboxEmail) -> str:
        return ", ".join(obj.to)

    @admin.display(description="HTML (rendered in a sandbox)")
    def html_preview(self, obj: OutboxEmail) -> str:
        if not obj.html:
            return "-"
        # escape() whatever the string claims to be; the empty sandbox runs no script and reaches no cookie.
        return format_html(
            '<iframe sandbox="" srcdoc="{}" style="width:100%;min-height:480px;border:1px solid #ccc"></iframe>',
            escape(obj.html),
        )

    @admin.display(description="HTML source")
    def html_source(self, obj: OutboxEmail) -> str:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', escape(obj.html)) if obj.html else "-"

    @admin.display(description="Headers")
    def header_list(self, obj: OutboxEmail) -> str:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', json.dumps(obj.headers, indent=2))


# The sender's outbox rows ------------------------------------------------------------------------------

MESSAGE_FIELDS: list[str] = [
    "workspace", "subscriber", "enrollment", "step", "template", "to_email", "from_email", "subject", "status",
    "attempts", "send_after", "lease_owner", "lease_expires_at", "message_id_header", "provider_message_id",
    "last_error", "deferred_reason", "links", "created_at", "updated_at", "sent_at",
]  # fmt: skip


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Every email the sender has queued, sent or given up on; read-only, with a "retry now" action."""

    list_display = ["created_at", "to_email", "subject", "status", "attempts", "sent_at", "last_error_short"]
    list_filter = ["status", "workspace"]
    search_fields = ["to_email", "subject", "message_id_header", "provider_message_id"]
    date_hierarchy = "created_at"
    list_select_related = ["workspace"]
    fields = MESSAGE_FIELDS  # type: ignore[assignment]
    readonly_fields = MESSAGE_FIELDS
    actions = ["retry_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False

    @admin.display(description="Last error")
    def last_error_short(self, obj: Message) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.action(description="Retry now (deferred and failed messages)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        from sequences.delivery.claim import message_retry

        retried = sum(message_retry(message=message) for message in queryset)
        skipped = queryset.count() - retried
        self.message_user(request, f"{retried} message(s) queued again; {skipped} skipped (not deferred or failed).")


# Broadcast campaigns ------------------------------------------------------------------------------


class CampaignAdminForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = [
            "workspace", "name", "template", "lists", "tags", "segments", "exclude_lists", "exclude_tags",
            "exclude_segments", "high_priority", "scheduled_at",
        ]  # fmt: skip

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        workspace = cleaned.get("workspace")
        if workspace is None:
            return cleaned
        # The same checks as the service: everything of the campaign's workspace, and an audience.
        template = cleaned.get("template")
        if template is not None and template.workspace_id != workspace.pk:
            self.add_error("template", "Pick a template of the campaign's workspace.")
        for name in ("lists", "tags", "segments", "exclude_lists", "exclude_tags", "exclude_segments"):
            if any(item.workspace_id != workspace.pk for item in cleaned.get(name) or []):
                self.add_error(name, "Pick only lists, tags and segments of the campaign's workspace.")
        has_audience = cleaned.get("lists") or cleaned.get("tags") or cleaned.get("segments")
        if not has_audience and "lists" not in self.errors:
            self.add_error("lists", "Pick at least one list, tag or segment.")
        return cleaned


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """Campaigns with their message counts; pause, resume and cancel go through the services."""

    form = CampaignAdminForm
    list_display = [
        "name", "workspace", "status", "scheduled_at", "recipients", "sent", "unsent", "started_at", "finished_at",
    ]  # fmt: skip
    list_filter = ["status", "workspace"]
    search_fields = ["name"]
    list_select_related = ["workspace"]
    filter_horizontal = ["lists", "tags", "segments", "exclude_lists", "exclude_tags", "exclude_segments"]
    readonly_fields = ["status", "started_at", "finished_at", "created_at", "updated_at", "message_counts"]
    actions = ["pause", "resume", "cancel"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        # The list's counts in the same query: one GROUP BY over the campaigns' messages.
        return (
            super()
            .get_queryset(request)
            .annotate(
                recipient_count=Count("messages"),
                sent_count=Count("messages", filter=Q(messages__status=MessageStatus.SENT)),
                unsent_count=Count("messages", filter=Q(messages__status__in=campaigns.UNSENT_STATUSES)),
            )
        )

    @admin.display(description="Recipients", ordering="recipient_count")
    def recipients(self, obj: Campaign) -> int:
        return getattr(obj, "recipient_count", 0)

    @admin.display(description="Sent", ordering="sent_count")
    def sent(self, obj: Campaign) -> int:
        return getattr(obj, "sent_count", 0)

    @admin.display(description="Unsent (queued, sending, deferred)")
    def unsent(self, obj: Campaign) -> int:
        return getattr(obj, "unsent_count", 0)

    @admin.display(description="Messages by status")
    def message_counts(self, obj: Campaign) -> str:
        if obj.pk is None:
            return "-"
        counts = campaigns.campaign_counts(campaign_ids=[obj.pk])[obj.pk]
        return ", ".join(f"{status}: {counts[status]}" for status in MessageStatus.values if counts.get(status)) or "-"

    def has_change_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        # Started campaigns are read-only here, as in the API.
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.status in campaigns.EDITABLE_STATUSES)

    def has_delete_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.status == CampaignStatus.DRAFT)

    def delete_model(self, request: HttpRequest, obj: Campaign) -> None:
        try:
            campaigns.campaign_delete(workspace=obj.workspace, campaign=obj)
        except ApplicationError as exc:
            messages.error(request, exc.message)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset.select_related("workspace"):
            self.delete_model(request, campaign)

    @admin.action(description="Pause selected campaigns")
    def pause(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        _run_on_each(
            request, queryset.select_related("workspace"),
            lambda c: campaigns.campaign_pause(workspace=c.workspace, campaign=c), "paused",
        )  # fmt: skip

    @admin.action(description="Resume selected campaigns")
    def resume(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        _run_on_each(
            request, queryset.select_related("workspace"),
            lambda c: campaigns.campaign_resume(workspace=c.workspace, campaign=c), "resumed",
        )  # fmt: skip

    @admin.action(description="Cancel selected campaigns (unsent messages are never sent)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        _run_on_each(
            request, queryset.select_related("workspace"),
            lambda c: campaigns.campaign_cancel(workspace=c.workspace, campaign=c), "cancelled",
        )  # fmt: skip
