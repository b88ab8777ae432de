"""Admin for workspaces, members and API keys. Keys are created through the service and shown once."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.http import HttpRequest

from accounts import services
from accounts.models import ApiKey, IdempotencyRecord, Membership, Workspace
from core.errors import ValidationFailed


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class WorkspaceAdminForm(forms.ModelForm):
    frequency_cap_hours = forms.IntegerField(
        required=False, min_value=1, max_value=services.FREQUENCY_CAP_HOURS_MAX,
        help_text="The frequency cap's window in hours (empty: unchanged, 24 for a new workspace).",
    )  # fmt: skip

    class Meta:
        model = Workspace
        fields = [
            "name", "slug", "time_zone", "from_name", "from_email", "reply_to", "postal_address",
            "sending_rate_per_second", "track_opens", "quiet_hours_start", "quiet_hours_end", "frequency_cap_count",
            "frequency_cap_hours",
        ]  # fmt: skip

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        try:
            services.validate_quiet_hours(start=cleaned.get("quiet_hours_start"), end=cleaned.get("quiet_hours_end"))
            if cleaned.get("frequency_cap_hours") is None:
                cleaned["frequency_cap_hours"] = self.instance.frequency_cap_hours or 24
        except ValidationFailed as exc:
            for field, problems in (exc.details or {None: [exc.message]}).items():
                for problem in problems:
                    self.add_error(field, problem)
        return cleaned


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    form = WorkspaceAdminForm
    list_display = [
        "name", "slug", "time_zone", "from_email", "sending_rate_per_second", "sending_paused_at", "created_at",
    ]  # fmt: skip
    search_fields = ["name", "slug", "from_email"]
    list_filter = ["time_zone"]
    readonly_fields = ["sending_paused_at", "sending_paused_reason", "created_at", "updated_at"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    actions = ["pause_sending", "resume_sending"]

    @admin.action(description="Pause sending of the selected workspaces")
    def pause_sending(self, request: HttpRequest, queryset) -> None:
        actor = f"admin:{request.user.pk}"
        paused = sum(
            services.workspace_sending_pause(
                workspace=workspace, reason=f"Paused by {request.user} (admin)", actor=actor
            )
            for workspace in queryset
        )
        self.message_user(request, f"Sending paused in {paused} workspace(s).", messages.SUCCESS)

    @admin.action(description="Resume sending of the selected workspaces (held messages are queued again)")
    def resume_sending(self, request: HttpRequest, queryset) -> None:
        actor = f"admin:{request.user.pk}"
        resumed = sum(services.workspace_sending_resume(workspace=workspace, actor=actor) for workspace in queryset)
        self.message_user(request, f"Sending resumed in {resumed} workspace(s).", messages.SUCCESS)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "workspace", "scope", "created_by", "last_used_at", "revoked_at"]
    list_filter = ["scope", "workspace", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "workspace__name"]
    fields = ["workspace", "name", "scope", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_selected"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is not None:  # a key's workspace and scope are fixed once issued
            return [*self.readonly_fields, "workspace", "scope"]
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        issued = services.api_key_create(
            workspace=obj.workspace,
            name=obj.name,
            scope=obj.scope,
            created_by=request.user if isinstance(request.user, User) else None,
        )
        obj.pk = issued.api_key.pk
        obj.refresh_from_db()
        messages.warning(request, f"The new key is {issued.secret} — copy it now, it will not be shown again.")

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request: HttpRequest, queryset) -> None:
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ["key", "workspace", "principal", "response_status", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["key"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
