"""Sending a claimed batch over one connection, in checked and paced chunks, recording each send at once."""

from __future__ import annotations

import functools
import json
import logging
import re
import smtplib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPEmailBackend
from django.core.mail.message import sanitize_address
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from sequences.delivery.guardrail import workspace_guardrail_check
from sequences.delivery.outcomes import (
    BatchResult,
    Outcome,
    accepted_send,
    classify_failure,
    record_held_back,
    record_not_attempted,
    record_permanent,
    record_render_error,
    record_sent,
    record_suppressed,
    record_temporary,
    update_from_values,
)
from sequences.delivery.pace import PaceItem, Pacer, Reason
from sequences.delivery.render import BatchRenderer, BuiltEmail, smtp_bytes
from sequences.models import Campaign, CampaignStatus, Message, MessageStatus
from subscribers.models import Event, Subscriber, SubscriberStatus, Suppression, SuppressionKind
from subscribers.selectors import awaiting_confirmation
from subscribers.services import events_dispatch

logger = logging.getLogger(__name__)

# How many upcoming messages are checked together (subscriber status, suppressions, pauses, campaign
# status, frequency cap) and paced together (one Redis call): a handful of queries per chunk instead of
# per message, and checks at most this many sends old. Each send is still recorded on its own, at once.
CHECK_CHUNK_SIZE = 20

# Messages held back by a paused workspace or campaign are looked at again after this long at the latest;
# resuming the workspace (or the campaign) queues them again at once.
PAUSED_RECHECK = timedelta(days=1)


@dataclass
class ChunkCheck:
    """What the fresh look at a chunk found: messages to suppress (reason), to hand back (reason, until
    when), and each workspace's current sending rate."""

    suppressed: dict[int, str] = field(default_factory=dict)
    held: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    rates: dict[int, int] = field(default_factory=dict)


def _high_priority(message: Message) -> bool:
    return bool(
        (message.step_id and message.step and message.step.high_priority)
        or (message.campaign_id and message.campaign and message.campaign.high_priority)
    )


def _chunk_check(messages: list[Message], now: datetime) -> ChunkCheck:
    """Why each of these messages must not go out now, fresh from the database: two queries, one more
    when campaign messages are among them, one more when a frequency cap applies."""
    check = ChunkCheck()
    rows = (
        Subscriber.objects.filter(pk__in={m.subscriber_id for m in messages})
        .annotate(awaiting=ExpressionWrapper(awaiting_confirmation(), output_field=BooleanField()))
        .values_list(
            "pk", "status", "awaiting", "workspace_id", "workspace__sending_paused_at",
            "workspace__sending_rate_per_second", "workspace__frequency_cap_count", "workspace__frequency_cap_hours",
        )
    )  # fmt: skip
    statuses: dict[int, str] = {}
    awaiting: set[int] = set()
    paused: set[int] = set()
    caps: dict[int, tuple[int, int]] = {}
    for pk, subscriber_status, is_awaiting, workspace_id, paused_at, rate, cap_count, cap_hours in rows:
        statuses[pk] = subscriber_status
        if is_awaiting:
            awaiting.add(pk)
        check.rates[workspace_id] = rate
        if paused_at is not None:
            paused.add(workspace_id)
        if cap_count:
            caps[workspace_id] = (cap_count, cap_hours)
    addresses = {m.to_email.strip().lower() for m in messages}
    domains = {address.rpartition("@")[2] for address in addresses}
    suppressed = set(
        Suppression.objects.filter(workspace_id__in={m.workspace_id for m in messages})
        .filter(Q(kind=SuppressionKind.EMAIL, value__in=addresses) | Q(kind=SuppressionKind.DOMAIN, value__in=domains))
        .values_list("workspace_id", "value")
    )
    campaign_ids = {m.campaign_id for m in messages if m.campaign_id}
    campaigns = dict(Campaign.objects.filter(pk__in=campaign_ids).values_list("pk", "status")) if campaign_ids else {}
    capped: list[Message] = []
    for message in messages:
        address = message.to_email.strip().lower()
        status = statuses.get(message.subscriber_id)
        campaign_status: str | None = campaigns.get(message.campaign_id) if message.campaign_id else None
        if status is None:
            check.suppressed[message.pk] = "subscriber deleted"
        elif (message.workspace_id, address) in suppressed or (
            message.workspace_id,
            address.rpartition("@")[2],
        ) in suppressed:
            check.suppressed[message.pk] = "address suppressed"
        elif status != SubscriberStatus.ACTIVE:
            check.suppressed[message.pk] = f"subscriber {status}"
        elif message.subscriber_id in awaiting:
            check.suppressed[message.pk] = "subscriber awaiting double opt-in confirmation"
        elif message.campaign_id and campaign_status in (None, CampaignStatus.CANCELLED):
            check.suppressed[message.pk] = "campaign cancelled" if campaign_status else "campaign deleted"
        elif message.workspace_id in paused:
            check.held[message.pk] = (Reason.WORKSPACE_PAUSED, now + PAUSED_RECHECK)
        elif campaign_status == CampaignStatus.PAUSED:
            check.held[message.pk] = (Reason.CAMPAIGN_PAUSED, now + PAUSED_RECHECK)
        elif message.workspace_id in caps and not _high_priority(message):
            capped.append(message)
    if capped:
        _frequency_cap_check(capped, caps=caps, now=now, check=check)
    return check


