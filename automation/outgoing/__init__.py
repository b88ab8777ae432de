"""Outgoing webhooks: fan-out of events to endpoints, signed delivery under a lease, retries."""

from automation.outgoing.delivery import (
    webhook_deliveries_tick,
    webhook_delivery_attempt,
    webhook_delivery_retry,
    webhook_ping,
)
from automation.outgoing.endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_enable,
    webhook_endpoint_secret_rotate,
    webhook_endpoint_update,
)
from automation.outgoing.fanout import webhook_fanout, webhook_send, webhooks_events_handler

__all__ = [
    "webhook_deliveries_tick",
    "webhook_delivery_attempt",
    "webhook_delivery_retry",
    "webhook_endpoint_create",
    "webhook_endpoint_delete",
    "webhook_endpoint_enable",
    "webhook_endpoint_secret_rotate",
    "webhook_endpoint_update",
    "webhook_fanout",
    "webhook_ping",
    "webhook_send",
    "webhooks_events_handler",
]
