"""Delivery: one signed attempt under a lease, the retry schedule, disabling an endpoint that keeps
failing, the tick that hands out due deliveries, and manual retries and pings."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Role, Workspace
from automation.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from automation.outgoing.endpoints import webhook_endpoint_disable
from automation.outgoing.events import PING, envelope
from automation.outgoing.fanout import attempts_queue
from automation.ssrf import PostResult, safe_post
from core.errors import Conflict

logger = logging.getLogger(__name__)

USER_AGENT = "EmailSequence-Webhooks/1"
SIGNATURE_HEADER = "X-EmailSequence-Signature"
EVENT_HEADER = "X-EmailSequence-Event"
DELIVERY_HEADER = "X-EmailSequence-Delivery"
# Seconds to wait after the 1st, 2nd, ... failed attempt; the last value repeats. Each gets up to 20%
# jitter so the retries of many deliveries to one recovering endpoint do not arrive at once.
BACKOFF_SECONDS = (30, 120, 600, 1800, 3600, 7200, 14400, 28800)
JITTER = 0.2
TICK_BATCH = 500
# A task handed to the broker is not handed out again for this long (it may still wait in the queue).
REQUEUE_AFTER = timedelta(minutes=5)


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: Stripe's scheme, documented in
    docs/webhooks.md."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def payload_body(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


def backoff_delay(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """The wait after the `attempts`-th consecutive failure of a delivery (1-based), jitter included."""
    base = BACKOFF_SECONDS[min(max(attempts, 1), len(BACKOFF_SECONDS)) - 1]
    return timedelta(seconds=base * (1 + (rng or random).uniform(0, JITTER)))


def lease_duration() -> timedelta:
    # Connect, then one read timeout for the answer and one for reading its body, plus a margin.
    return timedelta(seconds=settings.WEBHOOK_CONNECT_TIMEOUT + 2 * settings.WEBHOOK_READ_TIMEOUT + 30)


def _claim(*, delivery_id: int, now: datetime) -> WebhookDelivery | None:
    """Take the lease of a due pending delivery: one conditional UPDATE, so of two workers only one
    gets it. None when it is not due, not pending, or leased by someone else."""
    claimed = WebhookDelivery.objects.filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now),
        pk=delivery_id,
        status=DeliveryStatus.PENDING,
        next_attempt_at__lte=now,
    ).update(lease_expires_at=now + lease_duration())
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


@dataclass
class AttemptOutcome:
    delivery_id: int
    sent: bool
    status: str
    status_code: int | None = None
    error: str = ""


def webhook_delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> AttemptOutcome | None:
    """Try one delivery once, if it is due and nobody else is trying it. Records the attempt and what
    comes next (success, a retry time, or failure for good); counts the endpoint's consecutive
    failures and disables it at WEBHOOK_DISABLE_AFTER_FAILURES. None when there was nothing to do."""
    now = now or timezone.now()
    delivery = _claim(delivery_id=delivery_id, now=now)
    if delivery is None:
        return None
    endpoint = delivery.endpoint
    if not endpoint.active:
        reason = f"Endpoint disabled: {endpoint.disabled_reason or 'inactive'}"
        WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, lease_expires_at=None, last_error=reason
        )
        return AttemptOutcome(delivery.pk, False, DeliveryStatus.FAILED, error=reason)
    body = payload_body(delivery.payload)
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event_type,
        DELIVERY_HEADER: str(delivery.uuid),
        SIGNATURE_HEADER: signature_header(secret=endpoint.secret, timestamp=timestamp, body=body),
    }
    result = safe_post(endpoint.url, body=body, headers=headers)
    return _record(delivery=delivery, result=result, now=now)


def _record(*, delivery: WebhookDelivery, result: PostResult, now: datetime) -> AttemptOutcome | None:
    error = result.error or ("" if result.ok else f"HTTP {result.status_code}")
    attempts = delivery.attempts + 1
    disabled_notice: tuple[WebhookEndpoint, str] | None = None
    with transaction.atomic():
        # Locked, so a delete of the endpoint meanwhile (which cascades to this row) is seen, not
        # turned into a foreign-key error at commit.
        current = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).values("status").first()
        if current is None:
            return None
        WebhookAttempt.objects.create(
            delivery=delivery, attempted_at=now, status_code=result.status_code,
            latency_ms=result.latency_ms, error=error[:500],
        )  # fmt: skip
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            attempts=attempts, lease_expires_at=None, queued_at=None, last_status_code=result.status_code,
            last_latency_ms=result.latency_ms, last_error=error,
        )  # fmt: skip
        if result.ok:
            # Delivered, even if the endpoint was disabled while this attempt was in flight.
            status = DeliveryStatus.SUCCEEDED
            WebhookDelivery.objects.filter(pk=delivery.pk).update(status=status, delivered_at=now, next_attempt_at=None)
            WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(consecutive_failures=0)
        else:
            next_at = now + backoff_delay(attempts)
            deadline = delivery.created_at + timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
            fields: dict[str, Any]
            if next_at > deadline:
                status = DeliveryStatus.FAILED
                fields = {
                    "status": status, "next_attempt_at": None,
                    "last_error": f"{error} (gave up after {attempts} attempts over "
                    f"{settings.WEBHOOK_RETRY_HOURS} hours)",
                }  # fmt: skip
            else:
                status = DeliveryStatus.PENDING
                fields = {"next_attempt_at": next_at}
            # The endpoint may have been disabled meanwhile (its pending deliveries failed): keep that.
            WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(**fields)
            disabled_notice = _failure_count(endpoint_id=delivery.endpoint_id, error=error)
        if disabled_notice is not None:
            endpoint, reason = disabled_notice
            transaction.on_commit(lambda: endpoint_disabled_notify(endpoint=endpoint, reason=reason))
    return AttemptOutcome(delivery.pk, result.ok, status, result.status_code, error)


def _failure_count(*, endpoint_id: int, error: str) -> tuple[WebhookEndpoint, str] | None:
    """Count one more failure in a row; at the limit disable the endpoint (its row locked, so two
    workers failing at once disable and notify once). Returns (endpoint, reason) when it did."""
    WebhookEndpoint.objects.filter(pk=endpoint_id).update(consecutive_failures=F("consecutive_failures") + 1)
    endpoint = WebhookEndpoint.objects.select_for_update().select_related("workspace").get(pk=endpoint_id)
    limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    if not endpoint.active or endpoint.consecutive_failures < limit:
        return None
    reason = (f"{endpoint.consecutive_failures} consecutive failed attempts (limit {limit}); last error: {error}")[:300]
    failed = webhook_endpoint_disable(endpoint=endpoint, reason=reason)
    logger.warning("Webhook endpoint %s disabled: %s (%s pending deliveries failed)", endpoint.pk, reason, failed)
    endpoint.refresh_from_db()
    return endpoint, reason


def endpoint_disabled_notify(*, endpoint: WebhookEndpoint, reason: str) -> int:
    """Email the workspace's owners and admins that the endpoint was disabled. Returns how many."""
    recipients = sorted(
        {
            email
            for email in Membership.objects.filter(
                workspace_id=endpoint.workspace_id, role__in=[Role.OWNER, Role.ADMIN]
            ).values_list("user__email", flat=True)
            if email
        }
    )
    if not recipients:
        return 0
    workspace = Workspace.objects.get(pk=endpoint.workspace_id)
    settings_url = settings.PUBLIC_BASE_URL + reverse("ui:webhook", args=[endpoint.pk])
    body = (
        f"The webhook endpoint {endpoint.url} of the workspace {workspace.name} was disabled.\n\n"
        f"Reason: {reason}\n\n"
        "Its pending deliveries were marked failed. Once the endpoint answers with a 2xx again, enable it "
        f"and retry the deliveries you need on its settings page, {settings_url}\n"
        f"(or with POST /api/v1/webhooks/{endpoint.pk}/enable).\n"
    )
    try:
        return send_mail(
            subject=f"[{workspace.name}] Webhook endpoint disabled: {endpoint.url}"[:200],
            message=body,
            from_email=None,
            recipient_list=recipients,
        )
    except Exception:  # the endpoint is disabled either way; a mail failure must not undo that
        logger.exception("Could not send the disabled notice of webhook endpoint %s", endpoint.pk)
        return 0


