"""Admin for subscribers and their lists, tags, fields, suppressions, events and imports.

Forms validate with the same service functions as the API, saves go through services, and actions
call services: the admin cannot store what the API would refuse.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from core.errors import ApplicationError, ValidationFailed
from subscribers import imports, segments, services
from subscribers.links import mailing_list_subscribe_url
from subscribers.models import (
    Event,
    FieldDefinition,
    ImportJob,
    ListMembership,
    MailingList,
    Segment,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionKind,
    Tag,
)
from subscribers.services.subscribers import subscribers_by_email, tag_names_clean
from subscribers.services.validation import field_definitions_by_key


def _admin_actor(request: HttpRequest) -> str:
    return f"admin:{request.user.pk} {getattr(request.user, 'email', '')}".strip()


def acting_admin(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _add_service_error(form: forms.BaseForm, error: ApplicationError) -> None:
    """Show a service's error on the form field it names (`attributes.plan` -> `attributes`)."""
    details = error.details if isinstance(error.details, dict) else {}
    if not details:
        form.add_error(None, error.message)
        return
    for key, problems in details.items():
        field = str(key).split(".")[0].split("[")[0]
        for problem in problems if isinstance(problems, list) else [problems]:
            message = f"{key}: {problem}" if field != key else str(problem)
            form.add_error(field if field in form.fields else None, message)


# Subscribers ---------------------------------------------------------------------------------


class SubscriberAdminForm(forms.ModelForm):
    class Meta:
        model = Subscriber
        fields = [
            "workspace", "email", "first_name", "last_name", "attributes", "time_zone", "locale", "consent_source",
            "consent_ip", "consent_at", "confirmed_at",
        ]  # fmt: skip

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        workspace = cleaned.get("workspace") or getattr(self.instance, "workspace", None)
        if workspace is None or self.errors:
            return cleaned
        data = {name: cleaned.get(name) or "" for name in ("email", "first_name", "last_name", "time_zone", "locale")}
        data["attributes"] = cleaned.get("attributes") or {}
        try:
            row = services.subscriber_row_clean(data=data, definitions=field_definitions_by_key(workspace=workspace))
        except ValidationFailed as error:
            _add_service_error(self, error)
            return cleaned
        clash = subscribers_by_email(workspace=workspace, emails=[row.email]).get(row.email)
        if clash is not None and clash.pk != self.instance.pk:
            self.add_error("email", f"{row.email} is already a subscriber of this workspace.")
        return cleaned


