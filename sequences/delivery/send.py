"""Sending a claimed batch over one connection and recording each outcome right after its send."""

from __future__ import annotations

import logging
import random
import smtplib
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sequences.delivery.render import BatchRenderer, BuiltEmail
from sequences.models import Message, MessageStatus
from subscribers.models import EventType, Subscriber, SubscriberStatus, Suppression, SuppressionKind
from subscribers.services import event_record, subscriber_status_change, suppression_get_or_create

logger = logging.getLogger(__name__)

RETRY_MAX_SECONDS_DEFAULT = 6 * 3600


class Outcome:
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    BOUNCED = "bounced"
    SUPPRESSED = "suppressed"
    SKIPPED = "skipped"


@dataclass
class BatchResult:
    outcomes: dict[int, str] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return sum(1 for value in self.outcomes.values() if value == outcome)


@dataclass(frozen=True)
class SendFailure:
    """How a failed send is treated: `permanent` fails the message; `bounce` also suppresses the address;
    `connection_lost` means the connection must be opened again before the next send."""

    permanent: bool
    bounce: bool
    code: int | None
    error: str
    connection_lost: bool = False


def classify_failure(exc: BaseException) -> SendFailure:
    """Temporary (4xx, timeouts, dropped connections, provider hiccups) or permanent (5xx)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        code = max(codes) if codes else None
        detail = "; ".join(f"{rcpt}: {c} {_text(msg)}" for rcpt, (c, msg) in exc.recipients.items())
        permanent = code is not None and 500 <= code < 600
        # smtplib closes the connection itself when a server answers 421.
        return SendFailure(
            permanent=permanent, bounce=permanent, code=code, error=f"recipient refused: {detail}",
            connection_lost=code == 421,
        )  # fmt: skip
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SendFailure(False, False, None, f"connection lost: {exc}", connection_lost=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        message = f"{code} {_text(exc.smtp_error)}"
        if 500 <= code < 600:
            # A refused sender is our problem, not the recipient's: fail, but do not suppress them.
            return SendFailure(True, not isinstance(exc, smtplib.SMTPSenderRefused), code, message)
        return SendFailure(False, False, code, message, connection_lost=code == 421)
    if isinstance(exc, (TimeoutError, socket.timeout, ConnectionError, OSError)):
        return SendFailure(False, False, None, f"{type(exc).__name__}: {exc}", connection_lost=True)
    try:
        from anymail.exceptions import AnymailRecipientsRefused
    except ImportError:  # pragma: no cover - anymail is a dependency
        AnymailRecipientsRefused = ()  # type: ignore[assignment,misc]
    if AnymailRecipientsRefused and isinstance(exc, AnymailRecipientsRefused):
        return SendFailure(True, True, None, f"recipient refused by the provider: {exc}")
    if isinstance(exc, smtplib.SMTPException):
        return SendFailure(False, False, None, f"{type(exc).__name__}: {exc}")
    # Provider API errors and anything unknown: try again later rather than lose the message.
    return SendFailure(False, False, None, f"{type(exc).__name__}: {exc}")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def retry_delay(*, attempts: int) -> timedelta:
    """Exponential backoff with jitter: base·2^(attempts-1), capped, and between half and all of it."""
    base = settings.DELIVERY_RETRY_BASE_SECONDS
    cap = settings.DELIVERY_RETRY_MAX_SECONDS
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))


def _mine(*, message: Message, worker: str) -> Q:
    # Outcomes are written only while this worker still holds the lease it claimed the message with.
    return Q(pk=message.pk, status=MessageStatus.SENDING, lease_owner=worker)


def _released(now: datetime) -> dict[str, Any]:
    return {"lease_owner": "", "lease_expires_at": None, "updated_at": now}


def _record_sent(*, message: Message, worker: str, built: BuiltEmail) -> str:
    now = timezone.now()
    status = getattr(built.email, "anymail_status", None)
    provider_id = getattr(status, "message_id", None) if status is not None else None
    provider_id = "" if provider_id is None else str(provider_id)[:255]
    with transaction.atomic():
        updated = Message.objects.filter(_mine(message=message, worker=worker)).update(
            status=MessageStatus.SENT, sent_at=now, provider_message_id=provider_id, last_error="",
            deferred_reason="", **_released(now),
        )  # fmt: skip
        if not updated:
            return Outcome.SKIPPED
        event_record(
            workspace=message.workspace,
            subscriber=message.subscriber,
            type=EventType.SENT,
            properties={"message_id_header": built.message_id_header, "subject": built.subject},
            occurred_at=now,
            message_id=message.pk,
            sequence_id=message.enrollment.sequence_id if message.enrollment_id and message.enrollment else None,
            step_id=message.step_id,
            dedupe_key=f"sent:{message.pk}",
        )
    return Outcome.SENT


def _record_temporary(*, message: Message, worker: str, error: str, reason: str) -> str:
    now = timezone.now()
    if message.attempts >= settings.DELIVERY_MAX_ATTEMPTS:
        updated = Message.objects.filter(_mine(message=message, worker=worker)).update(
            status=MessageStatus.FAILED, last_error=f"gave up after {message.attempts} attempts: {error}"[:5000],
            deferred_reason="", **_released(now),
        )  # fmt: skip
        return Outcome.FAILED if updated else Outcome.SKIPPED
    updated = Message.objects.filter(_mine(message=message, worker=worker)).update(
        status=MessageStatus.DEFERRED, send_after=now + retry_delay(attempts=message.attempts),
        last_error=error[:5000], deferred_reason=reason[:100], **_released(now),
    )  # fmt: skip
    return Outcome.DEFERRED if updated else Outcome.SKIPPED


def _record_not_attempted(*, message: Message, worker: str, error: str) -> str:
    # Never handed to the server (the connection could not be opened again): the claim's attempt is
    # given back and the message waits one base delay.
    now = timezone.now()
    updated = Message.objects.filter(_mine(message=message, worker=worker)).update(
        status=MessageStatus.DEFERRED, send_after=now + timedelta(seconds=settings.DELIVERY_RETRY_BASE_SECONDS),
        attempts=max(message.attempts - 1, 0), last_error=error[:5000], deferred_reason="connection", **_released(now),
    )  # fmt: skip
    return Outcome.DEFERRED if updated else Outcome.SKIPPED


def _record_permanent(*, message: Message, worker: str, failure: SendFailure) -> str:
    now = timezone.now()
    with transaction.atomic():
        updated = Message.objects.filter(_mine(message=message, worker=worker)).update(
            status=MessageStatus.FAILED, last_error=failure.error[:5000], deferred_reason="", **_released(now)
        )
        if not updated:
            return Outcome.SKIPPED
        if not failure.bounce:
            return Outcome.FAILED
        workspace, subscriber = message.workspace, message.subscriber
        event_record(
            workspace=workspace,
            subscriber=subscriber,
            type=EventType.BOUNCED,
            properties={"hard": True, "smtp_code": failure.code, "smtp_message": failure.error[:1000],
                        "source": "smtp"},
            occurred_at=now,
            message_id=message.pk,
            sequence_id=message.enrollment.sequence_id if message.enrollment_id and message.enrollment else None,
            step_id=message.step_id,
            dedupe_key=f"bounced:{message.pk}",
        )  # fmt: skip
        if subscriber.status == SubscriberStatus.ACTIVE:
            subscriber_status_change(
                workspace=workspace, subscriber=subscriber, status=SubscriberStatus.BOUNCED,
                reason=failure.error[:255], actor="delivery", source="bounce",
            )  # fmt: skip
        suppression_get_or_create(
            workspace=workspace, kind=SuppressionKind.EMAIL, value=message.to_email,
            reason=f"hard bounce: {failure.error}"[:255], source="bounce",
        )  # fmt: skip
    return Outcome.BOUNCED


def _record_suppressed(*, message: Message, worker: str, reason: str) -> str:
    now = timezone.now()
    updated = Message.objects.filter(_mine(message=message, worker=worker)).update(
        status=MessageStatus.SUPPRESSED, last_error=reason[:5000], deferred_reason="", **_released(now)
    )
    return Outcome.SUPPRESSED if updated else Outcome.SKIPPED


def _record_render_error(*, message: Message, worker: str, error: str) -> str:
    now = timezone.now()
    updated = Message.objects.filter(_mine(message=message, worker=worker)).update(
        status=MessageStatus.FAILED, last_error=f"render: {error}"[:5000], deferred_reason="", **_released(now)
    )
    return Outcome.FAILED if updated else Outcome.SKIPPED


# How many upcoming messages are checked together (subscriber status, suppressions) right before their
# sends: two queries per chunk instead of one per message, and a check at most this many sends old.
CHECK_CHUNK_SIZE = 20


def _blocked_reasons(messages: list[Message]) -> dict[int, str]:
    """Why each of these messages must not go out now, fresh from the database: two queries."""
    statuses = dict(Subscriber.objects.filter(pk__in={m.subscriber_id for m in messages}).values_list("pk", "status"))
    addresses = {m.to_email.strip().lower() for m in messages}
    domains = {address.rpartition("@")[2] for address in addresses}
    suppressed = set(
        Suppression.objects.filter(workspace_id__in={m.workspace_id for m in messages})
        .filter(Q(kind=SuppressionKind.EMAIL, value__in=addresses) | Q(kind=SuppressionKind.DOMAIN, value__in=domains))
        .values_list("workspace_id", "value")
    )
    reasons = {}
    for message in messages:
        address = message.to_email.strip().lower()
        status = statuses.get(message.subscriber_id)
        if status is None:
            reasons[message.pk] = "subscriber deleted"
        elif (message.workspace_id, address) in suppressed or (
            message.workspace_id,
            address.rpartition("@")[2],
        ) in suppressed:
            reasons[message.pk] = "address suppressed"
        elif status != SubscriberStatus.ACTIVE:
            reasons[message.pk] = f"subscriber {status}"
    return reasons


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
            result.outcomes[message.pk] = _record_render_error(message=message, worker=worker, error=str(exc))
            continue
        message.subject = email.subject[:998]
        message.from_email = email.from_email[:320]
        message.links = email.links
        message.message_id_header = email.message_id_header[:255]
        built.append((message, email))
    if built:
        Message.objects.bulk_update(
            [message for message, _ in built], ["subject", "from_email", "links", "message_id_header"]
        )
    return built


def messages_send(*, message_ids: Iterable[int], worker: str, connection: Any = None) -> BatchResult:
    """Send the messages of `message_ids` that `worker` holds a lease on, and record each outcome.

    Idempotent: a message that is not `sending` under this worker's lease (sent, failed, suppressed,
    or reclaimed by someone else) is skipped. Messages are checked once more right before their send
    (subscriber status, suppression; in chunks of CHECK_CHUNK_SIZE): an unsubscribe that arrived after
    the claim wins. The batch shares one connection, opened once; if it drops, it is opened again once
    for the rest of the batch. Each outcome is recorded right after its send.
    """
    result = BatchResult()
    messages = list(
        Message.objects.filter(pk__in=list(message_ids), status=MessageStatus.SENDING, lease_owner=worker)
        .select_related("workspace", "subscriber", "template", "step__template", "enrollment")
        .order_by("pk")
    )
    messages = [message for message in messages if _lease_valid(message)]
    if not messages:
        return result
    connection = connection or get_connection(fail_silently=False)
    pending = _render_and_store(
        messages=messages, worker=worker, renderer=BatchRenderer(), connection=connection, result=result
    )
    reopened = False
    opened = False
    blocked: dict[int, str] = {}
    checked = 0
    try:
        while pending:
            if checked == 0:
                checked = min(CHECK_CHUNK_SIZE, len(pending))
                blocked = _blocked_reasons([message for message, _ in pending[:checked]])
            message, built = pending.pop(0)
            checked -= 1
            if message.pk in blocked:
                result.outcomes[message.pk] = _record_suppressed(
                    message=message, worker=worker, reason=blocked[message.pk]
                )
                continue
            if not _lease_valid(message):
                result.outcomes[message.pk] = Outcome.SKIPPED  # the lease ran out: another worker may have it
                continue
            if not opened:
                try:
                    connection.open()
                    opened = True
                except Exception as exc:  # noqa: BLE001 - the server is unreachable: nothing in the batch was sent
                    error = f"connect: {classify_failure(exc).error}"
                    for rest, _ in [(message, built), *pending]:
                        result.outcomes[rest.pk] = _record_temporary(
                            message=rest, worker=worker, error=error, reason="connection"
                        )
                    return result
            try:
                sent = connection.send_messages([built.email])
                if not sent:
                    raise smtplib.SMTPException("the backend reported nothing sent")
            except Exception as exc:  # noqa: BLE001 - classified below; anything unknown is retried later
                failure = classify_failure(exc)
                if failure.permanent:
                    result.outcomes[message.pk] = _record_permanent(message=message, worker=worker, failure=failure)
                else:
                    result.outcomes[message.pk] = _record_temporary(
                        message=message, worker=worker, error=failure.error, reason="temporary"
                    )
                if failure.connection_lost and pending:
                    _close_quietly(connection)
                    opened = False
                    if reopened:
                        for rest, _ in pending:
                            result.outcomes[rest.pk] = _record_not_attempted(
                                message=rest, worker=worker, error=f"connection lost twice: {failure.error}"
                            )
                        return result
                    reopened = True
                continue
            result.outcomes[message.pk] = _record_sent(message=message, worker=worker, built=built)
    finally:
        if opened:
            _close_quietly(connection)
    return result


def _close_quietly(connection: Any) -> None:
    try:
        connection.close()
    except Exception:
        logger.debug("closing the email connection failed", exc_info=True)
