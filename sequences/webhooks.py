"""Inbound ESP tracking webhooks: django-anymail's views (mounted at /webhooks/anymail/) check the
provider's basic auth or signature and parse its payload; `tracking_receive` (connected to
`anymail.signals.tracking` in SequencesConfig.ready) turns each normalized event into the event log
and, for bounces, complaints and unsubscribes, into the subscriber's status and suppressions.

Each event is recorded once however often the provider retries it: its dedupe key is the provider's
event id (or a hash of provider, message id, event type and time when the provider gives none). The
message is found by the provider's message id that the sender stored (`Message.provider_message_id`);
an event for a message we do not know is logged and ignored (the webhook still answers 200).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from anymail.signals import AnymailTrackingEvent, RejectReason
from anymail.signals import EventType as EspEventType
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver
from django.utils import timezone

from accounts.models import Workspace
from sequences.delivery.guardrail import workspace_guardrail_check
from sequences.models import Message
from sequences.tracking import message_subscriber_unsubscribe, subscriber_enrollments_exit
from subscribers.models import Event, EventType, Subscriber, SubscriberStatus, SuppressionKind
from subscribers.services import event_record, subscriber_status_change, suppression_get_or_create

logger = logging.getLogger(__name__)


class Kind:
    """What an ESP event means here."""

    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"


TRACKING_KINDS = {
    EspEventType.DELIVERED: (Kind.DELIVERED, EventType.DELIVERED),
    EspEventType.OPENED: (Kind.OPENED, EventType.OPENED),
    EspEventType.CLICKED: (Kind.CLICKED, EventType.CLICKED),
}
# A message the ESP refused to send because of the address's history.
REJECTED_KINDS = {
    RejectReason.BOUNCED: Kind.HARD_BOUNCE,
    RejectReason.INVALID: Kind.HARD_BOUNCE,
    RejectReason.SPAM: Kind.COMPLAINT,
    RejectReason.UNSUBSCRIBED: Kind.UNSUBSCRIBE,
}


def _esp_field(event: AnymailTrackingEvent, name: str) -> Any:
    try:
        return event.esp_event.get(name)  # a dict or a QueryDict, depending on the provider
    except AttributeError:
        return None


def event_kind(event: AnymailTrackingEvent) -> str | None:
    """Map anymail's normalized event type (and, for bounces, the provider's own detail) to a Kind;
    None for events that change nothing here (queued, sent, failed, autoresponded, unknown, ...).

    Anymail's `bounced` is a hard bounce, except where the provider says it was soft (Postmark
    `SoftBounce`, SendGrid `blocked`); `deferred` (delayed by the receiving server; Postmark
    `Transient`, Mailgun's temporary failures) counts as a soft bounce.
    """
    if event.event_type in TRACKING_KINDS:
        return TRACKING_KINDS[event.event_type][0]
    if event.event_type == EspEventType.BOUNCED:
        soft = _esp_field(event, "Type") == "SoftBounce" or _esp_field(event, "type") == "blocked"
        return Kind.SOFT_BOUNCE if soft else Kind.HARD_BOUNCE
    if event.event_type == EspEventType.DEFERRED:
        return Kind.SOFT_BOUNCE
    if event.event_type == EspEventType.COMPLAINED:
        return Kind.COMPLAINT
    if event.event_type == EspEventType.UNSUBSCRIBED:
        return Kind.UNSUBSCRIBE
    if event.event_type == EspEventType.REJECTED:
        return REJECTED_KINDS.get(event.reject_reason)
    return None


def event_dedupe_key(*, event: AnymailTrackingEvent, esp_name: str) -> str:
    """`esp:<provider>:<event id>`, or a hash of provider, message id, event type and time."""
    provider = esp_name.lower().replace(" ", "")
    if event.event_id:
        key = f"esp:{provider}:{event.event_id}"
        if len(key) <= 200:
            return key
    timestamp = event.timestamp.isoformat() if event.timestamp else ""
    raw = "|".join([provider, str(event.message_id or ""), str(event.event_type), timestamp, str(event.event_id or "")])
    return f"esp:{provider}:h:{hashlib.sha256(raw.encode()).hexdigest()}"


@dataclass(frozen=True)
class Handled:
    outcome: str  # recorded | duplicate | ignored | unknown_message
    kind: str | None = None


def _message_for(event: AnymailTrackingEvent) -> Message | None:
    if not event.message_id:
        return None
    # Some providers' ids are Message-IDs, which anymail reports in angle brackets: match either way.
    bare = str(event.message_id).strip().strip("<>")
    if not bare:
        return None
    return (
        Message.objects.filter(provider_message_id__in=[bare[:255], f"<{bare}>"[:255]])
        .select_related("workspace", "subscriber", "enrollment")
        .order_by("-id")
        .first()
    )


def _properties(event: AnymailTrackingEvent, esp_name: str, kind: str) -> dict[str, Any]:
    properties: dict[str, Any] = {"source": "esp", "esp": esp_name, "esp_event_type": str(event.event_type)}
    if event.event_id:
        properties["esp_event_id"] = str(event.event_id)[:200]
    if kind in (Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE):
        properties["hard"] = kind == Kind.HARD_BOUNCE
    for name in ("reject_reason", "description", "mta_response", "click_url", "user_agent"):
        value = getattr(event, name, None)
        if value:
            properties[name] = str(value)[:1000]
    return properties


def _record(*, message: Message, event: AnymailTrackingEvent, esp_name: str, kind: str, type: str) -> bool:
    _, created = event_record(
        workspace=message.workspace,
        subscriber=message.subscriber,
        type=type,
        properties=_properties(event, esp_name, kind),
        occurred_at=event.timestamp or timezone.now(),
        message_id=message.pk,
        sequence_id=message.enrollment.sequence_id if message.enrollment_id and message.enrollment else None,
        step_id=message.step_id,
        campaign_id=message.campaign_id,
        dedupe_key=event_dedupe_key(event=event, esp_name=esp_name),
    )
    return created


def _stop_sending(*, message: Message, status: str, reason: str, source: str, esp_name: str) -> None:
    """A hard bounce, a complaint, or too many soft bounces: the subscriber's status, a suppression of
    the address, and an exit from every active sequence."""
    workspace, subscriber = message.workspace, message.subscriber
    current = Subscriber.objects.filter(pk=subscriber.pk).values_list("status", flat=True).first()
    # A complaint outranks an earlier unsubscribe or bounce; a bounce changes only an active subscriber.
    if current == SubscriberStatus.ACTIVE or (status == SubscriberStatus.COMPLAINED and current != status):
        subscriber_status_change(
            workspace=workspace, subscriber=subscriber, status=status, reason=reason[:255], actor=f"esp:{esp_name}",
            source=source, message_id=message.pk, step_id=message.step_id,
            sequence_id=message.enrollment.sequence_id if message.enrollment_id and message.enrollment else None,
        )  # fmt: skip
    suppression_get_or_create(
        workspace=workspace, kind=SuppressionKind.EMAIL, value=message.to_email, reason=reason[:255], source=source
    )
    subscriber_enrollments_exit(subscriber=subscriber, reason=f"subscriber {status}")


def soft_bounce_count(*, workspace: Workspace, subscriber: Subscriber) -> int:
    """Soft bounces within DELIVERY_SOFT_BOUNCE_WINDOW_DAYS, counted once per message (providers
    report one message's retries as several deferrals)."""
    since = timezone.now() - timedelta(days=settings.DELIVERY_SOFT_BOUNCE_WINDOW_DAYS)
    bounces = Event.objects.filter(workspace=workspace, subscriber=subscriber, type=EventType.BOUNCED)
    return bounces.filter(properties__hard=False, occurred_at__gte=since).values("message_id").distinct().count()


def esp_event_handle(*, event: AnymailTrackingEvent, esp_name: str) -> Handled:
    """Record one normalized ESP event and act on it; idempotent (a repeated event is a `duplicate`)."""
    kind = event_kind(event)
    if kind is None:
        return Handled("ignored")
    message = _message_for(event)
    if message is None:
        logger.info("ESP %s event %s for unknown message %r ignored", esp_name, event.event_type, event.message_id)
        return Handled("unknown_message", kind)
    workspace, subscriber = message.workspace, message.subscriber
    detail = str(event.mta_response or event.description or event.reject_reason or "")[:200]
    with transaction.atomic():
        if kind == Kind.UNSUBSCRIBE:
            # Like a one-click unsubscribe: the status change is the record (a repeat changes nothing)
            # and the subscriber's enrollments exit.
            changed = message_subscriber_unsubscribe(message=message, source=f"esp:{esp_name.lower()}")
            return Handled("recorded" if changed else "duplicate", kind)
        if kind in (Kind.DELIVERED, Kind.OPENED, Kind.CLICKED):
            event_type = TRACKING_KINDS[event.event_type][1]
        elif kind == Kind.COMPLAINT:
            event_type = EventType.COMPLAINED
        else:
            event_type = EventType.BOUNCED
        if not _record(message=message, event=event, esp_name=esp_name, kind=kind, type=event_type):
            return Handled("duplicate", kind)
        if kind == Kind.HARD_BOUNCE:
            _stop_sending(
                message=message, status=SubscriberStatus.BOUNCED, reason=f"hard bounce ({esp_name}): {detail}",
                source="bounce", esp_name=esp_name,
            )  # fmt: skip
        elif kind == Kind.COMPLAINT:
            _stop_sending(
                message=message, status=SubscriberStatus.COMPLAINED, reason=f"complaint ({esp_name})",
                source="complaint", esp_name=esp_name,
            )  # fmt: skip
        elif kind == Kind.SOFT_BOUNCE:
            count = soft_bounce_count(workspace=workspace, subscriber=subscriber)
            if count >= settings.DELIVERY_SOFT_BOUNCE_LIMIT:
                _stop_sending(
                    message=message, status=SubscriberStatus.BOUNCED, source="bounce", esp_name=esp_name,
                    reason=f"{count} soft bounces in {settings.DELIVERY_SOFT_BOUNCE_WINDOW_DAYS} days: {detail}",
                )  # fmt: skip
    if kind in (Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE, Kind.COMPLAINT):
        workspace_guardrail_check(workspace=workspace)
    return Handled("recorded", kind)


def tracking_receive(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    """The `anymail.signals.tracking` receiver."""
    esp_event_handle(event=event, esp_name=esp_name)


# URLs: anymail's webhook views, guarded so a provider that is not configured (Mailgun without its
# signing key, ...) or a payload that cannot be parsed answers 400 instead of a server error.


def _guarded(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ImproperlyConfigured as exc:  # includes anymail's AnymailConfigurationError
            logger.warning("ESP webhook %s is not configured: %s", request.path, exc)
            return HttpResponse("This webhook is not configured.\n", status=400, content_type="text/plain")
        except (ValueError, KeyError, TypeError) as exc:  # a body the provider's parser cannot read
            logger.warning("ESP webhook %s: unreadable payload: %s", request.path, exc)
            return HttpResponse("Unreadable payload.\n", status=400, content_type="text/plain")

    return wrapped


def anymail_urlpatterns() -> list[URLPattern | URLResolver]:
    """anymail.urls' patterns (tracking and inbound webhooks of every provider), each view guarded."""
    from anymail import urls

    patterns: list[URLPattern | URLResolver] = []
    for pattern in urls.urlpatterns:
        if isinstance(pattern, URLPattern):
            pattern = URLPattern(pattern.pattern, _guarded(pattern.callback), pattern.default_args, pattern.name)
        patterns.append(pattern)
    return patterns
