"""Double opt-in: the confirmation email (sent by a task on the email queue once the subscription has
committed), the signed confirmation link, and the service behind the public subscribe form.

Who gets a confirmation email: a subscriber who becomes *pending* on a double opt-in list through the
API (create with lists, join lists, add list members, the bulk upsert) or the public form. A CSV
import never mails anyone: its people stay pending until confirmed another way (API, admin).
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.utils import formataddr
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string

from config.queues import Queue
from core.errors import Conflict, NotFound
from sequences.delivery.outcomes import classify_failure, retry_delay
from sequences.tokens import confirm_token_make, confirm_token_read
from subscribers.links import mailing_list_id_from_subscribe_token
from subscribers.models import (
    Event,
    EventType,
    ListMembership,
    MailingList,
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
    SuppressionKind,
)
from subscribers.selectors import suppression_match
from subscribers.services import (
    list_membership_add,
    subscriber_confirm,
    subscriber_create,
    subscriber_row_clean,
    subscriber_status_change,
    suppression_get_or_create,
)
from subscribers.services.subscribers import subscribers_by_email

logger = logging.getLogger(__name__)

CONFIRM_PATH = "confirm"
SOURCE_FORM = "form"
SOURCE_LINK = "link"
# Subscriptions from these sources never trigger a confirmation email.
SILENT_SOURCES = frozenset({"import"})


class SendOutcome:
    SENT = "sent"
    SKIPPED = "skipped"  # nothing to confirm any more (confirmed, unsubscribed, deleted, suppressed)
    THROTTLED = "throttled"  # one was sent (or is being sent) within OPTIN_CONFIRM_RESEND_MINUTES
    FAILED = "failed"  # refused for good by the server; a refused recipient is marked bounced


def confirm_url(*, subscriber_id: int, list_id: int | None) -> str:
    """The absolute confirmation link; it expires after OPTIN_CONFIRM_MAX_AGE_DAYS."""
    token = confirm_token_make(subscriber_id=subscriber_id, list_id=list_id)
    return f"{settings.PUBLIC_BASE_URL}/{CONFIRM_PATH}/{token}"


def _resend_key(subscriber_id: int, list_id: int) -> str:
    return f"optin:confirmation-sent:{subscriber_id}:{list_id}"


def optin_confirmation_build(*, subscriber: Subscriber, mailing_list: MailingList, connection: Any = None) -> Any:
    """The confirmation email: from the workspace's identity, a subject and text/HTML body naming the
    list, and the signed confirmation link."""
    workspace = subscriber.workspace
    context = {
        "workspace_name": workspace.name,
        "list_name": mailing_list.name,
        "first_name": subscriber.first_name,
        "confirm_url": confirm_url(subscriber_id=subscriber.pk, list_id=mailing_list.pk),
        "max_age_days": settings.OPTIN_CONFIRM_MAX_AGE_DAYS,
        "postal_address": workspace.postal_address,
    }
    sender = formataddr((workspace.from_name or workspace.name, workspace.from_email or settings.DEFAULT_FROM_EMAIL))
    email = EmailMultiAlternatives(
        subject=f"Confirm your subscription to {mailing_list.name}",
        body=render_to_string("sequences/optin_confirm_email.txt", context),
        from_email=sender,
        to=[subscriber.email],
        reply_to=[workspace.reply_to] if workspace.reply_to else None,
        headers={"Auto-Submitted": "auto-generated"},
        connection=connection,
    )
    email.attach_alternative(render_to_string("sequences/optin_confirm_email.html", context), "text/html")
    return email


def optin_confirmation_send(*, subscriber_id: int, list_id: int, connection: Any = None) -> str:
    """Send the confirmation email for this subscriber's pending membership of this list.

    Idempotent: it checks the state first (still pending on the list, active, not suppressed) and sends
    at most one email per subscriber and list in OPTIN_CONFIRM_RESEND_MINUTES (a Redis key taken
    before the send). A temporary failure releases the key and raises, for the task to retry; a
    permanent one is logged (and a refused recipient is marked bounced and suppressed).
    """
    subscriber = Subscriber.objects.select_related("workspace").filter(pk=subscriber_id).first()
    mailing_list = MailingList.objects.filter(pk=list_id).first()
    if subscriber is None or mailing_list is None or mailing_list.workspace_id != subscriber.workspace_id:
        return SendOutcome.SKIPPED
    if subscriber.status != SubscriberStatus.ACTIVE:
        return SendOutcome.SKIPPED
    pending = ListMembership.objects.filter(
        subscriber=subscriber, mailing_list=mailing_list, status=MembershipStatus.PENDING
    ).exists()
    if not pending or suppression_match(workspace=subscriber.workspace, email=subscriber.email) is not None:
        return SendOutcome.SKIPPED
    key = _resend_key(subscriber.pk, mailing_list.pk)
    if not cache.add(key, "1", timeout=settings.OPTIN_CONFIRM_RESEND_MINUTES * 60):
        return SendOutcome.THROTTLED
    email = optin_confirmation_build(subscriber=subscriber, mailing_list=mailing_list, connection=connection)
    try:
        if not email.send(fail_silently=False):
            raise smtplib.SMTPException("the backend reported nothing sent")
    except Exception as exc:
        failure = classify_failure(exc)
        if not failure.permanent:
            cache.delete(key)
            raise
        logger.warning("Confirmation email to subscriber %s refused: %s", subscriber.pk, failure.error)
        if failure.bounce:
            _bounced(subscriber, failure.error)
        return SendOutcome.FAILED
    logger.info("Confirmation email sent to subscriber %s for list %s", subscriber.pk, mailing_list.pk)
    return SendOutcome.SENT


@transaction.atomic
def _bounced(subscriber: Subscriber, error: str) -> None:
    workspace = subscriber.workspace
    subscriber_status_change(
        workspace=workspace, subscriber=subscriber, status=SubscriberStatus.BOUNCED, reason=error[:255],
        actor="optin", source="bounce",
    )  # fmt: skip
    suppression_get_or_create(
        workspace=workspace, kind=SuppressionKind.EMAIL, value=subscriber.email,
        reason=f"hard bounce: {error}"[:255], source="bounce",
    )  # fmt: skip


@shared_task(
    name="sequences.optin.optin_confirmation_send_task", bind=True, queue=Queue.EMAIL.value, acks_late=True,
    reject_on_worker_lost=True, ignore_result=True,
)  # fmt: skip
def optin_confirmation_send_task(self: Any, subscriber_id: int, list_id: int) -> str:
    """Send one confirmation email; temporary failures retry with the sender's backoff
    (DELIVERY_RETRY_BASE_SECONDS doubling, at most DELIVERY_MAX_ATTEMPTS attempts)."""
    try:
        return optin_confirmation_send(subscriber_id=subscriber_id, list_id=list_id)
    except Exception as exc:  # noqa: BLE001 - temporary failures (permanent ones return FAILED): retried
        countdown = retry_delay(attempts=self.request.retries + 1).total_seconds()
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.DELIVERY_MAX_ATTEMPTS - 1)


def _enqueue(subscriber_id: int, list_id: int) -> None:
    try:
        optin_confirmation_send_task.apply_async(
            kwargs={"subscriber_id": subscriber_id, "list_id": list_id}, queue=Queue.EMAIL.value
        )
    except Exception:  # the broker is down: the subscriber can submit the form again
        logger.exception("Could not enqueue the confirmation email of subscriber %s", subscriber_id)


def optin_confirmation_request(*, subscriber_id: int, list_id: int) -> None:
    """Send the confirmation email once the current transaction commits (nothing if it rolls back)."""
    transaction.on_commit(lambda: _enqueue(subscriber_id, list_id))


def optin_events_handler(events: Sequence[Event]) -> None:
    """An event handler (registered in SequencesConfig.ready; runs after commit): every `subscribed`
    event that left someone pending on a double opt-in list sends them the confirmation email, except
    for imports."""
    wanted: set[tuple[int, int]] = set()
    for event in events:
        properties = event.properties if isinstance(event.properties, dict) else {}
        list_id = properties.get("list_id")
        if (
            event.type == EventType.SUBSCRIBED
            and event.subscriber_id is not None
            and properties.get("status") == MembershipStatus.PENDING
            and properties.get("source") not in SILENT_SOURCES
            and isinstance(list_id, int)
        ):
            wanted.add((event.subscriber_id, list_id))
    for subscriber_id, list_id in sorted(wanted):
        _enqueue(subscriber_id, list_id)


# The public subscribe form ----------------------------------------------------------------------


def optin_list_for_token(*, token: str) -> MailingList:
    """The list a subscribe-form token names; NotFound for a forged token or a deleted list."""
    list_id = mailing_list_id_from_subscribe_token(token=token)
    mailing_list = (
        MailingList.objects.select_related("workspace").filter(pk=list_id).first() if list_id is not None else None
    )
    if mailing_list is None:
        raise NotFound("Not found.")
    return mailing_list


def optin_subscribe(*, mailing_list: MailingList, data: Mapping[str, Any], ip: str | None) -> None:
    """Subscribe an address to the list from the public form (`email`, optional `first_name`, `last_name`).

    Raises ValidationFailed naming the field. Otherwise the caller answers the same whatever happened,
    so the form tells nobody whether an address was known: a new address is created (consent source
    `form`, the client's IP) and put on the list (pending on a double opt-in list: the confirmation
    email follows); a known active one joins the list (its profile is not touched; pending again means
    a new confirmation email, at most one per OPTIN_CONFIRM_RESEND_MINUTES); an unsubscribed, bounced
    or complained one is left alone (a form anyone can post must not re-activate anybody).
    """
    fields = {name: data[name] for name in ("email", "first_name", "last_name") if name in data}
    clean = subscriber_row_clean(data=fields, definitions={})
    workspace = mailing_list.workspace
    with transaction.atomic():
        existing = subscribers_by_email(workspace=workspace, emails=[clean.email]).get(clean.email)
        if existing is None:
            try:
                subscriber_create(
                    workspace=workspace, email=clean.email, first_name=clean.fields.get("first_name", ""),
                    last_name=clean.fields.get("last_name", ""), consent_source=SOURCE_FORM, consent_ip=ip,
                    mailing_lists=[mailing_list],
                )  # fmt: skip
                return
            except Conflict:  # created by a concurrent submission
                existing = subscribers_by_email(workspace=workspace, emails=[clean.email])[clean.email]
        if existing.status != SubscriberStatus.ACTIVE:
            return
        membership, created = list_membership_add(workspace=workspace, subscriber=existing, mailing_list=mailing_list)
        if not created and membership.status == MembershipStatus.PENDING:
            optin_confirmation_request(subscriber_id=existing.pk, list_id=mailing_list.pk)


# The confirmation link ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Confirmation:
    subscriber: Subscriber
    mailing_list: MailingList | None


def optin_confirmation_for_token(*, token: str) -> Confirmation:
    """Who a confirmation link is for; NotFound when forged, expired or the subscriber is gone."""
    claims = confirm_token_read(token=token, max_age=timedelta(days=settings.OPTIN_CONFIRM_MAX_AGE_DAYS))
    if claims is None:
        raise NotFound("Not found.")
    subscriber = Subscriber.objects.select_related("workspace").filter(pk=claims.subscriber_id).first()
    if subscriber is None:
        raise NotFound("Not found.")
    mailing_list = None
    if claims.list_id is not None:
        mailing_list = MailingList.objects.filter(pk=claims.list_id, workspace_id=subscriber.workspace_id).first()
    return Confirmation(subscriber=subscriber, mailing_list=mailing_list)


def optin_confirm(*, confirmation: Confirmation, ip: str | None) -> Subscriber:
    """Confirm from the link: pending memberships become subscribed; the IP and time are recorded as
    consent on the subscriber and in the `confirmed` event."""
    subscriber = confirmation.subscriber
    return subscriber_confirm(
        workspace=subscriber.workspace, subscriber=subscriber, source=SOURCE_LINK, consent_ip=ip,
        list_id=confirmation.mailing_list.pk if confirmation.mailing_list else None,
    )  # fmt: skip
