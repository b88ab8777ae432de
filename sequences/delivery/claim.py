"""Claiming messages with a lease, and handing them back: the crash-safe half of the sending path."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Workspace
from sequences.models import Message, MessageStatus

CLAIMABLE_STATUSES = (MessageStatus.QUEUED, MessageStatus.DEFERRED)
FINAL_STATUSES = (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.SUPPRESSED)


def _claimable(now: datetime) -> Q:
    # Queued or deferred rows whose time has come, and rows whose sender died: its lease ran out.
    return Q(status__in=CLAIMABLE_STATUSES, send_after__lte=now) | Q(
        status=MessageStatus.SENDING, lease_expires_at__lte=now
    )


def messages_claim(
    *,
    worker: str,
    limit: int,
    lease_seconds: int,
    now: datetime | None = None,
    message_ids: Iterable[int] | None = None,
) -> list[int]:
    """Lease up to `limit` claimable messages (oldest first) to `worker`; returns their ids.

    Claiming sets status `sending`, the lease owner and expiry, and counts an attempt. On PostgreSQL
    the rows are locked with SKIP LOCKED, so any number of workers claim side by side without waiting
    for, or taking, each other's rows. Sent, failed and suppressed messages are never claimed, nor those
    of a workspace whose sending is paused; with `message_ids`, only those of them that are claimable are.
    """
    now = now or timezone.now()
    expires = now + timedelta(seconds=lease_seconds)
    with transaction.atomic():
        # Paused workspaces (the guardrail, or by hand) are skipped: a small hashed subquery.
        paused = Workspace.objects.filter(sending_paused_at__isnull=False).values("pk")
        candidates = Message.objects.filter(_claimable(now)).exclude(workspace_id__in=paused)
        if message_ids is not None:
            candidates = candidates.filter(pk__in=list(message_ids))
        candidates = candidates.order_by("send_after", "pk")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        ids = list(candidates.values_list("pk", flat=True)[:limit])
        if not ids:
            return []
        # The condition is repeated so that, where rows cannot be locked (SQLite), a row another worker
        # took between our read and this write is not taken twice; what we got is read back.
        Message.objects.filter(_claimable(now), pk__in=ids).update(
            status=MessageStatus.SENDING,
            lease_owner=worker[:100],
            lease_expires_at=expires,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
        if connection.features.has_select_for_update_skip_locked:
            return sorted(ids)
        return sorted(
            Message.objects.filter(
                pk__in=ids, status=MessageStatus.SENDING, lease_owner=worker[:100], lease_expires_at=expires
            ).values_list("pk", flat=True)
        )


def message_retry(*, message: Message, now: datetime | None = None) -> bool:
    """Send a deferred or failed message again as soon as possible (the admin's "retry now").

    The attempt counter starts over. Returns False (and changes nothing) for any other status: a sent
    message is never sent again.
    """
    now = now or timezone.now()
    updated = Message.objects.filter(pk=message.pk, status__in=[MessageStatus.DEFERRED, MessageStatus.FAILED]).update(
        status=MessageStatus.QUEUED,
        send_after=now,
        attempts=0,
        lease_owner="",
        lease_expires_at=None,
        deferred_reason="",
        updated_at=now,
    )
    if updated:
        from sequences.delivery.tasks import messages_enqueue

        messages_enqueue([message.pk])
    return bool(updated)
