"""Writes of the realtime app: custom live events (through the event log) and admin broadcasts."""

from __future__ import annotations

import json
from typing import Any

from accounts.models import Workspace
from core.errors import NotFound, ValidationFailed
from realtime.publish import workspace_broadcast
from subscribers.models import Event, EventType, Subscriber
from subscribers.services import event_record
from subscribers.services.validation import json_storable, text_storable

MAX_PROPERTIES_BYTES = 16 * 1024
MAX_BROADCAST_LENGTH = 500


def live_event_publish(
    *, workspace: Workspace, name: str, properties: dict[str, Any] | None = None, subscriber_id: int | None = None
) -> Event:
    """Record a custom event in the workspace's log; after commit the event handlers take it (workflows,
    webhooks, and this app's coalesced push to the workspace's dashboards and feeds)."""
    name = text_storable(value=name.strip(), field="name")
    if not name:
        raise ValidationFailed.for_field("name", "An event name is required.", code="required")
    properties = json_storable(value=properties or {}, field="properties")
    if len(json.dumps(properties).encode()) > MAX_PROPERTIES_BYTES:
        raise ValidationFailed.for_field("properties", f"Must be at most {MAX_PROPERTIES_BYTES} bytes as JSON.")
    subscriber = None
    if subscriber_id is not None:
        subscriber = Subscriber.objects.filter(workspace=workspace, pk=subscriber_id).first()
        if subscriber is None:
            raise NotFound("Subscriber not found.", details={"subscriber_id": ["Subscriber not found."]})
    event, _ = event_record(
        workspace=workspace, subscriber=subscriber, type=EventType.CUSTOM, name=name, properties=properties
    )
    return event


def dashboard_broadcast(*, workspace: Workspace, message: str, sender: str) -> int:
    """Send an admin's message to the workspace's open dashboards now; returns group messages sent."""
    message = text_storable(value=message.strip(), field="message")
    if not message:
        raise ValidationFailed.for_field("message", "A message is required.", code="required")
    if len(message) > MAX_BROADCAST_LENGTH:
        raise ValidationFailed.for_field(
            "message", f"Ensure this field has no more than {MAX_BROADCAST_LENGTH} characters."
        )
    return workspace_broadcast(workspace_id=workspace.pk, message=message, sender=sender)
