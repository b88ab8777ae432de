"""Reads for subscribers, lists, tags, suppressions, imports and the event log."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from accounts.models import Workspace
from core.errors import NotFound, ValidationFailed
from subscribers.filters import EventFilter, SubscriberFilter
from subscribers.models import (
    Event,
    ImportJob,
    ListMembership,
    MailingList,
    MembershipStatus,
    Subscriber,
    Suppression,
    SuppressionKind,
    Tag,
)


def _filtered(filterset_class: type, queryset: QuerySet, filters: Mapping[str, Any] | None) -> QuerySet:
    filterset = filterset_class(data=filters or {}, queryset=queryset)
    if not filterset.is_valid():
        details = {key: [str(message) for message in messages] for key, messages in filterset.errors.items()}
        field = next(iter(details))
        raise ValidationFailed(f"{field}: {details[field][0]}", details=details)
    return filterset.qs


def subscriber_get(*, workspace: Workspace, subscriber_id: int) -> Subscriber:
    subscriber = Subscriber.objects.filter(workspace=workspace, pk=subscriber_id).first()
    if subscriber is None:
        raise NotFound("Subscriber not found.")
    return subscriber


def subscriber_list(*, workspace: Workspace, filters: Mapping[str, Any] | None = None) -> QuerySet[Subscriber]:
    """The workspace's subscribers, newest first, narrowed by SubscriberFilter's parameters."""
    queryset = Subscriber.objects.filter(workspace=workspace).order_by("-id")
    return _filtered(SubscriberFilter, queryset, filters)


def subscriber_events(*, workspace: Workspace, subscriber: Subscriber) -> QuerySet[Event]:
    return Event.objects.filter(workspace=workspace, subscriber=subscriber)


def awaiting_confirmation() -> Q:
    """Subscribers waiting for their double opt-in: never confirmed, on at least one list as pending and
    on none as subscribed. They get no marketing email."""
    memberships = ListMembership.objects.filter(subscriber=OuterRef("pk"))
    return (
        Q(confirmed_at__isnull=True)
        & Q(Exists(memberships.filter(status=MembershipStatus.PENDING)))
        & ~Q(Exists(memberships.filter(status=MembershipStatus.SUBSCRIBED)))
    )


def subscriber_ids_awaiting_confirmation(*, subscriber_ids: Collection[int]) -> set[int]:
    """Which of these subscribers wait for their double opt-in (see `awaiting_confirmation`): one query."""
    ids = {int(pk) for pk in subscriber_ids}
    if not ids:
        return set()
    return set(Subscriber.objects.filter(awaiting_confirmation(), pk__in=ids).values_list("pk", flat=True))


def event_list(*, workspace: Workspace, filters: Mapping[str, Any] | None = None) -> QuerySet[Event]:
    return _filtered(EventFilter, Event.objects.filter(workspace=workspace), filters)


def mailing_list_get(*, workspace: Workspace, list_id: int | str) -> MailingList:
    """The list named in a URL; NotFound for a missing one or another workspace's."""
    mailing_list = MailingList.objects.filter(workspace=workspace, pk=list_id).first()
    if mailing_list is None:
        raise NotFound("List not found.")
    return mailing_list


def tag_get(*, workspace: Workspace, tag_id: int | str) -> Tag:
    tag = Tag.objects.filter(workspace=workspace, pk=tag_id).first()
    if tag is None:
        raise NotFound("Tag not found.")
    return tag


def mailing_list_for_input(*, workspace: Workspace, list_id: Any, field: str = "list_id") -> MailingList:
    """The list named in a request body: a missing one is bad input, a 400 naming `field`."""
    if isinstance(list_id, bool) or not isinstance(list_id, int):
        raise ValidationFailed.for_field(field, "Must be a list id.")
    mailing_list = MailingList.objects.filter(workspace=workspace, pk=list_id).first()
    if mailing_list is None:
        raise ValidationFailed.for_field(field, "List not found.", code="not_found")
    return mailing_list


def mailing_lists_with_counts(*, queryset: QuerySet[MailingList]) -> QuerySet[MailingList]:
    return queryset.annotate(
        subscribed_count=Count("memberships", filter=Q(memberships__status=MembershipStatus.SUBSCRIBED)),
        pending_count=Count("memberships", filter=Q(memberships__status=MembershipStatus.PENDING)),
        unsubscribed_count=Count("memberships", filter=Q(memberships__status=MembershipStatus.UNSUBSCRIBED)),
    )


def suppression_match(*, workspace: Workspace, email: str) -> Suppression | None:
    """The suppression that covers this address (its own, or its domain's), if any."""
    email = email.strip().lower()
    domain = email.rpartition("@")[2]
    return (
        Suppression.objects.filter(workspace=workspace)
        .filter(Q(kind=SuppressionKind.EMAIL, value=email) | Q(kind=SuppressionKind.DOMAIN, value=domain))
        .first()
    )


def suppressed_emails(*, workspace: Workspace, emails: list[str]) -> set[str]:
    """Which of `emails` (lower-cased) are suppressed, by address or domain: two queries for any number."""
    lowered = {email.strip().lower() for email in emails}
    domains = {email.rpartition("@")[2] for email in lowered}
    rows = Suppression.objects.filter(workspace=workspace).filter(
        Q(kind=SuppressionKind.EMAIL, value__in=lowered) | Q(kind=SuppressionKind.DOMAIN, value__in=domains)
    )
    by_address = {r.value for r in rows if r.kind == SuppressionKind.EMAIL}
    by_domain = {r.value for r in rows if r.kind == SuppressionKind.DOMAIN}
    return {email for email in lowered if email in by_address or email.rpartition("@")[2] in by_domain}


def import_job_get(*, workspace: Workspace, import_id: int) -> ImportJob:
    job = ImportJob.objects.filter(workspace=workspace, pk=import_id).first()
    if job is None:
        raise NotFound("Import not found.")
    return job
