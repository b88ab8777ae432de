"""Admin for outgoing webhook endpoints and their deliveries (read-only logs; changes go through the
services, from the actions here or the API)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from automation import outgoing
from automation.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from core.errors import ApplicationError


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = [
        "url", "workspace", "active", "consecutive_failures", "pending_count", "succeeded_count",
        "failed_count", "disabled_reason",
    ]  # fmt: skip
    list_filter = ["active", "workspace"]
    search_fields = ["url", "description"]
    # The secret is never shown here: it is shown once, in the API's answer to create or rotate.
    exclude = ["secret"]
    readonly_fields = [
        "workspace", "url", "description", "event_types", "active", "consecutive_failures", "disabled_at",
        "disabled_reason", "created_at", "updated_at",
    ]  # fmt: skip
    actions = ["enable", "ping"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return (
            super()
            .get_queryset(request)
            .select_related("workspace")
            .annotate(
                pending=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.PENDING)),
                succeeded=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.SUCCEEDED)),
                failed=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
            )
        )

    @admin.display(description="pending", ordering="pending")
    def pending_count(self, obj: Any) -> int:
        return obj.pending

    @admin.display(description="succeeded", ordering="succeeded")
    def succeeded_count(self, obj: Any) -> int:
        return obj.succeeded

    @admin.display(description="failed", ordering="failed")
    def failed_count(self, obj: Any) -> int:
        return obj.failed

    @admin.action(description="Enable (clears the disabled state and the failure count)")
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset.select_related("workspace"):
            outgoing.webhook_endpoint_enable(workspace=endpoint.workspace, endpoint=endpoint)
        self.message_user(request, f"{queryset.count()} endpoint(s) enabled.", messages.SUCCESS)

    @admin.action(description="Send a ping delivery")
    def ping(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset.select_related("workspace"):
            try:
                outgoing.webhook_ping(workspace=endpoint.workspace, endpoint=endpoint)
            except ApplicationError as exc:
                self.message_user(request, f"{endpoint.url}: {exc.message}", messages.WARNING)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("attempted_at", "status_code", "latency_ms", "error")
    readonly_fields = ("attempted_at", "status_code", "latency_ms", "error")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "event_type", "endpoint", "status", "attempts", "last_status_code", "last_latency_ms",
        "next_attempt_at", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "event_type", "workspace"]
    search_fields = ["uuid", "endpoint__url"]
    list_select_related = ["endpoint"]
    readonly_fields = [
        "uuid", "workspace", "endpoint", "event_type", "event_id", "status", "attempts", "next_attempt_at",
        "lease_expires_at", "queued_at", "last_status_code", "last_latency_ms", "last_error", "created_at",
        "delivered_at", "payload",
    ]  # fmt: skip
    inlines = [WebhookAttemptInline]
    actions = ["retry"]

    @admin.action(description="Retry now")
    def retry(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset.select_related("workspace"):
            try:
                outgoing.webhook_delivery_retry(workspace=delivery.workspace, delivery=delivery)
            except ApplicationError as exc:
                self.message_user(request, f"Delivery {delivery.pk}: {exc.message}", messages.WARNING)