def _frequency_cap_check(
    messages: list[Message], *, caps: dict[int, tuple[int, int]], now: datetime, check: ChunkCheck
) -> None:
    """Hold back each message whose subscriber already got `count` emails in the last `hours` (one query),
    until the oldest of those leaves the window. Messages of this chunk that go count as sent now."""
    since = now - timedelta(hours=max(hours for _, hours in caps.values()))
    sent: dict[int, list[datetime]] = {}
    for subscriber_id, sent_at in Message.objects.filter(
        subscriber_id__in={m.subscriber_id for m in messages}, status=MessageStatus.SENT, sent_at__gt=since
    ).values_list("subscriber_id", "sent_at"):
        if sent_at is not None:
            sent.setdefault(subscriber_id, []).append(sent_at)
    for message in messages:
        count, hours = caps[message.workspace_id]
        window = timedelta(hours=hours)
        times = sorted(at for at in sent.get(message.subscriber_id, []) if at > now - window)
        if len(times) >= count:
            # Sending becomes possible when only count-1 of them are left in the window.
            check.held[message.pk] = (Reason.FREQUENCY_CAP, times[len(times) - count] + window)
        else:
            sent.setdefault(message.subscriber_id, []).append(now)


def _lease_valid(message: Message) -> bool:
    # Another worker can take a message over only after its lease expired: the clock says enough.
    return message.lease_expires_at is not None and message.lease_expires_at > timezone.now()


def _render_and_store(
    *, messages: list[Message], worker: str, renderer: BatchRenderer, connection: Any, result: BatchResult
) -> list[tuple[Message, BuiltEmail]]:
    """Render every message of the batch; store each one's Message-ID, subject and link targets in one
    query before anything is sent (a resend after a crash carries the same Message-ID, and the links
    resolve from the first second)."""
    built: list[tuple[Message, BuiltEmail]] = []
    for message in messages:
        try:
            email = renderer.build(message=message, connection=connection)
        except Exception as exc:  # noqa: BLE001 - a template that cannot render fails its message, not the batch
            logger.warning("Message %s could not be rendered: %s", message.pk, exc)
            result.outcomes[message.pk] = record_render_error(message=message, worker=worker, error=str(exc))
            continue
        message.subject = email.subject[:998]
        message.from_email = email.from_email[:320]
        message.links = email.links
        message.message_id_header = email.message_id_header[:255]
        built.append((message, email))
    if built and db_connection.vendor == "postgresql":
        update_from_values(
            assignments="subject = v.subject, from_email = v.from_email, links = v.links, "
            "message_id_header = v.message_id_header",
            columns=[("id", "bigint"), ("subject", "varchar"), ("from_email", "varchar"), ("links", "jsonb"),
                     ("message_id_header", "varchar")],
            rows=[[m.pk, m.subject, m.from_email, json.dumps(m.links), m.message_id_header] for m, _ in built],
        )  # fmt: skip
    elif built:
        Message.objects.bulk_update(
            [message for message, _ in built], ["subject", "from_email", "links", "message_id_header"]
        )
    return built


def _domain(address: str) -> str:
    return address.strip().lower().rpartition("@")[2]


