"""Writes for subscribers: create, update, delete, status changes, and the chunked upsert behind
the bulk endpoint and the CSV import."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import Workspace
from core.errors import ApplicationError, Conflict, ValidationFailed
from subscribers.models import (
    Event,
    EventType,
    ListMembership,
    MailingList,
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
    Tag,
)
from subscribers.services.events import event_record, events_record_many
from subscribers.services.validation import (
    UNSTORABLE_RE,
    attributes_clean,
    attributes_merge,
    email_normalize,
    field_definitions_by_key,
    locale_check,
    name_check,
    time_zone_check,
)

PROFILE_FIELDS = ("first_name", "last_name", "time_zone", "locale")
BULK_MAX_ITEMS = 1000
UPSERT_CHUNK_SIZE = 500

STATUS_EVENT: dict[str, str] = {
    SubscriberStatus.ACTIVE: EventType.SUBSCRIBED,
    SubscriberStatus.UNSUBSCRIBED: EventType.UNSUBSCRIBED,
    SubscriberStatus.BOUNCED: EventType.BOUNCED,
    SubscriberStatus.COMPLAINED: EventType.COMPLAINED,
}


# (field or attribute key, value before, value after) of one real change.
FieldChange = tuple[str, Any, Any]


@dataclass
class CleanSubscriber:
    """A validated subscriber row: only the profile fields the caller gave are in `fields`."""

    email: str
    fields: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class UpsertOutcome:
    status: str  # created | updated | unchanged | skipped
    subscriber: Subscriber


@dataclass
class BulkItemResult:
    index: int
    status: str  # created | updated | unchanged | skipped | error
    id: int | None = None
    email: str | None = None
    error: dict[str, Any] | None = None


def error_as_dict(error: ApplicationError) -> dict[str, Any]:
    """A per-item error: the failing field (first key of details), a code and a message."""
    details = error.details if isinstance(error.details, dict) else {}
    field_name = next(iter(details), None)
    message = details[field_name][0] if field_name and details[field_name] else error.message
    return {"field": field_name, "code": error.code, "message": str(message)}


def _prefixed(error: ValidationFailed, prefix: str) -> ValidationFailed:
    if not prefix or not isinstance(error.details, dict):
        return error
    details = {f"{prefix}{key}": value for key, value in error.details.items()}
    return ValidationFailed(f"{prefix}{error.message}", code=error.code, details=details)


def subscriber_row_clean(
    *, data: Mapping[str, Any], definitions: Mapping[str, Any], field_prefix: str = ""
) -> CleanSubscriber:
    """Validate one subscriber as sent by a client (JSON types unchecked) or read from a CSV row."""
    if not isinstance(data, Mapping):
        raise ValidationFailed.for_field(field_prefix.rstrip(".") or "item", "Must be an object.")
    try:
        email = email_normalize(email=data.get("email"))
        fields: dict[str, str] = {}
        if "first_name" in data:
            fields["first_name"] = name_check(value=data["first_name"], field="first_name")
        if "last_name" in data:
            fields["last_name"] = name_check(value=data["last_name"], field="last_name")
        if "time_zone" in data:
            fields["time_zone"] = time_zone_check(value=data["time_zone"])
        if "locale" in data:
            fields["locale"] = locale_check(value=data["locale"])
        attributes = attributes_clean(attributes=data.get("attributes"), definitions=definitions)
    except ValidationFailed as error:
        raise _prefixed(error, field_prefix)
    return CleanSubscriber(email=email, fields=fields, attributes=attributes)


def subscribers_by_email(*, workspace: Workspace, emails: Iterable[str]) -> dict[str, Subscriber]:
    """Existing subscribers keyed by lower-cased address; one query on the (workspace, lower(email)) index."""
    wanted = {email.lower() for email in emails}
    if not wanted:
        return {}
    rows = (
        Subscriber.objects.filter(workspace=workspace).alias(email_lower=Lower("email")).filter(email_lower__in=wanted)
    )
    return {row.email.lower(): row for row in rows}


def _membership_status(mailing_list: MailingList) -> str:
    return MembershipStatus.PENDING if mailing_list.double_opt_in else MembershipStatus.SUBSCRIBED


@transaction.atomic
def subscriber_create(
    *,
    workspace: Workspace,
    email: str,
    first_name: str = "",
    last_name: str = "",
    attributes: Mapping[str, Any] | None = None,
    time_zone: str = "",
    locale: str = "",
    consent_source: str = "api",
    consent_ip: str | None = None,
    consent_at: datetime | None = None,
    confirmed_at: datetime | None = None,
    mailing_lists: Sequence[MailingList] = (),
    tag_names: Sequence[str] = (),
) -> Subscriber:
    """Create a subscriber; an address already in the workspace (any case) is a 409 `subscriber_exists`."""
    clean = subscriber_row_clean(
        data={
            "email": email, "first_name": first_name, "last_name": last_name, "time_zone": time_zone,
            "locale": locale, "attributes": attributes,
        },
        definitions=field_definitions_by_key(workspace=workspace),
    )  # fmt: skip
    if subscribers_by_email(workspace=workspace, emails=[clean.email]):
        raise Conflict(
            f"{clean.email} is already a subscriber.", code="subscriber_exists", details={"email": [clean.email]}
        )
    subscriber = Subscriber(
        workspace=workspace,
        email=clean.email,
        attributes=attributes_merge(current={}, changes=clean.attributes),
        consent_source=(consent_source or "")[:100],
        consent_ip=consent_ip or None,
        consent_at=consent_at or timezone.now(),
        confirmed_at=confirmed_at,
        **clean.fields,
    )
    try:
        with transaction.atomic():
            subscriber.save()
    except IntegrityError:  # a concurrent request created the same address
        raise Conflict(
            f"{clean.email} is already a subscriber.", code="subscriber_exists", details={"email": [clean.email]}
        )
    event_record(
        workspace=workspace, subscriber=subscriber, type=EventType.SUBSCRIBED,
        properties={"source": subscriber.consent_source},
    )  # fmt: skip
    for mailing_list in mailing_lists:
        list_membership_add(workspace=workspace, subscriber=subscriber, mailing_list=mailing_list)
    if tag_names:
        subscriber_tags_add(workspace=workspace, subscriber=subscriber, names=tag_names)
    return subscriber


@transaction.atomic
def subscriber_update(*, workspace: Workspace, subscriber: Subscriber, **changes: Any) -> Subscriber:
    """Change profile fields, email and attributes. `attributes` merges: a null removes one key."""
    _check_owned(workspace, subscriber)
    allowed = {"email", "attributes", "consent_source", "consent_ip", "consent_at", "confirmed_at", *PROFILE_FIELDS}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed.for_field(sorted(unknown)[0], "This field cannot be changed here.")
    data = {key: value for key, value in changes.items() if key in ("email", "attributes", *PROFILE_FIELDS)}
    data.setdefault("email", subscriber.email)
    clean = subscriber_row_clean(data=data, definitions=field_definitions_by_key(workspace=workspace))
    if clean.email != subscriber.email.lower():
        clash = subscribers_by_email(workspace=workspace, emails=[clean.email]).get(clean.email)
        if clash is not None and clash.pk != subscriber.pk:
            raise Conflict(
                f"{clean.email} is already a subscriber.", code="subscriber_exists", details={"email": [clean.email]}
            )
    subscriber.email = clean.email
    field_changes = _apply(subscriber, clean)
    if "consent_source" in changes:
        subscriber.consent_source = name_check(value=changes["consent_source"], field="consent_source")
    for name in ("consent_ip", "consent_at", "confirmed_at"):
        if name in changes:
            setattr(subscriber, name, changes[name] or None)
    try:
        with transaction.atomic():
            subscriber.save()
    except IntegrityError:
        raise Conflict(
            f"{clean.email} is already a subscriber.", code="subscriber_exists", details={"email": [clean.email]}
        )
    if field_changes:
        events_record_many(workspace=workspace, events=_field_changed_events(workspace, subscriber, field_changes))
    return subscriber


def _field_changed_events(workspace: Workspace, subscriber: Subscriber, changes: Sequence[FieldChange]) -> list[Event]:
    """One `field_changed` event per changed profile field or attribute key: {"field", "from", "to"}
    (an attribute that appears has from null; one that is removed has to null)."""
    return [
        Event(
            workspace=workspace,
            subscriber=subscriber,
            type=EventType.FIELD_CHANGED,
            properties={"field": name, "from": old, "to": new},
        )
        for name, old, new in changes
    ]


def _tag_events(workspace: Workspace, subscriber: Subscriber, tags: Sequence[Tag], type: str) -> list[Event]:
    return [
        Event(workspace=workspace, subscriber=subscriber, type=type, properties={"tag": tag.name, "tag_id": tag.pk})
        for tag in tags
    ]


def _tag_rows_insert(pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    """Insert (subscriber id, tag id) rows, skipping those that exist; returns the rows it inserted.

    One INSERT ... ON CONFLICT DO NOTHING RETURNING (PostgreSQL, and SQLite 3.35+): exactly the rows
    that are new, even against a concurrent writer, so a tag_added event is written once per real add.
    """
    if not pairs:
        return set()
    through = Subscriber.tags.through
    table = connection.ops.quote_name(through._meta.db_table)
    inserted: set[tuple[int, int]] = set()
    # A few thousand rows per statement keeps the parameter count far below every backend's limit.
    for start in range(0, len(pairs), 2000):
        batch = pairs[start : start + 2000]
        values = ", ".join(["(%s, %s)"] * len(batch))
        params = [value for pair in batch for value in pair]  # the table name is the model's: no user text
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (subscriber_id, tag_id) VALUES {values} "
                "ON CONFLICT (subscriber_id, tag_id) DO NOTHING RETURNING subscriber_id, tag_id",
                params,
            )
            inserted.update((row[0], row[1]) for row in cursor.fetchall())
    return inserted


def subscriber_delete(*, workspace: Workspace, subscriber: Subscriber) -> None:
    """Delete the subscriber and its history (memberships, events). Suppressions stay: they are by address."""
    _check_owned(workspace, subscriber)
    subscriber.delete()


@transaction.atomic
def subscriber_status_change(
    *,
    workspace: Workspace,
    subscriber: Subscriber,
    status: str,
    reason: str = "",
    actor: str = "",
    source: str = "api",
    message_id: int | None = None,
    sequence_id: int | None = None,
    step_id: int | None = None,
) -> Subscriber:
    """Move a subscriber to `status`, record when, why and by whom, and log the matching event.

    When the change comes from an email (an unsubscribe link, a bounce), pass its message, sequence
    and step ids: the event carries them, so reports can attribute it.
    Idempotent: asking for the status it already has changes nothing and writes no event.
    """
    _check_owned(workspace, subscriber)
    if status not in SubscriberStatus.values:
        raise ValidationFailed.for_field("status", f"Must be one of {', '.join(SubscriberStatus.values)}.")
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status == status:
        return subscriber
    previous = subscriber.status
    subscriber.status = status
    subscriber.status_changed_at = timezone.now()
    subscriber.status_reason = (reason or "")[:255]
    subscriber.status_changed_by = (actor or "")[:100]
    subscriber.save(update_fields=["status", "status_changed_at", "status_reason", "status_changed_by", "updated_at"])
    event_record(
        workspace=workspace,
        subscriber=subscriber,
        type=STATUS_EVENT[status],
        properties={"reason": subscriber.status_reason, "by": subscriber.status_changed_by, "source": source,
                    "previous_status": previous},
        message_id=message_id, sequence_id=sequence_id, step_id=step_id,
    )  # fmt: skip
    return subscriber


def subscriber_unsubscribe(
    *,
    workspace: Workspace,
    subscriber: Subscriber,
    reason: str = "",
    actor: str = "",
    source: str = "api",
    message_id: int | None = None,
    sequence_id: int | None = None,
    step_id: int | None = None,
) -> Subscriber:
    """Unsubscribe from everything the workspace sends; who and why are kept on the row and the event."""
    return subscriber_status_change(
        workspace=workspace, subscriber=subscriber, status=SubscriberStatus.UNSUBSCRIBED, reason=reason, actor=actor,
        source=source, message_id=message_id, sequence_id=sequence_id, step_id=step_id,
    )  # fmt: skip


def subscriber_confirm(
    *,
    workspace: Workspace,
    subscriber: Subscriber,
    source: str = "api",
    consent_ip: str | None = None,
    list_id: int | None = None,
) -> Subscriber:
    """Double opt-in confirmed: pending list memberships become subscribed.

    From the confirmation link (`source="link"`) the consent is recorded: the request's IP and the
    time go on the subscriber (consent_ip, consent_at) and into the `confirmed` event's properties.
    """
    _check_owned(workspace, subscriber)
    now = timezone.now()
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        newly = subscriber.confirmed_at is None
        confirmed = ListMembership.objects.filter(subscriber=subscriber, status=MembershipStatus.PENDING).update(
            status=MembershipStatus.SUBSCRIBED, subscribed_at=now
        )
        if not (newly or confirmed):
            return subscriber  # nothing left to confirm: the earlier consent stands
        changed = []
        if newly:
            subscriber.confirmed_at = now
            changed.append("confirmed_at")
        if consent_ip:
            subscriber.consent_ip, subscriber.consent_at = consent_ip, now
            changed += ["consent_ip", "consent_at"]
        if changed:
            subscriber.save(update_fields=[*changed, "updated_at"])
        properties: dict[str, Any] = {"lists_confirmed": confirmed, "source": source}
        if consent_ip:
            properties.update(ip=consent_ip, confirmed_at=now.isoformat())
        if list_id is not None:
            properties["list_id"] = list_id
        event_record(
            workspace=workspace, subscriber=subscriber, type=EventType.CONFIRMED, properties=properties,
            occurred_at=now,
        )  # fmt: skip
    return subscriber


def _check_owned(workspace: Workspace, subscriber: Subscriber) -> None:
    if subscriber.workspace_id != workspace.pk:
        raise ValueError("subscriber belongs to another workspace")


# Lists and tags of one subscriber -------------------------------------------------------------


def list_membership_add(
    *, workspace: Workspace, subscriber: Subscriber, mailing_list: MailingList
) -> tuple[ListMembership, bool]:
    """Put the subscriber on the list: pending on a double opt-in list until confirmed (unless the
    subscriber already confirmed), subscribed otherwise. Re-adding an unsubscribed member resubscribes."""
    _check_owned(workspace, subscriber)
    if mailing_list.workspace_id != workspace.pk:
        raise ValueError("list belongs to another workspace")
    status = _membership_status(mailing_list)
    if status == MembershipStatus.PENDING and subscriber.confirmed_at is not None:
        status = MembershipStatus.SUBSCRIBED
    with transaction.atomic():
        membership, created = ListMembership.objects.select_for_update().get_or_create(
            mailing_list=mailing_list, subscriber=subscriber, defaults={"status": status}
        )
        if not created and membership.status == MembershipStatus.UNSUBSCRIBED:
            membership.status, membership.subscribed_at, membership.unsubscribed_at = status, timezone.now(), None
            membership.save(update_fields=["status", "subscribed_at", "unsubscribed_at"])
            created = True
        if created:
            event_record(
                workspace=workspace, subscriber=subscriber, type=EventType.SUBSCRIBED,
                properties={"list_id": mailing_list.pk, "list": mailing_list.name, "status": membership.status},
            )  # fmt: skip
    return membership, created


@transaction.atomic
def subscriber_lists_join(
    *, workspace: Workspace, subscriber: Subscriber, mailing_lists: Sequence[MailingList]
) -> list[ListMembership]:
    """Put the subscriber on several lists at once (all or none)."""
    return [
        list_membership_add(workspace=workspace, subscriber=subscriber, mailing_list=mailing_list)[0]
        for mailing_list in mailing_lists
    ]


def list_membership_remove(*, workspace: Workspace, subscriber: Subscriber, mailing_list: MailingList) -> bool:
    """Take the subscriber off the list; the membership stays, marked unsubscribed, as history."""
    _check_owned(workspace, subscriber)
    with transaction.atomic():
        changed = (
            ListMembership.objects.filter(
                mailing_list=mailing_list, subscriber=subscriber, mailing_list__workspace=workspace
            )
            .exclude(status=MembershipStatus.UNSUBSCRIBED)
            .update(status=MembershipStatus.UNSUBSCRIBED, unsubscribed_at=timezone.now())
        )
        if changed:
            event_record(
                workspace=workspace, subscriber=subscriber, type=EventType.UNSUBSCRIBED,
                properties={"list_id": mailing_list.pk, "list": mailing_list.name},
            )  # fmt: skip
    return bool(changed)


def tag_names_clean(*, names: Any, field: str = "tags") -> list[str]:
    if not isinstance(names, list | tuple):
        raise ValidationFailed.for_field(field, "Must be a list of tag names.")
    cleaned: list[str] = []
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip() or UNSTORABLE_RE.search(name):
            raise ValidationFailed.for_field(f"{field}[{index}]", "A tag name must be a non-empty string.")
        if len(name.strip()) > 100:
            raise ValidationFailed.for_field(f"{field}[{index}]", "A tag name has at most 100 characters.")
        if name.strip() not in cleaned:
            cleaned.append(name.strip())
    return cleaned


def tags_get_or_create(*, workspace: Workspace, names: Sequence[str]) -> list[Tag]:
    names = tag_names_clean(names=list(names))
    existing = {tag.name: tag for tag in Tag.objects.filter(workspace=workspace, name__in=names)}
    missing = [Tag(workspace=workspace, name=name) for name in names if name not in existing]
    if missing:
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {tag.name: tag for tag in Tag.objects.filter(workspace=workspace, name__in=names)}
    return [existing[name] for name in names]


def _forget_prefetched_tags(subscriber: Subscriber) -> None:
    # The rows are written without the related manager (to learn which are new), so drop a prefetched
    # list of tags as `tags.add()` would: the caller then reads the current ones.
    getattr(subscriber, "_prefetched_objects_cache", {}).pop("tags", None)


@transaction.atomic
def subscriber_tags_add(*, workspace: Workspace, subscriber: Subscriber, names: Sequence[str]) -> list[Tag]:
    """Tag the subscriber; tags that do not exist yet are created. A `tag_added` event ({"tag": name,
    "tag_id": id}) is recorded for each tag the subscriber did not have, none for the others."""
    _check_owned(workspace, subscriber)
    tags = tags_get_or_create(workspace=workspace, names=names)
    inserted = _tag_rows_insert([(subscriber.pk, tag.pk) for tag in tags])
    _forget_prefetched_tags(subscriber)
    added = [tag for tag in tags if (subscriber.pk, tag.pk) in inserted]
    if added:
        events_record_many(workspace=workspace, events=_tag_events(workspace, subscriber, added, EventType.TAG_ADDED))
    return tags


@transaction.atomic
def subscriber_tag_remove(*, workspace: Workspace, subscriber: Subscriber, tag: Tag) -> bool:
    """Untag the subscriber; a `tag_removed` event is recorded only when it had the tag."""
    _check_owned(workspace, subscriber)
    if tag.workspace_id != workspace.pk:
        raise ValueError("tag belongs to another workspace")
    removed, _ = Subscriber.tags.through.objects.filter(subscriber_id=subscriber.pk, tag_id=tag.pk).delete()
    _forget_prefetched_tags(subscriber)
    if removed:
        events_record_many(workspace=workspace, events=_tag_events(workspace, subscriber, [tag], EventType.TAG_REMOVED))
    return bool(removed)


# Chunked upsert: the bulk endpoint and the CSV import ------------------------------------------


def _apply(subscriber: Subscriber, row: CleanSubscriber) -> list[FieldChange]:
    """Apply the row's profile fields and attributes; returns what really changed (field, from, to)."""
    changes: list[FieldChange] = []
    for name, value in row.fields.items():
        old = getattr(subscriber, name)
        if old != value:
            setattr(subscriber, name, value)
            changes.append((name, old, value))
    if row.attributes:
        current = subscriber.attributes or {}
        merged = attributes_merge(current=current, changes=row.attributes)
        if merged != current:
            for key in sorted(set(current) | set(merged)):
                if current.get(key) != merged.get(key) or (key in current) != (key in merged):
                    changes.append((key, current.get(key), merged.get(key)))
            subscriber.attributes = merged
    return changes


