"""Tasks of outgoing webhooks: fan-out of events, one delivery attempt, the retry tick."""

from __future__ import annotations

from celery import shared_task

from automation.outgoing import delivery, fanout


@shared_task(ignore_result=True)
def webhook_fanout_task(event_ids: list[int]) -> int:
    """Create the deliveries of these events (idempotent) and queue their first attempts."""
    return len(fanout.webhook_fanout(event_ids=event_ids))


@shared_task(ignore_result=True)
def webhook_delivery_attempt_task(delivery_id: int) -> str:
    """One attempt of one delivery; a duplicate or stale task finds it leased or not due and does nothing."""
    outcome = delivery.webhook_delivery_attempt(delivery_id=delivery_id)
    return "skipped" if outcome is None else outcome.status


@shared_task(ignore_result=True)
def webhook_deliveries_tick() -> int:
    """Try the deliveries whose next attempt is due. Returns how many were handed out."""
    return delivery.webhook_deliveries_tick()
