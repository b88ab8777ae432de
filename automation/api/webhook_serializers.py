"""Request and response shapes of the webhooks API. Validation of meaning lives in the services."""

from __future__ import annotations

from rest_framework import serializers

from automation.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from automation.outgoing.events import SUBSCRIBABLE_TYPES

EVENT_TYPES_HELP = f'Event types to receive, or ["*"] for all: {", ".join(SUBSCRIBABLE_TYPES)}.'


class WebhookEndpointSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(child=serializers.CharField(), help_text=EVENT_TYPES_HELP)

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id", "url", "description", "event_types", "active", "consecutive_failures", "disabled_at",
            "disabled_reason", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    """Only in the answers to create and rotate-secret: the one time the secret is shown."""

    secret = serializers.CharField(read_only=True, help_text="The signing secret. Store it now: it is not shown again.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="http(s) URL; must resolve to a public address.")
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=100), max_length=len(SUBSCRIBABLE_TYPES) + 1, help_text=EVENT_TYPES_HELP
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)


class WebhookEndpointUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=100), max_length=len(SUBSCRIBABLE_TYPES) + 1, required=False,
        help_text=EVENT_TYPES_HELP,
    )  # fmt: skip
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    active = serializers.BooleanField(
        required=False, help_text="false pauses the endpoint (pending deliveries fail); true enables it."
    )


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["id", "attempted_at", "status_code", "latency_ms", "error"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "uuid", "endpoint_id", "event_type", "event_id", "status", "attempts", "next_attempt_at",
            "last_status_code", "last_latency_ms", "last_error", "created_at", "delivered_at",
        ]  # fmt: skip
        read_only_fields = fields


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
    payload = serializers.JSONField(read_only=True, help_text="The JSON body that is POSTed.")
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta(WebhookDeliverySerializer.Meta):
        fields = [*WebhookDeliverySerializer.Meta.fields, "payload", "attempt_log"]
        read_only_fields = fields