def subscribers_upsert_chunk(
    *,
    workspace: Workspace,
    rows: Sequence[CleanSubscriber],
    update_existing: bool,
    consent_source: str,
    mailing_list: MailingList | None = None,
    tags: Sequence[Tag] = (),
) -> list[UpsertOutcome]:
    """Create or update up to a few hundred subscribers with a handful of queries.

    `rows` must have distinct addresses. Existing subscribers are updated only with `update_existing`
    (otherwise they are `skipped` and left untouched); the list and tags go to created and updated
    ones. One transaction; a concurrent insert of the same address falls back to row-by-row.
    """
    now = timezone.now()
    with transaction.atomic():
        existing = subscribers_by_email(workspace=workspace, emails=[row.email for row in rows])
        outcomes: list[UpsertOutcome] = []
        to_create: list[Subscriber] = []
        to_update: list[Subscriber] = []
        changed_events: list[Event] = []
        for row in rows:
            current = existing.get(row.email)
            if current is None:
                subscriber = Subscriber(
                    workspace=workspace, email=row.email, consent_source=consent_source, consent_at=now,
                    attributes=attributes_merge(current={}, changes=row.attributes), **row.fields,
                )  # fmt: skip
                to_create.append(subscriber)
                outcomes.append(UpsertOutcome("created", subscriber))
            elif not update_existing:
                outcomes.append(UpsertOutcome("skipped", current))
            elif changes := _apply(current, row):
                current.updated_at = now
                to_update.append(current)
                outcomes.append(UpsertOutcome("updated", current))
                changed_events += _field_changed_events(workspace, current, changes)
            else:
                outcomes.append(UpsertOutcome("unchanged", current))
        if to_create:
            try:
                with transaction.atomic():
                    Subscriber.objects.bulk_create(to_create)
            except IntegrityError:
                return _upsert_one_by_one(
                    workspace=workspace, rows=rows, update_existing=update_existing, consent_source=consent_source,
                    mailing_list=mailing_list, tags=tags,
                )  # fmt: skip
        if to_update:
            Subscriber.objects.bulk_update(to_update, ["attributes", "updated_at", *PROFILE_FIELDS])
        tag_events = _attach(workspace, [o.subscriber for o in outcomes if o.status != "skipped"], mailing_list, tags)
        # Every event of the chunk (subscribed, field_changed, tag_added) in one insert.
        events_record_many(
            workspace=workspace,
            events=[*_subscribed_events(workspace, to_create, consent_source, mailing_list), *changed_events,
                    *tag_events],
        )  # fmt: skip
    return outcomes


