"""Outgoing webhooks: fan-out of events to endpoints, signed delivery, retries."""

from __future__ import annotations

from collections.abc import Sequence

from subscribers.models import Event


def webhooks_events_handler(events: Sequence[Event]) -> None:
    """Registered with the event log; runs after the events commit."""
