"""Fan-out: from recorded events to one delivery per subscribed endpoint, and the workflow's send."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from automation.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from automation.outgoing.endpoints import ACTIVE_CACHE_SECONDS, active_cache_key
from automation.outgoing.events import WORKFLOW_WEBHOOK, endpoint_wants, envelope, event_data, webhook_type_for
from subscribers.models import Event

logger = logging.getLogger(__name__)


def workspaces_with_active_endpoints(workspace_ids: Iterable[int]) -> set[int]:
    """Which of these workspaces have an active endpoint: from the cache, else one indexed query for
    the ones it does not know (cached for a minute; endpoint changes forget the entry)."""
    ids = set(workspace_ids)
    if not ids:
        return set()
    keys = {active_cache_key(workspace_id): workspace_id for workspace_id in ids}
    try:
        cached = cache.get_many(list(keys))
    except Exception:  # Redis down: ask the database rather than drop the events' webhooks
        logger.warning("Cache unavailable; looking up webhook endpoints in the database", exc_info=True)
        cached = {}
    known = {keys[key]: bool(value) for key, value in cached.items()}
    unknown = ids - set(known)
    if unknown:
        found = set(
            WebhookEndpoint.objects.filter(workspace_id__in=unknown, active=True)
            .values_list("workspace_id", flat=True)
            .distinct()
        )
        try:
            cache.set_many({active_cache_key(wid): int(wid in found) for wid in unknown}, ACTIVE_CACHE_SECONDS)
        except Exception:
            logger.warning("Cache unavailable; webhook endpoint lookup not cached", exc_info=True)
        known.update({wid: wid in found for wid in unknown})
    return {wid for wid, has in known.items() if has}


def webhooks_events_handler(events: Sequence[Event]) -> None:
    """Registered with the event log; runs after the events commit (on the sending path too, per chunk
    of sent events): without an active endpoint in the workspace it costs a cache read, at most one
    indexed query; otherwise it hands the event ids to a task."""
    from automation.tasks.webhooks import webhook_fanout_task

    wanted = workspaces_with_active_endpoints(
        event.workspace_id for event in events if webhook_type_for(event.type) is not None
    )
    event_ids = [event.pk for event in events if event.workspace_id in wanted and event.pk is not None]
    if event_ids:
        webhook_fanout_task.delay(event_ids)


def webhook_fanout(*, event_ids: Sequence[int]) -> list[int]:
    """Create the deliveries of these events: one per active endpoint of the event's workspace that
    subscribed to its type. Idempotent: ON CONFLICT (endpoint, event_id) DO NOTHING, so running it
    again creates no duplicate. Returns the ids of the deliveries still waiting for a first attempt
    (the new ones, or on a rerun the ones its first run did not get tried), queued after commit."""
    events = list(Event.objects.filter(pk__in=list(event_ids)).select_related("subscriber").order_by("pk"))
    if not events:
        return []
    endpoints_by_workspace: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in WebhookEndpoint.objects.filter(
        workspace_id__in={event.workspace_id for event in events}, active=True
    ).order_by("pk"):
        endpoints_by_workspace.setdefault(endpoint.workspace_id, []).append(endpoint)
    now = timezone.now()
    rows: list[WebhookDelivery] = []
    for event in events:
        webhook_type = webhook_type_for(event.type)
        if webhook_type is None:
            continue
        data = event_data(event)
        for endpoint in endpoints_by_workspace.get(event.workspace_id, []):
            if not endpoint_wants(endpoint.event_types, webhook_type):
                continue
            delivery_uuid = uuid.uuid4()
            payload = envelope(
                delivery_uuid=delivery_uuid, webhook_type=webhook_type, created=now,
                workspace_id=event.workspace_id, data=data,
            )  # fmt: skip
            rows.append(
                WebhookDelivery(
                    uuid=delivery_uuid,
                    workspace_id=event.workspace_id,
                    endpoint=endpoint,
                    event_type=webhook_type,
                    event_id=event.pk,
                    payload=payload,
                    created_at=now,
                    next_attempt_at=now,
                    queued_at=now,
                )
            )
    if not rows:
        return []
    with transaction.atomic():
        WebhookDelivery.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
        delivery_ids = list(
            WebhookDelivery.objects.filter(
                endpoint_id__in={row.endpoint_id for row in rows},
                event_id__in={row.event_id for row in rows},
                status=DeliveryStatus.PENDING,
                attempts=0,
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        attempts_queue(delivery_ids)
    return delivery_ids


def attempts_queue(delivery_ids: Sequence[int]) -> None:
    """One attempt task per delivery, after commit: a slow endpoint holds one task, never the others."""
    from automation.tasks.webhooks import webhook_delivery_attempt_task

    ids = list(delivery_ids)

    def enqueue() -> None:
        for delivery_id in ids:
            webhook_delivery_attempt_task.delay(delivery_id)

    if ids:
        transaction.on_commit(enqueue)


def webhook_send(*, endpoint: WebhookEndpoint, event_type: str, payload: dict[str, Any]) -> WebhookDelivery:
    """Queue one signed delivery of `payload` to `endpoint` (the workflow "call a webhook" action
    uses this). It is tried after the surrounding transaction commits, then retried as documented.

    The body is the standard envelope with `payload` as its `data`, so receivers verify and parse it
    like every other delivery. An inactive endpoint gets the delivery failed at once, with the reason."""
    now = timezone.now()
    delivery_uuid = uuid.uuid4()
    webhook_type = event_type or WORKFLOW_WEBHOOK
    delivery = WebhookDelivery.objects.create(
        uuid=delivery_uuid,
        workspace_id=endpoint.workspace_id,
        endpoint=endpoint,
        event_type=webhook_type,
        payload=envelope(
            delivery_uuid=delivery_uuid,
            webhook_type=webhook_type,
            created=now,
            workspace_id=endpoint.workspace_id,
            data=payload,
        ),
        created_at=now,
        next_attempt_at=now,
        queued_at=now,
    )
    attempts_queue([delivery.pk])
    return delivery