def _upsert_one_by_one(
    *, workspace: Workspace, rows: Sequence[CleanSubscriber], update_existing: bool, consent_source: str,
    mailing_list: MailingList | None, tags: Sequence[Tag],
) -> list[UpsertOutcome]:  # fmt: skip
    outcomes = []
    events: list[Event] = []
    for row in rows:
        current = subscribers_by_email(workspace=workspace, emails=[row.email]).get(row.email)
        if current is None:
            subscriber = Subscriber(
                workspace=workspace, email=row.email, consent_source=consent_source, consent_at=timezone.now(),
                attributes=attributes_merge(current={}, changes=row.attributes), **row.fields,
            )  # fmt: skip
            try:
                with transaction.atomic():
                    subscriber.save()
                outcomes.append(UpsertOutcome("created", subscriber))
                events += _subscribed_events(workspace, [subscriber], consent_source, mailing_list)
                continue
            except IntegrityError:
                current = subscribers_by_email(workspace=workspace, emails=[row.email])[row.email]
        if not update_existing:
            outcomes.append(UpsertOutcome("skipped", current))
        elif changes := _apply(current, row):
            current.save()
            outcomes.append(UpsertOutcome("updated", current))
            events += _field_changed_events(workspace, current, changes)
        else:
            outcomes.append(UpsertOutcome("unchanged", current))
    events += _attach(workspace, [o.subscriber for o in outcomes if o.status != "skipped"], mailing_list, tags)
    events_record_many(workspace=workspace, events=events)
    return outcomes


