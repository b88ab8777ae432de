"""The webhook event types (the documented list) and the payload every delivery carries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from subscribers.models import Event, EventType

ALL_TYPES = "*"
PING = "ping"
WORKFLOW_WEBHOOK = "workflow.webhook"

# The event log's types as integrators see them. docs/webhooks.md lists the same names; a test keeps
# the two in step.
EVENT_TYPE_MAP: dict[str, str] = {
    EventType.SUBSCRIBED: "subscriber.subscribed",
    EventType.UNSUBSCRIBED: "subscriber.unsubscribed",
    EventType.CONFIRMED: "subscriber.confirmed",
    EventType.TAG_ADDED: "subscriber.tag_added",
    EventType.TAG_REMOVED: "subscriber.tag_removed",
    EventType.FIELD_CHANGED: "subscriber.field_changed",
    EventType.SENT: "email.sent",
    EventType.DELIVERED: "email.delivered",
    EventType.OPENED: "email.opened",
    EventType.CLICKED: "email.clicked",
    EventType.BOUNCED: "email.bounced",
    EventType.COMPLAINED: "email.complained",
    EventType.ENROLLED: "sequence.enrolled",
    EventType.EXITED: "sequence.exited",
    EventType.GOAL: "goal.reached",
    EventType.CUSTOM: "event.custom",
}

# What an endpoint may subscribe to. `ping` (the API's test delivery) and `workflow.webhook` (the
# workflow "call a webhook" action, sent to the endpoint the action names) are never fanned out, so
# an endpoint cannot subscribe to them: it receives them whatever it subscribed to.
SUBSCRIBABLE_TYPES: tuple[str, ...] = tuple(EVENT_TYPE_MAP.values())


def webhook_type_for(event_type: str) -> str | None:
    return EVENT_TYPE_MAP.get(event_type)


def endpoint_wants(event_types: list[str], webhook_type: str) -> bool:
    return ALL_TYPES in event_types or webhook_type in event_types


def envelope(
    *, delivery_uuid: uuid.UUID, webhook_type: str, created: datetime, workspace_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    """The body of every delivery: the same outer shape for every type."""
    return {
        "id": str(delivery_uuid),
        "type": webhook_type,
        "created": int(created.timestamp()),
        "workspace_id": workspace_id,
        "data": data,
    }


def event_data(event: Event) -> dict[str, Any]:
    """The `data` of an event's delivery: the event's fields, its subscriber, its properties."""
    subscriber = event.subscriber
    return {
        "event_id": event.pk,
        "name": event.name,
        "occurred_at": event.occurred_at.isoformat(),
        "subscriber": None if subscriber is None else {"id": subscriber.pk, "email": subscriber.email},
        "properties": event.properties or {},
        "message_id": event.message_id,
        "sequence_id": event.sequence_id,
        "step_id": event.step_id,
        "campaign_id": event.campaign_id,
        "revenue": None if event.revenue is None else str(event.revenue),
        "currency": event.currency or None,
    }