class _Batch:
    """The state of one messages_send call: the connection, the pace, and the chunk being recorded."""

    def __init__(self, *, worker: str, connection: Any, result: BatchResult) -> None:
        self.worker = worker
        self.connection = connection
        self.result = result
        self.opened = False
        self.reopened = False
        self.pacer: Pacer | None = None
        self.waited = 0.0
        self.domain_failures: dict[str, int] = {}
        self.domain_successes: dict[str, int] = {}
        self.bounced_workspaces: dict[int, Any] = {}
        # `sent` events recorded by one statement each (PostgreSQL), handed to the event handlers per chunk.
        self.sent_events: list[Event] = []

    def pace(self, ready: list[tuple[Message, BuiltEmail]], rates: dict[int, int]) -> list[tuple[Message, BuiltEmail]]:
        """Take tokens for these messages; wait briefly when the wait is short, else hand them back
        until their tokens will be there. Returns the messages that may go now."""
        if not ready:
            return []
        items = {
            message.pk: PaceItem(
                message_id=message.pk,
                workspace_id=message.workspace_id,
                workspace_rate=rates.get(message.workspace_id, message.workspace.sending_rate_per_second),
                domain=_domain(message.to_email),
            )
            for message, _ in ready
        }
        wait_max = float(settings.DELIVERY_RATE_WAIT_MAX_SECONDS)
        wait_budget = settings.DELIVERY_LEASE_SECONDS / 10  # a batch must finish well within its lease
        go: list[tuple[Message, BuiltEmail]] = []
        held: list[tuple[Message, str, datetime]] = []
        trying = ready
        try:
            self.pacer = self.pacer or Pacer()
            while trying:
                denials = self.pacer.acquire([items[message.pk] for message, _ in trying])
                go += [pair for pair in trying if pair[0].pk not in denials]
                denied = [pair for pair in trying if pair[0].pk in denials]
                longest = max((denials[m.pk].wait for m, _ in denied if denials[m.pk].wait <= wait_max), default=0.0)
                if denied and longest > 0 and self.waited + longest <= wait_budget:
                    short = [(m, b) for m, b in denied if denials[m.pk].wait <= wait_max]
                else:
                    short = []
                now = timezone.now()
                waiting = {message.pk for message, _ in short}
                for message, _ in denied:
                    if message.pk not in waiting:
                        denial = denials[message.pk]
                        held.append((message, denial.reason, now + timedelta(seconds=max(denial.wait, 0.001))))
                        self.pacer.handed_back([items[message.pk]])
                if not short:
                    break
                time.sleep(longest)
                self.waited += longest
                trying = short
        except redis.RedisError as exc:
            # Without Redis the pace cannot be kept: nothing more goes out until it answers again.
            logger.error("Redis unavailable, the sending pace cannot be kept: %s", exc)
            error = f"pace: Redis unavailable ({type(exc).__name__})"
            # Messages already granted still go; those already handed back keep their own reason.
            decided = {message.pk for message, _ in go} | {message.pk for message, _, _ in held}
            retry_at = timezone.now() + timedelta(seconds=settings.DELIVERY_RETRY_BASE_SECONDS)
            unavailable = [(m, Reason.RATE_LIMIT, retry_at) for m, _ in ready if m.pk not in decided]
            self.result.outcomes.update(record_held_back(held=unavailable, worker=self.worker, error=error))
        self.result.outcomes.update(record_held_back(held=held, worker=self.worker))
        return go

    def flush(self) -> None:
        """After a chunk: tell the pace how domains answered, and check the guardrail of workspaces that
        had bounces, and hand the chunk's `sent` events to the event handlers."""
        events, self.sent_events = self.sent_events, []
        if events:
            transaction.on_commit(lambda: events_dispatch(events))
        failures, self.domain_failures = self.domain_failures, {}
        successes, self.domain_successes = self.domain_successes, {}
        if self.pacer is not None and (failures or successes):
            try:
                self.pacer.feedback(failures=failures, successes=successes)
            except redis.RedisError as exc:
                logger.error("Redis unavailable, domain backoff not updated: %s", exc)
        bounced, self.bounced_workspaces = self.bounced_workspaces, {}
        for workspace in bounced.values():
            workspace_guardrail_check(workspace=workspace)

    def send(self, message: Message, built: BuiltEmail, rest: list[tuple[Message, BuiltEmail]]) -> bool:
        """Send one message and note its outcome; False when the rest of the batch cannot be sent
        (and has been handed back)."""
        if not _lease_valid(message):
            self.result.outcomes[message.pk] = Outcome.SKIPPED  # the lease ran out: another worker may have it
            return True
        if not self.opened:
            try:
                self.connection.open()
                self.opened = True
            except Exception as exc:  # noqa: BLE001 - the server is unreachable: nothing in the batch was sent
                error = f"connect: {classify_failure(exc).error}"
                for pending, _ in [(message, built), *rest]:
                    self.result.outcomes[pending.pk] = record_temporary(
                        message=pending, worker=self.worker, error=error, reason="connection"
                    )
                return False
        domain = _domain(message.to_email)
        try:
            sent = _smtp_send(self.connection, built)
            if sent is None:
                sent = self.connection.send_messages([built.email])
            if not sent:
                raise smtplib.SMTPException("the backend reported nothing sent")
        except Exception as exc:  # noqa: BLE001 - classified below; anything unknown is retried later
            failure = classify_failure(exc)
            if failure.code is not None and 400 <= failure.code < 500:
                self.domain_failures[domain] = self.domain_failures.get(domain, 0) + 1
            if failure.permanent:
                outcome = record_permanent(message=message, worker=self.worker, failure=failure)
                self.result.outcomes[message.pk] = outcome
                if outcome == Outcome.BOUNCED:
                    self.bounced_workspaces[message.workspace_id] = message.workspace
            else:
                self.result.outcomes[message.pk] = record_temporary(
                    message=message, worker=self.worker, error=failure.error, reason="temporary"
                )
            if failure.connection_lost and rest:
                _close_quietly(self.connection)
                self.opened = False
                if self.reopened:
                    for pending, _ in rest:
                        self.result.outcomes[pending.pk] = record_not_attempted(
                            message=pending, worker=self.worker, error=f"connection lost twice: {failure.error}"
                        )
                    return False
                self.reopened = True
            return True
        self.result.outcomes[message.pk] = record_sent(
            accepted=accepted_send(message=message, built=built), worker=self.worker, dispatch=self.sent_events
        )
        self.domain_successes[domain] = self.domain_successes.get(domain, 0) + 1
        return True