def _subscribed_events(
    workspace: Workspace, created: Sequence[Subscriber], source: str, mailing_list: MailingList | None
) -> list[Event]:
    properties: dict[str, Any] = {"source": source}
    if mailing_list is not None:
        status = _membership_status(mailing_list)
        properties.update(list_id=mailing_list.pk, list=mailing_list.name, status=status)
    return [Event(workspace=workspace, subscriber=s, type=EventType.SUBSCRIBED, properties=properties) for s in created]


def _attach(
    workspace: Workspace, subscribers: Sequence[Subscriber], mailing_list: MailingList | None, tags: Sequence[Tag]
) -> list[Event]:
    """Put the subscribers on the list and tag them; returns the `tag_added` events of the tags that
    were new to them (not yet recorded: the caller writes them with the chunk's other events)."""
    if not subscribers:
        return []
    if mailing_list is not None:
        status = _membership_status(mailing_list)
        ListMembership.objects.bulk_create(
            [ListMembership(mailing_list=mailing_list, subscriber=s, status=status) for s in subscribers],
            ignore_conflicts=True,  # an existing membership (even an unsubscribed one) is left as it is
        )
    if not tags:
        return []
    inserted = _tag_rows_insert([(s.pk, tag.pk) for s in subscribers for tag in tags])
    return [
        event
        for s in subscribers
        for event in _tag_events(workspace, s, [tag for tag in tags if (s.pk, tag.pk) in inserted], EventType.TAG_ADDED)
    ]


