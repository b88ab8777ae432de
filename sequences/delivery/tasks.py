"""Celery tasks of the sender: send a batch (email queue) and the beat tick that dispatches claimable messages."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable

from celery import shared_task
from django.conf import settings
from django.db import transaction

from config.queues import Queue
from sequences.delivery.claim import messages_claim
from sequences.delivery.send import messages_send

logger = logging.getLogger(__name__)


def worker_name(kind: str) -> str:
    """A lease owner unique to this process and call: host, pid and a random suffix."""
    return f"{kind}:{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _chunks(ids: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def messages_enqueue(message_ids: Iterable[int]) -> None:
    """Hand message ids to the email queue in batches, once the current transaction has committed.

    Safe to call with ids that are already sent or claimed: the batch task claims only what is still
    claimable. If the broker cannot be reached the messages stay queued and the beat tick sends them.
    """
    ids = sorted({int(pk) for pk in message_ids})
    if not ids:
        return

    def publish() -> None:
        for chunk in _chunks(ids, settings.DELIVERY_BATCH_SIZE):
            try:
                messages_send_batch.apply_async(args=[chunk], queue=Queue.EMAIL.value)
            except Exception:
                logger.exception("Could not enqueue %d messages; the delivery tick will send them", len(chunk))
                return

    transaction.on_commit(publish)


@shared_task(name="sequences.delivery.tasks.messages_send_batch", queue=Queue.EMAIL.value, acks_late=True,
             reject_on_worker_lost=True)  # fmt: skip
def messages_send_batch(message_ids: list[int], lease_owner: str | None = None) -> dict[str, int]:
    """Send these messages. With `lease_owner` they were claimed by the dispatcher under that name;
    without, the task claims whichever of them are still claimable."""
    worker = lease_owner
    ids = [int(pk) for pk in message_ids]
    if worker is None:
        worker = worker_name("batch")
        ids = messages_claim(
            worker=worker, limit=len(ids), lease_seconds=settings.DELIVERY_LEASE_SECONDS, message_ids=ids
        )
    if not ids:
        return {}
    result = messages_send(message_ids=ids, worker=worker)
    summary: dict[str, int] = {}
    for outcome in result.outcomes.values():
        summary[outcome] = summary.get(outcome, 0) + 1
    return summary


@shared_task(name="sequences.delivery.tasks.messages_dispatch", queue=Queue.DEFAULT.value)
def messages_dispatch() -> int:
    """The beat tick: claim what is due (and expired leases) in batches and send each batch on the email
    queue. Returns how many messages were claimed."""
    claimed = 0
    for _ in range(settings.DELIVERY_DISPATCH_MAX_BATCHES):
        worker = worker_name("dispatch")
        ids = messages_claim(
            worker=worker, limit=settings.DELIVERY_BATCH_SIZE, lease_seconds=settings.DELIVERY_LEASE_SECONDS
        )
        if not ids:
            break
        claimed += len(ids)
        try:
            messages_send_batch.apply_async(args=[ids], kwargs={"lease_owner": worker}, queue=Queue.EMAIL.value)
        except Exception:
            logger.exception("Could not enqueue a batch of %d claimed messages", len(ids))
            break
        if len(ids) < settings.DELIVERY_BATCH_SIZE:
            break
    return claimed
