"""Outgoing webhooks: fan-out of events to endpoints, signed delivery, retries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from automation.models import WebhookDelivery, WebhookEndpoint
from subscribers.models import Event


def webhooks_events_handler(events: Sequence[Event]) -> None:
    """Registered with the event log; runs after the events commit."""


def webhook_send(*, endpoint: WebhookEndpoint, event_type: str, payload: dict[str, Any]) -> WebhookDelivery:
    """Queue one signed delivery of `payload` to `endpoint` (the workflow "call a webhook" action
    uses this). It is tried after the surrounding transaction commits, then retried as documented."""
    return WebhookDelivery.objects.create(
        workspace_id=endpoint.workspace_id,
        endpoint=endpoint,
        event_type=event_type,
        payload=payload,
        next_attempt_at=timezone.now(),
    )
