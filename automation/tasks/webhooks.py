"""Tasks of outgoing webhooks: fan-out of events, one delivery attempt, the retry tick."""

from __future__ import annotations

from celery import shared_task


@shared_task
def webhook_deliveries_tick() -> int:
    """Try the deliveries whose next attempt is due. Returns how many were handed out."""
    return 0