class ListMembershipInline(admin.TabularInline):
    """Memberships are shown here; they change through list and subscriber services (API, actions)."""

    model = ListMembership
    extra = 0
    can_delete = False
    fields = ("mailing_list", "subscriber", "status", "subscribed_at", "unsubscribed_at")
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SubscriberMembershipInline(ListMembershipInline):
    fk_name = "subscriber"


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    form = SubscriberAdminForm
    list_display = ["email", "full_name", "workspace", "status", "status_changed_at", "created_at"]
    list_filter = ["status", "workspace", "created_at", "tags"]
    search_fields = ["email", "first_name", "last_name"]
    list_select_related = ["workspace"]
    readonly_fields = [
        "status", "status_changed_at", "status_reason", "status_changed_by", "tag_names", "created_at", "updated_at",
    ]  # fmt: skip
    inlines = [SubscriberMembershipInline]
    date_hierarchy = "created_at"
    show_full_result_count = False  # counting millions of rows on every page is slow
    actions = ["unsubscribe_selected", "reactivate_selected", "confirm_selected", "suppress_selected"]

    @admin.display(description="Tags")
    def tag_names(self, subscriber: Subscriber) -> str:
        return ", ".join(tag.name for tag in subscriber.tags.all()) or "-"

    def get_readonly_fields(self, request: HttpRequest, obj: Subscriber | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "workspace"] if obj is not None else fields

    def save_model(self, request: HttpRequest, obj: Subscriber, form: forms.ModelForm, change: bool) -> None:
        data: dict[str, Any] = {
            name: form.cleaned_data[name]
            for name in SubscriberAdminForm.Meta.fields
            if name != "workspace" and form.cleaned_data.get(name) is not None
        }
        if change:
            services.subscriber_update(workspace=obj.workspace, subscriber=obj, **data)
            return
        data.setdefault("consent_source", "admin")
        data["consent_source"] = data["consent_source"] or "admin"
        created = services.subscriber_create(workspace=form.cleaned_data["workspace"], **data)
        obj.pk = obj.id = created.pk
        obj._state.adding = False

    def _each(self, request: HttpRequest, queryset: QuerySet[Subscriber], run: Any, done: str) -> None:
        count = 0
        for subscriber in queryset.select_related("workspace"):
            try:
                run(subscriber)
                count += 1
            except ApplicationError as error:
                self.message_user(request, f"{subscriber.email}: {error.message}", messages.ERROR)
        self.message_user(request, f"{count} subscriber(s) {done}.", messages.SUCCESS)

    @admin.action(description="Unsubscribe selected subscribers")
    def unsubscribe_selected(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        self._each(
            request, queryset,
            lambda s: services.subscriber_unsubscribe(
                workspace=s.workspace, subscriber=s, reason="Unsubscribed in the admin", actor=_admin_actor(request),
                source="admin",
            ),
            "unsubscribed",
        )  # fmt: skip

    @admin.action(description="Reactivate selected subscribers")
    def reactivate_selected(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        self._each(
            request, queryset,
            lambda s: services.subscriber_status_change(
                workspace=s.workspace, subscriber=s, status=SubscriberStatus.ACTIVE, reason="Reactivated in the admin",
                actor=_admin_actor(request), source="admin",
            ),
            "reactivated",
        )  # fmt: skip

    @admin.action(description="Record double opt-in confirmation")
    def confirm_selected(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        self._each(
            request, queryset, lambda s: services.subscriber_confirm(workspace=s.workspace, subscriber=s), "confirmed"
        )

    @admin.action(description="Suppress selected addresses (never send to them)")
    def suppress_selected(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        self._each(
            request, queryset,
            lambda s: services.suppression_get_or_create(
                workspace=s.workspace, kind=SuppressionKind.EMAIL, value=s.email, reason="Suppressed in the admin",
                source="admin",
            ),
            "suppressed",
        )  # fmt: skip


# Lists, tags, fields -------------------------------------------------------------------------


class _ServiceSavedAdmin(admin.ModelAdmin):
    """Creates and updates through `create_service` / `update_service`; their errors show on the form."""

    create_fields: tuple[str, ...] = ()
    update_fields: tuple[str, ...] = ()

    def create_service(self, obj: Any, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def update_service(self, obj: Any, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)
        admin_self = self

        class ServiceCheckedForm(form_class):  # type: ignore[misc, valid-type]
            def clean(self) -> dict[str, Any]:
                cleaned = super().clean() or {}
                if self.errors:
                    return cleaned
                # Dry run in a savepoint: the service validates (and detects duplicates) for real.
                try:
                    with transaction.atomic():
                        if self.instance.pk:
                            instance = type(self.instance).objects.get(pk=self.instance.pk)
                            data = {k: cleaned[k] for k in admin_self.update_fields if k in cleaned}
                            admin_self.update_service(instance, data)
                        else:
                            data = {k: cleaned[k] for k in admin_self.create_fields if k in cleaned}
                            admin_self.create_service(self.instance, data)
                        transaction.set_rollback(True)
                except ApplicationError as error:
                    _add_service_error(self, error)
                return cleaned

        return ServiceCheckedForm

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        if change:
            instance = type(obj).objects.get(pk=obj.pk)
            self.update_service(
                instance, {k: form.cleaned_data[k] for k in self.update_fields if k in form.cleaned_data}
            )
            return
        created = self.create_service(
            obj, {k: form.cleaned_data[k] for k in self.create_fields if k in form.cleaned_data}
        )
        obj.pk = obj.id = created.pk
        obj._state.adding = False


@admin.register(MailingList)
class MailingListAdmin(_ServiceSavedAdmin):
    list_display = ["name", "workspace", "double_opt_in", "member_count", "created_at"]
    list_filter = ["double_opt_in", "workspace"]
    search_fields = ["name", "description"]
    fields = ["workspace", "name", "description", "double_opt_in", "subscribe_link"]
    inlines = [ListMembershipInline]
    create_fields = ("workspace", "name", "description", "double_opt_in")
    update_fields = ("name", "description", "double_opt_in")

    def get_queryset(self, request: HttpRequest) -> QuerySet[MailingList]:
        return super().get_queryset(request).annotate(member_total=Count("memberships"))

    @admin.display(description="Members", ordering="member_total")
    def member_count(self, mailing_list: MailingList) -> int:
        return getattr(mailing_list, "member_total", 0)

    @admin.display(description="Public subscribe form")
    def subscribe_link(self, mailing_list: MailingList) -> str:
        if mailing_list.pk is None:
            return "Shown once the list is saved."
        url = mailing_list_subscribe_url(list_id=mailing_list.pk)
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, url)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["workspace", "subscribe_link"] if obj is not None else ["subscribe_link"]

    def create_service(self, obj: MailingList, data: dict[str, Any]) -> MailingList:
        return services.mailing_list_create(**data)

    def update_service(self, obj: MailingList, data: dict[str, Any]) -> MailingList:
        return services.mailing_list_update(workspace=obj.workspace, mailing_list=obj, **data)


@admin.register(Tag)
class TagAdmin(_ServiceSavedAdmin):
    list_display = ["name", "workspace", "subscriber_total", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["name"]
    fields = ["workspace", "name"]
    create_fields = ("workspace", "name")
    update_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(subscriber_count=Count("subscribers"))

    @admin.display(description="Subscribers", ordering="subscriber_count")
    def subscriber_total(self, tag: Tag) -> int:
        return getattr(tag, "subscriber_count", 0)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["workspace"] if obj is not None else []

    def create_service(self, obj: Tag, data: dict[str, Any]) -> Tag:
        return services.tag_create(**data)

    def update_service(self, obj: Tag, data: dict[str, Any]) -> Tag:
        return services.tag_update(workspace=obj.workspace, tag=obj, **data)


@admin.register(Segment)
class SegmentAdmin(_ServiceSavedAdmin):
    list_display = ["name", "workspace", "matching", "updated_at"]
    list_filter = ["workspace"]
    search_fields = ["name"]
    fields = ["workspace", "name", "description", "rules"]
    create_fields = ("workspace", "name", "description", "rules")
    update_fields = ("name", "description", "rules")

    @admin.display(description="Matching subscribers")
    def matching(self, segment: Segment) -> int | str:
        try:
            return segments.segment_count(workspace=segment.workspace, tree=segment.rules)
        except ApplicationError:  # rules that no longer validate (a list or field was deleted)
            return "invalid rules"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["workspace"] if obj is not None else []

    def create_service(self, obj: Segment, data: dict[str, Any]) -> Segment:
        return segments.segment_create(**data)

    def update_service(self, obj: Segment, data: dict[str, Any]) -> Segment:
        return segments.segment_update(workspace=obj.workspace, segment=obj, **data)

    def delete_model(self, request: HttpRequest, obj: Segment) -> None:
        # Through the service: a segment a campaign or another segment uses is kept, with the reason shown.
        try:
            segments.segment_delete(workspace=obj.workspace, segment=obj)
        except ApplicationError as exc:
            messages.error(request, exc.message)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Segment]) -> None:
        for segment in queryset.select_related("workspace"):
            self.delete_model(request, segment)


@admin.register(FieldDefinition)
class FieldDefinitionAdmin(_ServiceSavedAdmin):
    list_display = ["key", "label", "type", "workspace", "created_at"]
    list_filter = ["type", "workspace"]
    search_fields = ["key", "label"]
    fields = ["workspace", "key", "label", "type", "choices"]
    create_fields = ("workspace", "key", "label", "type", "choices")
    update_fields = ("label", "choices")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["workspace", "key", "type"] if obj is not None else []

    def create_service(self, obj: FieldDefinition, data: dict[str, Any]) -> FieldDefinition:
        return services.field_definition_create(**data)

    def update_service(self, obj: FieldDefinition, data: dict[str, Any]) -> FieldDefinition:
        return services.field_definition_update(workspace=obj.workspace, definition=obj, **data)


@admin.register(Suppression)
class SuppressionAdmin(_ServiceSavedAdmin):
    list_display = ["value", "kind", "workspace", "reason", "source", "created_at"]
    list_filter = ["kind", "source", "workspace"]
    search_fields = ["value", "reason"]
    fields = ["workspace", "kind", "value", "reason", "source"]
    create_fields = ("workspace", "kind", "value", "reason", "source")
    update_fields = ("reason",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["workspace", "kind", "value", "source", "created_at"] if obj is not None else []

    def create_service(self, obj: Suppression, data: dict[str, Any]) -> Suppression:
        data["source"] = data.get("source") or "admin"
        return services.suppression_create(**data)

    def update_service(self, obj: Suppression, data: dict[str, Any]) -> Suppression:
        return services.suppression_update(workspace=obj.workspace, suppression=obj, **data)


# Read-only records ---------------------------------------------------------------------------


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(_ReadOnlyAdmin):
    """The event log is append-only: written by services, read here."""

    list_display = ["name", "type", "subscriber", "workspace", "occurred_at", "revenue", "currency"]
    list_filter = ["type", "workspace", "occurred_at"]
    search_fields = ["name", "subscriber__email", "dedupe_key"]
    list_select_related = ["subscriber", "workspace"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ImportJobAddForm(forms.ModelForm):
    """Upload a CSV from the admin: checked like the API's upload, then queued by the same service."""

    tags = forms.CharField(required=False, help_text="Comma-separated tag names.")

    class Meta:
        model = ImportJob
        fields = ["workspace", "file", "column_mapping", "mailing_list", "update_existing"]
        help_texts = {"column_mapping": 'Optional: {"CSV column": "email", ...}; empty matches columns by name.'}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        workspace, upload = cleaned.get("workspace"), cleaned.get("file")
        if workspace is None or upload is None or self.errors:
            return cleaned
        mailing_list = cleaned.get("mailing_list")
        if mailing_list is not None and mailing_list.workspace_id != workspace.pk:
            self.add_error("mailing_list", "This list belongs to another workspace.")
            return cleaned
        try:
            if upload.size > settings.IMPORT_MAX_FILE_SIZE:
                raise ValidationFailed.for_field("file", f"Larger than {settings.IMPORT_MAX_FILE_SIZE} bytes.")
            header = imports.import_header_read(file=upload)
            cleaned["column_mapping"] = imports.column_mapping_clean(
                header=header, mapping=cleaned.get("column_mapping"),
                definitions=field_definitions_by_key(workspace=workspace),
            )  # fmt: skip
            cleaned["tag_names"] = tag_names_clean(
                names=[name.strip() for name in (cleaned.get("tags") or "").split(",") if name.strip()]
            )
        except ValidationFailed as error:
            _add_service_error(self, error)
        return cleaned


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Imports are read-only records; a new one is an upload that goes through `import_job_create`."""

    list_display = [
        "id", "original_filename", "workspace", "status", "processed_rows", "created_count", "updated_count",
        "skipped_count", "error_count", "created_at", "finished_at",
    ]  # fmt: skip
    list_filter = ["status", "workspace"]
    search_fields = ["original_filename"]
    list_select_related = ["workspace"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ImportJobAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["workspace", "file", "column_mapping", "mailing_list", "tags", "update_existing"]
        return super().get_fields(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ImportJob, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        job = imports.import_job_create(
            workspace=data["workspace"], file=data["file"], column_mapping=data["column_mapping"],
            mailing_list=data.get("mailing_list"), tag_names=data.get("tag_names", []),
            update_existing=data.get("update_existing", True), created_by=acting_admin(request),
        )  # fmt: skip
        obj.pk = obj.id = job.pk
        obj._state.adding = False