def subscribers_bulk_upsert(
    *,
    workspace: Workspace,
    items: Sequence[Any],
    update_existing: bool = True,
    mailing_list: MailingList | None = None,
    tag_names: Sequence[str] = (),
    consent_source: str = "api",
) -> list[BulkItemResult]:
    """Upsert up to 1,000 subscribers; each item gets its own result, a bad item does not stop the others."""
    if len(items) > BULK_MAX_ITEMS:
        raise ValidationFailed.for_field("subscribers", f"At most {BULK_MAX_ITEMS} items per request.")
    if mailing_list is not None and mailing_list.workspace_id != workspace.pk:
        raise ValueError("list belongs to another workspace")
    tags = tags_get_or_create(workspace=workspace, names=tag_names) if tag_names else []
    definitions = field_definitions_by_key(workspace=workspace)
    results: list[BulkItemResult] = []
    good: list[tuple[int, CleanSubscriber]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        try:
            row = subscriber_row_clean(data=item, definitions=definitions)
        except ValidationFailed as error:
            results.append(BulkItemResult(index=index, status="error", error=error_as_dict(error)))
            continue
        if row.email in seen:
            duplicate = ValidationFailed.for_field("email", "Duplicate of an earlier item.", code="duplicate")
            results.append(BulkItemResult(index=index, status="error", email=row.email, error=error_as_dict(duplicate)))
            continue
        seen.add(row.email)
        good.append((index, row))
    for start in range(0, len(good), UPSERT_CHUNK_SIZE):
        chunk = good[start : start + UPSERT_CHUNK_SIZE]
        outcomes = subscribers_upsert_chunk(
            workspace=workspace, rows=[row for _, row in chunk], update_existing=update_existing,
            consent_source=consent_source, mailing_list=mailing_list, tags=tags,
        )  # fmt: skip
        for (index, _), outcome in zip(chunk, outcomes, strict=True):
            results.append(
                BulkItemResult(
                    index=index, status=outcome.status, id=outcome.subscriber.pk, email=outcome.subscriber.email
                )
            )
    results.sort(key=lambda result: result.index)
    return results
