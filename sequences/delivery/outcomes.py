"""Outcomes of sends: classifying failures, and recording each outcome on its message (guarded by the
lease the worker claimed it with).

Every `record_*` writes only while the worker still holds the message's lease; the sent record is one
guarded write per message, right after its send, so a killed worker duplicates at most one message.
"""

from __future__ import annotations

import json
import logging
import random
import smtplib
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from sequences.delivery.render import BuiltEmail
from sequences.models import Message, MessageStatus
from subscribers.models import Event, EventType, SubscriberStatus, SuppressionKind
from subscribers.services import (
    event_record,
    events_record_many,
    subscriber_status_change,
    suppression_get_or_create,
)

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


@dataclass
class AcceptedSend:
    """A message the server accepted, about to be recorded as sent."""

    message: Message
    built: BuiltEmail
    sent_at: datetime
    provider_id: str


def accepted_send(*, message: Message, built: BuiltEmail) -> AcceptedSend:
    status = getattr(built.email, "anymail_status", None)
    provider_id = getattr(status, "message_id", None) if status is not None else None
    provider_id = "" if provider_id is None else str(provider_id)[:255]
    return AcceptedSend(message=message, built=built, sent_at=timezone.now(), provider_id=provider_id)


def update_from_values(
    *,
    assignments: str,
    columns: list[tuple[str, str]],
    rows: list[list[Any]],
    where: str = "",
    params: list[Any] | None = None,
    returning: bool = False,
) -> set[int]:
    """PostgreSQL: one `UPDATE message AS m SET ... FROM (VALUES ...) AS v (...) WHERE m.id = v.id` for
    rows that each carry their own values (Django's bulk_update builds a CASE per column and row, which
    costs more than the send itself). `columns` are (name, SQL type), the first the message id;
    `assignments` and `where` refer to `m` and `v`; `params` fill %s in assignments, then in where.
    Returns the updated ids when `returning`."""
    table = db_connection.ops.quote_name(Message._meta.db_table)
    row_sql = "(" + ", ".join(f"%s::{sql_type}" for _, sql_type in columns) + ")"
    names = ", ".join(name for name, _ in columns)
    sql = (
        f"UPDATE {table} AS m SET {assignments} FROM (VALUES {', '.join([row_sql] * len(rows))}) AS v ({names}) "
        f"WHERE m.id = v.{columns[0][0]}{' AND ' + where if where else ''}{' RETURNING m.id' if returning else ''}"
    )
    values = [value for row in rows for value in row]
    params = params or []
    assignment_params = params[: assignments.count("%s")]
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [*assignment_params, *values, *params[len(assignment_params) :]])
        return {row[0] for row in cursor.fetchall()} if returning else set()


def record_sent(*, accepted: AcceptedSend, worker: str, dispatch: list[Event] | None = None) -> str:
    """Record one accepted message right after its send: a guarded UPDATE and its `sent` event in one
    transaction, so the window for a duplicate after a crash is one message. A message another worker
    took over meanwhile is skipped (and gets no event).

    On PostgreSQL both are one statement (`WITH u AS (UPDATE ... RETURNING ...) INSERT INTO event ...`:
    one round trip, atomic on its own) and the event is appended to `dispatch`, whose events the caller
    hands to the event handlers once per chunk (after commit). Elsewhere (SQLite) the ORM path, and the
    handlers get each event after its own commit."""
    message = accepted.message
    properties = {"message_id_header": accepted.built.message_id_header, "subject": accepted.built.subject}
    if db_connection.vendor == "postgresql" and dispatch is not None:
        event_id = _sent_statement(accepted=accepted, worker=worker, properties=properties)
        if event_id is None:
            return Outcome.SKIPPED
        dispatch.append(
            Event(
                pk=event_id, workspace=message.workspace, subscriber=message.subscriber, type=EventType.SENT,
                name=str(EventType.SENT), properties=properties, occurred_at=accepted.sent_at,
                recorded_at=accepted.sent_at, message_id=message.pk, sequence_id=_sequence_id(message),
                step_id=message.step_id, campaign_id=message.campaign_id,
            )
        )  # fmt: skip
        return Outcome.SENT
    with transaction.atomic():
        updated = Message.objects.filter(_mine(message=message, worker=worker)).update(
            status=MessageStatus.SENT, sent_at=accepted.sent_at, provider_message_id=accepted.provider_id,
            last_error="", deferred_reason="", **_released(accepted.sent_at),
        )  # fmt: skip
        if not updated:
            return Outcome.SKIPPED
        events_record_many(
            workspace=message.workspace,
            events=[
                Event(
                    workspace=message.workspace,
                    subscriber=message.subscriber,
                    type=EventType.SENT,
                    properties=properties,
                    occurred_at=accepted.sent_at,
                    message_id=message.pk,
                    sequence_id=_sequence_id(message),
                    step_id=message.step_id,
                    campaign_id=message.campaign_id,
                )
            ],
        )
    return Outcome.SENT


_RECORD_SENT_SQL: str | None = None