_SMTP_BACKEND_METHODS = (SMTPEmailBackend.send_messages, SMTPEmailBackend._send)  # type: ignore[attr-defined]


def _smtp_send(connection: Any, built: BuiltEmail) -> bool | None:
    """Django's SMTP backend, its connection open: send the message as bytes built directly
    (render.smtp_bytes) over that connection, as the backend's own _send would. None when this does not
    apply (another backend, a subclass that changes sending, a message smtp_bytes leaves to the backend)."""
    backend = type(connection)
    if (
        not isinstance(connection, SMTPEmailBackend)
        or (backend.send_messages, backend._send) != _SMTP_BACKEND_METHODS  # type: ignore[attr-defined]
        or connection.connection is None
    ):
        return None
    email = built.email
    recipients = email.recipients()
    if not recipients:
        return False
    data = smtp_bytes(email)
    if data is None:
        return None
    encoding = email.encoding or settings.DEFAULT_CHARSET
    with connection._lock:
        connection.connection.sendmail(
            _sanitized(email.from_email, encoding), [_sanitized(a, encoding) for a in recipients], data
        )
    return True


# A plain ASCII address, which sanitize_address gives back unchanged.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


@functools.lru_cache(maxsize=256)
def _sanitized_cached(address: str, encoding: str) -> str:
    return sanitize_address(address, encoding)


def _sanitized(address: str, encoding: str) -> str:
    """sanitize_address, as Django's SMTP backend applies it to the envelope; the from address (the same
    for a whole batch) is remembered, a plain recipient address is taken as it is."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return address
    return _sanitized_cached(address, encoding)


def messages_send(*, message_ids: Iterable[int], worker: str, connection: Any = None) -> BatchResult:
    """Send the messages of `message_ids` that `worker` holds a lease on, and record each outcome.

    Idempotent: a message that is not `sending` under this worker's lease (sent, failed, suppressed,
    or reclaimed by someone else) is skipped. Messages go in chunks of CHECK_CHUNK_SIZE; each chunk is
    checked once more right before its sends (subscriber status, suppression, a cancelled or paused
    campaign, a paused workspace, the frequency cap: an unsubscribe that arrived after the claim wins),
    then paced (workspace and domain rates in Redis) and sent, each send recorded right after it. The
    batch shares one connection, opened once; if it drops, it is opened again once for the rest.
    """
    result = BatchResult()
    messages = list(
        Message.objects.filter(pk__in=list(message_ids), status=MessageStatus.SENDING, lease_owner=worker)
        .select_related("workspace", "subscriber", "template", "step__template", "enrollment", "campaign")
        .order_by("pk")
    )
    messages = [message for message in messages if _lease_valid(message)]
    if not messages:
        return result
    connection = connection or get_connection(fail_silently=False)
    pending = _render_and_store(
        messages=messages, worker=worker, renderer=BatchRenderer(), connection=connection, result=result
    )
    batch = _Batch(worker=worker, connection=connection, result=result)
    try:
        while pending:
            chunk, pending = pending[:CHECK_CHUNK_SIZE], pending[CHECK_CHUNK_SIZE:]
            check = _chunk_check([message for message, _ in chunk], timezone.now())
            ready: list[tuple[Message, BuiltEmail]] = []
            held: list[tuple[Message, str, datetime]] = []
            for message, built in chunk:
                if message.pk in check.suppressed:
                    result.outcomes[message.pk] = record_suppressed(
                        message=message, worker=worker, reason=check.suppressed[message.pk]
                    )
                elif message.pk in check.held:
                    held.append((message, *check.held[message.pk]))
                else:
                    ready.append((message, built))
            result.outcomes.update(record_held_back(held=held, worker=worker))
            go = batch.pace(ready, check.rates)
            for position, (message, built) in enumerate(go):
                if not batch.send(message, built, rest=go[position + 1 :] + pending):
                    return result
            batch.flush()
    finally:
        batch.flush()
        if batch.opened:
            _close_quietly(connection)
    return result


def _close_quietly(connection: Any) -> None:
    try:
        connection.close()
    except Exception:
        logger.debug("closing the email connection failed", exc_info=True)
