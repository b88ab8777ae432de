"""Event ingestion from integrators: one event or a batch of up to 1,000, each with its own result."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Workspace
from core.errors import ApplicationError, NotFound, ValidationFailed
from subscribers.models import EventType, Subscriber
from subscribers.services.events import event_record
from subscribers.services.subscribers import BULK_MAX_ITEMS, error_as_dict, subscriber_create, subscribers_by_email
from subscribers.services.validation import email_normalize, json_storable, text_storable

MAX_PROPERTIES_BYTES = 16 * 1024
MAX_FUTURE_SKEW = timedelta(days=1)
MAX_SUBSCRIBER_ID = 2**63 - 1


@dataclass
class EventItemResult:
    index: int
    status: str  # created | duplicate | error
    id: int | None = None
    subscriber_id: int | None = None
    error: dict[str, Any] | None = None


@dataclass
class _CleanEvent:
    subscriber_id: int | None
    email: str | None
    create_subscriber: bool
    name: str
    properties: dict[str, Any]
    occurred_at: datetime | None
    dedupe_key: str | None
    revenue: Decimal | None
    currency: str


def _fail(field: str, message: str, code: str | None = None) -> ValidationFailed:
    return ValidationFailed.for_field(field, message, code=code)


def event_item_clean(*, item: Any) -> _CleanEvent:
    """Check one incoming event whatever JSON types it carries."""
    if not isinstance(item, Mapping):
        raise _fail("event", "Each event must be an object.")
    subscriber_id = item.get("subscriber_id")
    email = item.get("email")
    if subscriber_id is not None and (
        isinstance(subscriber_id, bool)
        or not isinstance(subscriber_id, int)
        or not 0 < subscriber_id <= MAX_SUBSCRIBER_ID
    ):
        raise _fail("subscriber_id", "Must be a subscriber id (a positive integer).")
    if subscriber_id is None and email is None:
        raise _fail("subscriber_id", "Identify the subscriber with subscriber_id or email.", code="required")
    clean_email = email_normalize(email=email) if subscriber_id is None else None
    create_subscriber = item.get("create_subscriber", False)
    if not isinstance(create_subscriber, bool):
        raise _fail("create_subscriber", "Must be true or false.")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _fail("name", "An event name is required.", code="required")
    if len(name.strip()) > 100:
        raise _fail("name", "Ensure this field has no more than 100 characters.")
    text_storable(value=name, field="name")
    properties = item.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise _fail("properties", "Must be an object.")
    json_storable(value=properties, field="properties")
    try:
        encoded = json.dumps(properties, allow_nan=False)
    except (TypeError, ValueError):
        raise _fail("properties", "Must be plain JSON (no NaN or Infinity).")
    if len(encoded.encode()) > MAX_PROPERTIES_BYTES:
        raise _fail("properties", f"Must be at most {MAX_PROPERTIES_BYTES} bytes as JSON.")
    occurred_at = None
    if item.get("occurred_at") is not None:
        raw = item["occurred_at"]
        try:
            occurred_at = parse_datetime(raw) if isinstance(raw, str) else None
        except ValueError:
            occurred_at = None
        if occurred_at is None:
            raise _fail("occurred_at", "Must be an ISO 8601 date and time.")
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=UTC)
        if occurred_at > timezone.now() + MAX_FUTURE_SKEW:
            raise _fail("occurred_at", "Must not be in the future.")
    dedupe_key = item.get("dedupe_key")
    if dedupe_key is not None and (not isinstance(dedupe_key, str) or not 0 < len(dedupe_key) <= 200):
        raise _fail("dedupe_key", "Must be a string of 1 to 200 characters.")
    if dedupe_key is not None:
        text_storable(value=dedupe_key, field="dedupe_key")
    revenue = None
    if item.get("revenue") is not None:
        raw_revenue = item["revenue"]
        if isinstance(raw_revenue, bool) or not isinstance(raw_revenue, int | float | str):
            raise _fail("revenue", "Must be a number.")
        try:
            revenue = Decimal(str(raw_revenue)).quantize(Decimal("0.01"))
        except InvalidOperation:
            raise _fail("revenue", "Must be a number with at most 12 digits before the decimal point.")
        if not revenue.is_finite() or abs(revenue) >= Decimal(10) ** 12:
            raise _fail("revenue", "Must be a number with at most 12 digits before the decimal point.")
    currency = item.get("currency") or ""
    if not isinstance(currency, str) or (currency and not (len(currency) == 3 and currency.isalpha())):
        raise _fail("currency", "Must be a three-letter ISO 4217 code.")
    return _CleanEvent(
        subscriber_id=subscriber_id, email=clean_email, create_subscriber=create_subscriber, name=name.strip(),
        properties=dict(properties), occurred_at=occurred_at, dedupe_key=dedupe_key, revenue=revenue,
        currency=currency.upper(),
    )  # fmt: skip


def events_ingest(*, workspace: Workspace, items: Sequence[Any]) -> list[EventItemResult]:
    """Record custom events. Subscribers are found by id or address (created with `create_subscriber`);
    an event whose `dedupe_key` was seen before is a `duplicate` and is not written again."""
    if len(items) > BULK_MAX_ITEMS:
        raise ValidationFailed.for_field("events", f"At most {BULK_MAX_ITEMS} events per request.")
    cleaned: list[_CleanEvent | ValidationFailed] = []
    for item in items:
        try:
            cleaned.append(event_item_clean(item=item))
        except ValidationFailed as error:
            cleaned.append(error)
    good = [c for c in cleaned if isinstance(c, _CleanEvent)]
    ids = {c.subscriber_id for c in good if c.subscriber_id is not None}
    by_id = {s.pk: s for s in Subscriber.objects.filter(workspace=workspace, pk__in=ids)}
    by_email = subscribers_by_email(workspace=workspace, emails=[c.email for c in good if c.email])
    results: list[EventItemResult] = []
    with transaction.atomic():
        for index, clean in enumerate(cleaned):
            if isinstance(clean, ValidationFailed):
                results.append(EventItemResult(index=index, status="error", error=error_as_dict(clean)))
                continue
            try:
                subscriber = _subscriber_for(workspace, clean, by_id, by_email)
                event, created = event_record(
                    workspace=workspace, subscriber=subscriber, type=EventType.CUSTOM, name=clean.name,
                    properties=clean.properties, occurred_at=clean.occurred_at, revenue=clean.revenue,
                    currency=clean.currency, dedupe_key=clean.dedupe_key,
                )  # fmt: skip
            except ApplicationError as error:
                results.append(EventItemResult(index=index, status="error", error=error_as_dict(error)))
                continue
            results.append(
                EventItemResult(
                    index=index,
                    status="created" if created else "duplicate",
                    id=event.pk,
                    subscriber_id=event.subscriber_id,
                )
            )
    return results


def _subscriber_for(
    workspace: Workspace, clean: _CleanEvent, by_id: dict[int, Subscriber], by_email: dict[str, Subscriber]
) -> Subscriber:
    if clean.subscriber_id is not None:
        subscriber = by_id.get(clean.subscriber_id)
        if subscriber is None:
            raise NotFound("Subscriber not found.", details={"subscriber_id": ["Subscriber not found."]})
        return subscriber
    assert clean.email is not None
    subscriber = by_email.get(clean.email)
    if subscriber is None:
        if not clean.create_subscriber:
            raise NotFound(
                "Subscriber not found.",
                details={"email": ["No subscriber has this address; send create_subscriber: true to create one."]},
            )
        subscriber = subscriber_create(workspace=workspace, email=clean.email, consent_source="event")
        by_email[clean.email] = subscriber
    return subscriber