def webhook_deliveries_tick(*, now: datetime | None = None, batch: int = TICK_BATCH) -> int:
    """Hand out the pending deliveries whose attempt is due (not leased, not queued recently): marked
    queued and enqueued in batches, rows locked with SKIP LOCKED on PostgreSQL so two ticks never take
    the same rows. Returns how many were handed out."""
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            due = WebhookDelivery.objects.filter(
                Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now),
                Q(queued_at__isnull=True) | Q(queued_at__lt=now - REQUEUE_AFTER),
                status=DeliveryStatus.PENDING,
                next_attempt_at__lte=now,
            ).order_by("next_attempt_at")
            if connection.features.has_select_for_update_skip_locked:
                due = due.select_for_update(skip_locked=True)
            ids = list(due.values_list("pk", flat=True)[:batch])
            if not ids:
                return total
            WebhookDelivery.objects.filter(pk__in=ids).update(queued_at=now)
            attempts_queue(ids)
        total += len(ids)
        if len(ids) < batch:
            return total


def webhook_delivery_retry(*, workspace: Workspace, delivery: WebhookDelivery) -> WebhookDelivery:
    """Try a finished delivery again now. It is pending again; should that attempt fail, the usual
    backoff applies within the delivery's original retry window (past it, the delivery fails again)."""
    if delivery.workspace_id != workspace.pk:
        raise ValueError("delivery belongs to another workspace")
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery.pk)
        if delivery.status == DeliveryStatus.PENDING:
            raise Conflict("This delivery is still pending; it is tried at next_attempt_at.")
        if not delivery.endpoint.active:
            raise Conflict("The endpoint is disabled; enable it first.")
        now = timezone.now()
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = now
        delivery.queued_at = now
        delivery.lease_expires_at = None
        delivery.delivered_at = None
        delivery.save(
            update_fields=[
                "status", "next_attempt_at", "queued_at", "lease_expires_at", "delivered_at",
            ]
        )  # fmt: skip
        attempts_queue([delivery.pk])
    return delivery


def webhook_ping(*, workspace: Workspace, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a `ping` delivery to the endpoint (a test of its URL and signature check)."""
    if endpoint.workspace_id != workspace.pk:
        raise ValueError("endpoint belongs to another workspace")
    if not endpoint.active:
        raise Conflict("The endpoint is disabled; enable it first.")
    now = timezone.now()
    delivery_uuid = uuid.uuid4()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            uuid=delivery_uuid, workspace=workspace, endpoint=endpoint, event_type=PING,
            payload=envelope(
                delivery_uuid=delivery_uuid, webhook_type=PING, created=now, workspace_id=workspace.pk,
                data={"endpoint_id": endpoint.pk, "message": "A test delivery from Email Sequence."},
            ),
            created_at=now, next_attempt_at=now, queued_at=now,
        )  # fmt: skip
        attempts_queue([delivery.pk])
    return delivery
