"""Matching recorded events to workflows (triggers) and to runs waiting for them."""

from __future__ import annotations

from collections.abc import Sequence

from subscribers.models import Event


def workflows_events_handler(events: Sequence[Event]) -> None:
    """Registered with the event log; runs after the events commit."""