def _sent_sql() -> str:
    global _RECORD_SENT_SQL
    if _RECORD_SENT_SQL is None:
        quote = db_connection.ops.quote_name
        message_table, event_table = quote(Message._meta.db_table), quote(Event._meta.db_table)

        def column(model: Any, name: str) -> str:
            return quote(model._meta.get_field(name).column)

        def m(name: str) -> str:
            return column(Message, name)

        def e(name: str) -> str:
            return column(Event, name)

        inserted = ", ".join(
            e(name) for name in ("workspace", "subscriber", "type", "name", "properties", "occurred_at", "recorded_at",
                                 "message_id", "sequence_id", "step_id", "campaign_id", "currency")
        )  # fmt: skip
        _RECORD_SENT_SQL = (
            f"WITH u AS (UPDATE {message_table} SET {m('status')} = %s, {m('sent_at')} = %s, "
            f"{m('provider_message_id')} = %s, {m('last_error')} = '', {m('deferred_reason')} = '', "
            f"{m('lease_owner')} = '', {m('lease_expires_at')} = NULL, {m('updated_at')} = %s "
            f"WHERE {m('id')} = %s AND {m('status')} = %s AND {m('lease_owner')} = %s "
            f"RETURNING {m('id')} AS id, {m('workspace')} AS workspace_id, {m('subscriber')} AS subscriber_id, "
            f"{m('step')} AS step_id, {m('campaign')} AS campaign_id) "
            f"INSERT INTO {event_table} ({inserted}) "
            "SELECT u.workspace_id, u.subscriber_id, %s, %s, %s::jsonb, %s, %s, u.id, %s::bigint, u.step_id, "
            "u.campaign_id, '' FROM u RETURNING id"
        )
    return _RECORD_SENT_SQL


def _sent_statement(*, accepted: AcceptedSend, worker: str, properties: dict[str, Any]) -> int | None:
    """PostgreSQL: the guarded UPDATE and the INSERT of its event as one statement; the event's id, or
    None when the message is no longer this worker's."""
    message, at = accepted.message, accepted.sent_at
    with db_connection.cursor() as cursor:
        cursor.execute(
            _sent_sql(),
            [
                MessageStatus.SENT.value, at, accepted.provider_id, at, message.pk, MessageStatus.SENDING.value, worker,
                EventType.SENT.value, str(EventType.SENT), json.dumps(properties), at, at, _sequence_id(message),
            ],
        )  # fmt: skip
        row = cursor.fetchone()
    return None if row is None else row[0]


def _sequence_id(message: Message) -> int | None:
    return message.enrollment.sequence_id if message.enrollment_id and message.enrollment else None


def record_temporary(*, message: Message, worker: str, error: str, reason: str) -> str:
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


def record_not_attempted(*, message: Message, worker: str, error: str) -> str:
    # Never handed to the server (the connection could not be opened again): the claim's attempt is
    # given back and the message waits one base delay.
    now = timezone.now()
    updated = Message.objects.filter(_mine(message=message, worker=worker)).update(
        status=MessageStatus.DEFERRED, send_after=now + timedelta(seconds=settings.DELIVERY_RETRY_BASE_SECONDS),
        attempts=max(message.attempts - 1, 0), last_error=error[:5000], deferred_reason="connection", **_released(now),
    )  # fmt: skip
    return Outcome.DEFERRED if updated else Outcome.SKIPPED


def record_held_back(*, held: list[tuple[Message, str, datetime]], worker: str, error: str = "") -> dict[int, str]:
    """Hand messages that were not attempted back to the outbox (pace, frequency cap, a pause): deferred
    until their own time, with their reason, and the claim's attempt given back. One UPDATE."""
    if not held:
        return {}
    now = timezone.now()
    by_pk = {message.pk: (reason, send_after) for message, reason, send_after in held}
    if len(by_pk) == 1:
        [(reason, send_after)] = by_pk.values()
        send_after_value: Any = send_after
        reason_value: Any = reason
    else:
        send_after_value = Case(*[When(pk=pk, then=Value(at)) for pk, (_, at) in by_pk.items()])
        reason_value = Case(*[When(pk=pk, then=Value(why)) for pk, (why, _) in by_pk.items()])
    updated = set(
        Message.objects.filter(pk__in=list(by_pk), status=MessageStatus.SENDING, lease_owner=worker).values_list(
            "pk", flat=True
        )
    )
    # The last error stays: it is still the last thing that went wrong with the message.
    extra = {"last_error": error[:5000]} if error else {}
    Message.objects.filter(pk__in=updated, status=MessageStatus.SENDING, lease_owner=worker).update(
        status=MessageStatus.DEFERRED, send_after=send_after_value, deferred_reason=reason_value,
        attempts=Greatest(F("attempts") - 1, 0), **extra, **_released(now),
    )  # fmt: skip
    return {pk: Outcome.DEFERRED if pk in updated else Outcome.SKIPPED for pk in by_pk}


def record_permanent(*, message: Message, worker: str, failure: SendFailure) -> str:
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
            sequence_id=_sequence_id(message),
            step_id=message.step_id,
            campaign_id=message.campaign_id,
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


def record_suppressed(*, message: Message, worker: str, reason: str) -> str:
    now = timezone.now()
    updated = Message.objects.filter(_mine(message=message, worker=worker)).update(
        status=MessageStatus.SUPPRESSED, last_error=reason[:5000], deferred_reason="", **_released(now)
    )
    return Outcome.SUPPRESSED if updated else Outcome.SKIPPED


def record_render_error(*, message: Message, worker: str, error: str) -> str:
    now = timezone.now()
    updated = Message.objects.filter(_mine(message=message, worker=worker)).update(
        status=MessageStatus.FAILED, last_error=f"render: {error}"[:5000], deferred_reason="", **_released(now)
    )
    return Outcome.FAILED if updated else Outcome.SKIPPED
