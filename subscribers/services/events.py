"""The event log: `event_record` writes one event and hands it to registered handlers after commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Workspace
from subscribers.models import Event, EventType, Subscriber

logger = logging.getLogger(__name__)

# A handler takes a batch: one event from `event_record`, a whole chunk from `events_record_many`,
# so a bulk import costs a handler one query per chunk, not one per row.
EventHandler = Callable[[Sequence[Event]], None]
_event_handlers: list[EventHandler] = []


def event_handler_register(handler: EventHandler) -> EventHandler:
    """Higher apps register here from their AppConfig.ready(); handlers run after the events commit."""
    if handler not in _event_handlers:
        _event_handlers.append(handler)
    return handler


def events_dispatch(events: Sequence[Event]) -> None:
    """Run the registered handlers for events already stored. `event_record` and `events_record_many`
    call it after commit; a writer that inserts events by its own SQL (the sender's one-statement
    record of a send) calls it itself, after commit."""
    if not events:
        return
    for handler in list(_event_handlers):
        try:
            handler(events)
        except Exception:  # one broken handler must not stop the others, nor the caller
            logger.exception("Event handler %r failed for events %s…", handler, events[0].pk)


def event_record(
    *,
    workspace: Workspace,
    subscriber: Subscriber | None,
    type: str = EventType.CUSTOM,
    name: str = "",
    properties: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
    message_id: int | None = None,
    sequence_id: int | None = None,
    step_id: int | None = None,
    campaign_id: int | None = None,
    revenue: Decimal | None = None,
    currency: str = "",
    dedupe_key: str | None = None,
) -> tuple[Event, bool]:
    """Write one event to the log; returns (event, created).

    With a `dedupe_key` already used in the workspace, the existing event is returned and nothing is
    written or dispatched. After the surrounding transaction commits, the event is handed to every
    registered handler.
    """
    if subscriber is not None and subscriber.workspace_id != workspace.pk:
        raise ValueError("subscriber belongs to another workspace")
    if dedupe_key:
        existing = Event.objects.filter(workspace=workspace, dedupe_key=dedupe_key).first()
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            event = Event.objects.create(
                workspace=workspace,
                subscriber=subscriber,
                type=type,
                name=name or str(type),
                properties=properties or {},
                occurred_at=occurred_at or timezone.now(),
                message_id=message_id,
                sequence_id=sequence_id,
                step_id=step_id,
                campaign_id=campaign_id,
                revenue=revenue,
                currency=currency.upper(),
                dedupe_key=dedupe_key or None,
            )
    except IntegrityError:
        if not dedupe_key:
            raise
        return Event.objects.get(workspace=workspace, dedupe_key=dedupe_key), False
    transaction.on_commit(lambda: events_dispatch([event]))
    return event, True


def events_record_many(*, workspace: Workspace, events: Sequence[Event]) -> list[Event]:
    """Write many events in one insert (bulk imports); handlers get them as one batch after commit.

    For events without a `dedupe_key`: the unique key is not checked here.
    """
    for event in events:
        if event.workspace_id != workspace.pk or (
            event.subscriber is not None and event.subscriber.workspace_id != workspace.pk
        ):
            raise ValueError("event or subscriber belongs to another workspace")
        if event.dedupe_key:
            raise ValueError("events with a dedupe_key go through event_record")
        event.name = event.name or str(event.type)
    created = Event.objects.bulk_create(events)
    transaction.on_commit(lambda: events_dispatch(created))
    return created
