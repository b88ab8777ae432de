"""Broadcast campaigns: audience, schedule, start, pause, resume, cancel, finish, and their numbers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Workspace
from core.errors import Conflict, NotFound, ValidationFailed
from sequences.models import Campaign, CampaignStatus, Message, MessageStatus, Template
from sequences.services import template_compile
from subscribers.models import (
    Event,
    EventType,
    ListMembership,
    MailingList,
    MembershipStatus,
    Segment,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionKind,
    Tag,
)
from subscribers.segments import segment_q

logger = logging.getLogger(__name__)

# How many recipients are read and inserted at a time when a campaign starts: memory stays flat
# whatever the audience size (each chunk is one SELECT of ids and addresses and one INSERT).
MATERIALIZE_CHUNK_SIZE = 2000
# A paused campaign's unsent messages wait as `deferred` until this time, far beyond any real
# schedule, so no claim takes them; resuming puts them back to `queued` with send_after = now.
PAUSED_SEND_AFTER = datetime(3000, 1, 1, tzinfo=UTC)
PAUSED_REASON = "campaign_paused"
CANCELLED_ERROR = "campaign cancelled"
# How many due campaigns one beat tick starts (the next tick takes the rest).
TICK_MAX_STARTS = 20

UNSENT_STATUSES = (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.DEFERRED)
EDITABLE_STATUSES = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)
# Service argument -> the campaign's many-to-many field. Segments are passed as ids under the API's
# names, so a validation error names the field the client sent.
AUDIENCE_FIELDS = {
    "lists": "lists", "tags": "tags", "exclude_lists": "exclude_lists", "exclude_tags": "exclude_tags",
    "segment_ids": "segments", "exclude_segment_ids": "exclude_segments",
}  # fmt: skip
AUDIENCE_MODELS: dict[str, tuple[type[MailingList] | type[Tag] | type[Segment], str]] = {
    "lists": (MailingList, "list"), "exclude_lists": (MailingList, "list"), "tags": (Tag, "tag"),
    "exclude_tags": (Tag, "tag"), "segment_ids": (Segment, "segment"), "exclude_segment_ids": (Segment, "segment"),
}  # fmt: skip
CAMPAIGN_FIELDS = frozenset({"name", "template_id", "high_priority", "scheduled_at", *AUDIENCE_FIELDS})
IDS_MAX = 1000


# Who hears of a campaign's status change (the live progress bars: realtime registers itself), after commit.
StatusHandler = Callable[[int, int], object]  # (workspace id, campaign id); what it returns is ignored
_status_handlers: list[StatusHandler] = []


def campaign_status_handler_register(handler: StatusHandler) -> StatusHandler:
    _status_handlers.append(handler)
    return handler


def _status_changed(campaign: Campaign) -> None:
    """Tell the handlers once the transaction commits; a failing handler is logged, never the caller's error."""
    for handler in _status_handlers:
        transaction.on_commit(partial(handler, campaign.workspace_id, campaign.pk), robust=True)


# Validation -------------------------------------------------------------------------------------


def _require_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed.for_field("name", "This field may not be blank.", code="blank")
    if len(value.strip()) > 200:
        raise ValidationFailed.for_field("name", "Ensure this field has no more than 200 characters.")
    return value.strip()


def _template_of(workspace: Workspace, template_id: Any) -> Template:
    template = Template.objects.filter(workspace=workspace, pk=template_id).first() if template_id else None
    if template is None:
        raise ValidationFailed.for_field("template", "Pick a template of this workspace.", code="does_not_exist")
    return template


def _ids_of(workspace: Workspace, field_name: str, ids: Collection[int]) -> list[int]:
    """The given list, tag or segment ids, every one of them the workspace's (else 400 naming the field)."""
    wanted = sorted({int(pk) for pk in ids})
    if len(wanted) > IDS_MAX:
        raise ValidationFailed.for_field(field_name, f"At most {IDS_MAX} ids.")
    model, what = AUDIENCE_MODELS[field_name]
    rows = model.objects.filter(workspace=workspace, pk__in=wanted)
    if model is Segment and wanted:
        # Lock the segments until the campaign commits: `segment_delete` locks the row too, so either
        # it waits and then sees this campaign (409), or it went first and the id is refused here.
        rows = rows.select_for_update(no_key=connection.features.has_select_for_no_key_update)
    found = set(rows.values_list("pk", flat=True))
    missing = [pk for pk in wanted if pk not in found]
    if missing:
        raise ValidationFailed.for_field(
            field_name, f"Unknown {what} ids: {', '.join(map(str, missing[:20]))}.", code="does_not_exist"
        )
    return wanted


def _check_future(scheduled_at: datetime | None, now: datetime) -> None:
    if scheduled_at is not None and scheduled_at <= now:
        raise ValidationFailed.for_field("scheduled_at", "Must be in the future.", code="in_the_past")


def _own(campaign: Campaign, workspace: Workspace) -> None:
    if campaign.workspace_id != workspace.pk:
        raise NotFound("Campaign not found.")


def _locked(workspace: Workspace, campaign: Campaign) -> Campaign:
    """The campaign's row, locked for the rest of the transaction: transitions never interleave."""
    _own(campaign, workspace)
    locked = Campaign.objects.select_for_update().filter(workspace=workspace, pk=campaign.pk).first()
    if locked is None:
        raise NotFound("Campaign not found.")
    return locked


def _audience_ids(campaign: Campaign) -> dict[str, list[int]]:
    return {
        name: sorted(getattr(campaign, attr).values_list("pk", flat=True)) for name, attr in AUDIENCE_FIELDS.items()
    }


def _has_audience(ids: Mapping[str, Collection[int]]) -> bool:
    return bool(ids["lists"] or ids["tags"] or ids["segment_ids"])


def _check_has_audience(ids: Mapping[str, Collection[int]]) -> None:
    if not _has_audience(ids):
        raise ValidationFailed.for_field("lists", "Pick at least one list, tag or segment.", code="no_audience")


# Create, update, delete -------------------------------------------------------------------------


def campaign_create(
    *,
    workspace: Workspace,
    name: str,
    template_id: int,
    lists: Collection[int] = (),
    tags: Collection[int] = (),
    exclude_lists: Collection[int] = (),
    exclude_tags: Collection[int] = (),
    segment_ids: Collection[int] = (),
    exclude_segment_ids: Collection[int] = (),
    high_priority: bool = False,
    scheduled_at: datetime | None = None,
) -> Campaign:
    """A draft campaign. Its template, lists, tags and segments must be the workspace's; it needs at
    least one list, tag or segment; `scheduled_at`, when given, must be in the future (it is used by
    `campaign_schedule`). Segments are evaluated when the campaign starts."""
    clean_name = _require_name(name)
    template = _template_of(workspace, template_id)
    given = {
        "lists": lists, "tags": tags, "exclude_lists": exclude_lists, "exclude_tags": exclude_tags,
        "segment_ids": segment_ids, "exclude_segment_ids": exclude_segment_ids,
    }  # fmt: skip
    with transaction.atomic():
        audience = {name_: _ids_of(workspace, name_, ids) for name_, ids in given.items()}
        _check_has_audience(audience)
        _check_future(scheduled_at, timezone.now())
        campaign = Campaign.objects.create(
            workspace=workspace, name=clean_name, template=template, high_priority=bool(high_priority),
            scheduled_at=scheduled_at,
        )  # fmt: skip
        for name_, ids in audience.items():
            getattr(campaign, AUDIENCE_FIELDS[name_]).set(ids)
    return campaign


def campaign_update(*, workspace: Workspace, campaign: Campaign, **fields: Any) -> Campaign:
    """Change a draft or scheduled campaign (409 once it has started). Audience fields replace the
    whole set; the result must still have a list, a tag or a segment. A scheduled campaign keeps a future time."""
    unknown = set(fields) - CAMPAIGN_FIELDS
    if unknown:
        raise ValidationFailed(f"Unknown campaign fields: {', '.join(sorted(unknown))}", code="unknown_fields")
    with transaction.atomic():
        campaign = _locked(workspace, campaign)
        if campaign.status not in EDITABLE_STATUSES:
            raise Conflict(
                f"A {campaign.status} campaign cannot be edited; only draft and scheduled ones can.",
                code="campaign_not_editable",
            )
        now = timezone.now()
        if "name" in fields:
            campaign.name = _require_name(fields["name"])
        if "template_id" in fields:
            campaign.template = _template_of(workspace, fields["template_id"])
        if "high_priority" in fields:
            campaign.high_priority = bool(fields["high_priority"])
        if "scheduled_at" in fields:
            _check_future(fields["scheduled_at"], now)
            if fields["scheduled_at"] is None and campaign.status == CampaignStatus.SCHEDULED:
                raise ValidationFailed.for_field(
                    "scheduled_at", "A scheduled campaign needs a time; cancel it instead.", code="null"
                )
            campaign.scheduled_at = fields["scheduled_at"]
        audience = _audience_ids(campaign)
        for name in AUDIENCE_FIELDS:
            if name in fields:
                audience[name] = _ids_of(workspace, name, fields[name])
        _check_has_audience(audience)
        campaign.save()
        for name, attr in AUDIENCE_FIELDS.items():
            if name in fields:
                getattr(campaign, attr).set(audience[name])
    return campaign


def campaign_delete(*, workspace: Workspace, campaign: Campaign) -> None:
    """Only a draft is deleted (409 otherwise): a campaign that was scheduled or sent stays on record."""
    with transaction.atomic():
        campaign = _locked(workspace, campaign)
        if campaign.status != CampaignStatus.DRAFT:
            raise Conflict(
                f"A {campaign.status} campaign cannot be deleted; only drafts can (cancel it instead).",
                code="campaign_not_deletable",
            )
        campaign.delete()


# Audience ---------------------------------------------------------------------------------------


def _ids_after(queryset: QuerySet, last: int, size: int) -> list[int]:
    return list(
        queryset.filter(subscriber_id__gt=last).order_by("subscriber_id").values_list("subscriber_id", flat=True)[:size]
    )


def _segments_q(workspace: Workspace, segment_ids: Collection[int], now: datetime) -> Q | None:
    """One filter for "in any of these saved segments": each tree compiled by `segment_q` (validated
    again: a tag or field a segment names may have gone since it was saved) and OR-ed together."""
    if not segment_ids:
        return None
    combined: Q | None = None
    for segment in Segment.objects.filter(workspace=workspace, pk__in=list(segment_ids)).order_by("pk"):
        try:
            condition = segment_q(workspace=workspace, tree=segment.rules, now=now)
        except ValidationFailed as exc:
            raise Conflict(
                f"The campaign's segment '{segment.name}' is no longer valid: {exc.message}", code="segment_invalid"
            ) from None
        combined = condition if combined is None else combined | condition
    return combined


def campaign_recipients(
    *, campaign: Campaign, chunk_size: int = 0, now: datetime | None = None
) -> Iterator[list[tuple[int, str]]]:
    """The campaign's audience as it is now, in chunks of (subscriber id, email) by ascending id.

    The audience: active subscribers of the workspace with a `subscribed` membership in any of its
    lists, any of its tags, or in any of its segments (evaluated at `now`); minus members (subscribed
    or pending) of an excluded list, anyone with an excluded tag or in an excluded segment, and
    suppressed addresses and domains. A segment that no longer validates is a 409 `segment_invalid`.

    Each chunk costs a handful of single-table queries with bounded id lists, each answered by an
    index: candidates by keyset over the memberships and tag rows, then the subscribers' status, the
    exclusions and the suppressions of just those ids. Memory stays one chunk whatever the audience
    size, and no plan can degrade into a join over whole lists when table statistics are stale
    (a big import moments ago).
    """
    yield from _audience_chunks(
        workspace=campaign.workspace, ids=_audience_ids(campaign), size=chunk_size or MATERIALIZE_CHUNK_SIZE,
        now=now or timezone.now(),
    )  # fmt: skip


def _audience_chunks(
    *, workspace: Workspace, ids: Mapping[str, list[int]], size: int, now: datetime
) -> Iterator[list[tuple[int, str]]]:
    """The audience of these list, tag and segment ids (see `campaign_recipients`), chunk by chunk."""
    workspace_id = workspace.pk
    tag_rows = Subscriber.tags.through.objects
    sources: list[QuerySet] = []
    if ids["lists"]:
        sources.append(
            ListMembership.objects.filter(mailing_list_id__in=ids["lists"], status=MembershipStatus.SUBSCRIBED)
        )
    if ids["tags"]:
        sources.append(tag_rows.filter(tag_id__in=ids["tags"]))
    included = _segments_q(workspace, ids["segment_ids"], now)
    if included is not None:
        # The segments' one query, walked by keyset on the subscriber id like the other sources.
        sources.append(
            Subscriber.objects.filter(workspace_id=workspace_id, status=SubscriberStatus.ACTIVE)
            .filter(included)
            .annotate(subscriber_id=F("pk"))
        )
    excluded_q = _segments_q(workspace, ids["exclude_segment_ids"], now)
    last = 0
    while sources:
        candidates: set[int] = set()
        for source in sources:
            candidates.update(_ids_after(source, last, size))
        if not candidates:
            return
        # Every id up to the size-th smallest was returned by each source that holds it.
        chunk_ids = sorted(candidates)[:size]
        last = chunk_ids[-1]
        recipients = _recipients_among(workspace_id, ids, chunk_ids, excluded_q)
        if recipients:
            yield recipients


def _recipients_among(
    workspace_id: int, ids: Mapping[str, list[int]], chunk_ids: list[int], excluded_q: Q | None
) -> list[tuple[int, str]]:
    rows = list(
        Subscriber.objects.filter(pk__in=chunk_ids, workspace_id=workspace_id, status=SubscriberStatus.ACTIVE)
        .order_by("pk")
        .values_list("pk", "email")
    )
    if not rows:
        return []
    present = [pk for pk, _ in rows]
    excluded: set[int] = set()
    if ids["exclude_lists"]:
        excluded.update(
            ListMembership.objects.filter(mailing_list_id__in=ids["exclude_lists"], subscriber_id__in=present)
            .exclude(status=MembershipStatus.UNSUBSCRIBED)
            .values_list("subscriber_id", flat=True)
        )
    if ids["exclude_tags"]:
        excluded.update(
            Subscriber.tags.through.objects.filter(
                tag_id__in=ids["exclude_tags"], subscriber_id__in=present
            ).values_list("subscriber_id", flat=True)
        )
    if excluded_q is not None:
        excluded.update(
            Subscriber.objects.filter(workspace_id=workspace_id, pk__in=present)
            .filter(excluded_q)
            .values_list("pk", flat=True)
        )
    # Suppression values are lower-cased; the domain is what follows the last "@" (as the sender reads it).
    addresses = {pk: email.strip().lower() for pk, email in rows}
    domains = {address.rpartition("@")[2] for address in addresses.values()}
    suppressed = set(
        Suppression.objects.filter(workspace_id=workspace_id)
        .filter(
            Q(kind=SuppressionKind.EMAIL, value__in=set(addresses.values()))
            | Q(kind=SuppressionKind.DOMAIN, value__in=domains)
        )
        .values_list("value", flat=True)
    )
    return [
        (pk, email)
        for pk, email in rows
        if pk not in excluded and addresses[pk] not in suppressed and addresses[pk].rpartition("@")[2] not in suppressed
    ]


def campaigns_using_segment(segment: Segment) -> list[str]:
    """Every campaign whose audience includes or excludes the segment, whatever its status: a sent
    campaign's audience stays on record, so its segment is kept (registered in sequences.apps)."""
    used = Campaign.objects.filter(Q(segments=segment) | Q(exclude_segments=segment)).order_by("name", "pk")
    return [f"campaign '{name}'" for name in used.values_list("name", flat=True).distinct()]


def campaign_audience_count(*, workspace: Workspace, campaign: Campaign) -> int:
    """How many subscribers the campaign would go to if it started now; creates nothing."""
    _own(campaign, workspace)
    return sum(len(chunk) for chunk in campaign_recipients(campaign=campaign))


def campaign_audience_estimate(
    *,
    workspace: Workspace,
    lists: Collection[int] = (),
    tags: Collection[int] = (),
    exclude_lists: Collection[int] = (),
    exclude_tags: Collection[int] = (),
    segment_ids: Collection[int] = (),
    exclude_segment_ids: Collection[int] = (),
) -> int:
    """How many subscribers an audience not saved yet would have now (the compose page's estimate).

    The same ids as `campaign_create` (each the workspace's, else 400 naming the field) and the same
    rules as `campaign_recipients`; no audience is 0. Creates nothing.
    """
    given = {
        "lists": lists, "tags": tags, "exclude_lists": exclude_lists, "exclude_tags": exclude_tags,
        "segment_ids": segment_ids, "exclude_segment_ids": exclude_segment_ids,
    }  # fmt: skip
    with transaction.atomic():  # `_ids_of` locks the segments it reads
        ids = {name: _ids_of(workspace, name, given_ids) for name, given_ids in given.items()}
    if not _has_audience(ids):
        return 0
    chunks = _audience_chunks(workspace=workspace, ids=ids, size=MATERIALIZE_CHUNK_SIZE, now=timezone.now())
    return sum(len(chunk) for chunk in chunks)


# Schedule and start -----------------------------------------------------------------------------


def _check_startable(campaign: Campaign) -> None:
    ids = _audience_ids(campaign)
    if not _has_audience(ids):
        raise Conflict("The campaign has no list, tag or segment to send to.", code="campaign_without_audience")
    # Every segment must still compile (409 `segment_invalid` naming it), before anything is written.
    now = timezone.now()
    _segments_q(campaign.workspace, ids["segment_ids"], now)
    _segments_q(campaign.workspace, ids["exclude_segment_ids"], now)
    template = campaign.template
    try:
        template_compile(subject=template.subject, preheader=template.preheader, html=template.html, text=template.text)
    except ValidationFailed as exc:
        raise Conflict(f"The campaign's template does not compile: {exc.message}", code="template_invalid")


def campaign_schedule(*, workspace: Workspace, campaign: Campaign, at: datetime | None = None) -> Campaign:
    """Schedule a draft (or move a scheduled campaign) to `at`, which must be in the future; without
    `at`, to the campaign's stored `scheduled_at` if that is still ahead, else to now: the next beat
    tick (within seconds) starts it. Started, sent and cancelled campaigns answer 409."""
    now = timezone.now()
    _check_future(at, now)
    with transaction.atomic():
        campaign = _locked(workspace, campaign)
        if campaign.status not in EDITABLE_STATUSES:
            raise Conflict(
                f"A {campaign.status} campaign cannot be scheduled; only draft and scheduled ones can.",
                code="campaign_not_schedulable",
            )
        _check_startable(campaign)
        if at is None:
            at = campaign.scheduled_at if campaign.scheduled_at and campaign.scheduled_at > now else now
        campaign.status = CampaignStatus.SCHEDULED
        campaign.scheduled_at = at
        campaign.save(update_fields=["status", "scheduled_at", "updated_at"])
        _status_changed(campaign)
    if at <= now:
        _tick_soon()
    return campaign


def _tick_soon() -> None:
    def publish() -> None:
        from sequences.tasks import campaigns_tick_task

        try:
            campaigns_tick_task.apply_async()
        except Exception:  # noqa: BLE001 - the broker is down: the beat tick starts it anyway
            logger.warning("Could not enqueue a campaigns tick; the beat tick will start the campaign")

    transaction.on_commit(publish)


@dataclass
class StartResult:
    campaign: Campaign
    created: int = 0


def _materialize(campaign: Campaign, now: datetime) -> int:
    """Insert one queued message per recipient, chunk by chunk; ON CONFLICT DO NOTHING on the
    (campaign, subscriber) key, so running it again never makes a second message."""
    template = campaign.template
    workspace = campaign.workspace
    from_email = template.from_email or workspace.from_email or settings.FROM_EMAIL
    before = Message.objects.filter(campaign=campaign).count()
    fields = {
        "workspace_id": campaign.workspace_id, "campaign": campaign, "template": template, "from_email": from_email,
        # The raw subject, for lists and the admin until the sender renders the real one.
        "subject": template.subject, "status": MessageStatus.QUEUED, "send_after": now, "created_at": now,
    }  # fmt: skip
    # The segments are evaluated here, once, at `now`: the messages are the audience from then on, so a
    # later edit of a segment changes nothing for a started campaign.
    for chunk in campaign_recipients(campaign=campaign, now=now):
        rows = [Message(subscriber_id=subscriber_id, to_email=email, **fields) for subscriber_id, email in chunk]
        Message.objects.bulk_create(rows, ignore_conflicts=True)
    return Message.objects.filter(campaign=campaign).count() - before


def _enqueue_after_commit(campaign_id: int) -> None:
    """Once committed, hand the campaign's queued messages to the email queue, reading ids in chunks."""

    def publish() -> None:
        from sequences.delivery.tasks import messages_enqueue

        ids = Message.objects.filter(
            campaign_id=campaign_id, status=MessageStatus.QUEUED, send_after__lte=timezone.now()
        ).order_by("pk")
        last = 0
        while True:
            chunk = list(ids.filter(pk__gt=last).values_list("pk", flat=True)[:MATERIALIZE_CHUNK_SIZE])
            if not chunk:
                return
            messages_enqueue(chunk)  # outside a transaction: published right away
            last = chunk[-1]

    transaction.on_commit(publish)


def _start_locked(campaign: Campaign, now: datetime) -> StartResult:
    _check_startable(campaign)
    campaign.status = CampaignStatus.SENDING
    campaign.started_at = now
    if campaign.scheduled_at is None or campaign.scheduled_at > now:
        campaign.scheduled_at = now
    campaign.save(update_fields=["status", "started_at", "scheduled_at", "updated_at"])
    _status_changed(campaign)
    created = _materialize(campaign, now)
    _finish_if_done(campaign, now)
    if campaign.status == CampaignStatus.SENDING:
        _enqueue_after_commit(campaign.pk)
    return StartResult(campaign=campaign, created=created)


def campaign_start(*, workspace: Workspace, campaign: Campaign) -> StartResult:
    """Send now: the audience becomes queued messages (one per recipient) in one transaction, handed
    to the sender after it commits. Idempotent: a campaign already sending is left as it is. Paused,
    sent and cancelled campaigns answer 409."""
    with transaction.atomic():
        campaign = _locked(workspace, campaign)
        if campaign.status == CampaignStatus.SENDING:
            return StartResult(campaign=campaign)
        if campaign.status not in EDITABLE_STATUSES:
            hint = " Resume it instead." if campaign.status == CampaignStatus.PAUSED else ""
            raise Conflict(f"A {campaign.status} campaign cannot be started.{hint}", code="campaign_not_startable")
        return _start_locked(campaign, timezone.now())


# Pause, resume, cancel --------------------------------------------------------------------------


def campaign_pause(*, workspace: Workspace, campaign: Campaign) -> Campaign:
    """Stop sending: the unsent messages (queued, deferred) wait as `deferred` (reason
    `campaign_paused`) until resumed; messages a worker already claimed (`sending`) are held the
    same way by the sender's check before each chunk. Pausing a paused campaign changes nothing;
    only a sending campaign can be paused (else 409)."""
    now = timezone.now()
    with transaction.atomic():
        campaign = _locked(workspace, campaign)
        if campaign.status == CampaignStatus.PAUSED:
            return campaign
        if campaign.status != CampaignStatus.SENDING:
            raise Conflict(
                f"A {campaign.status} campaign cannot be paused; only a sending one can.", code="campaign_not_sending"
            )
        Message.objects.filter(campaign=campaign, status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED]).update(
            status=MessageStatus.DEFERRED, send_after=PAUSED_SEND_AFTER, deferred_reason=PAUSED_REASON, updated_at=now
        )
        campaign.status = CampaignStatus.PAUSED
        campaign.save(update_fields=["status", "updated_at"])
        _status_changed(campaign)
    return campaign


def campaign_resume(*, workspace: Workspace, campaign: Campaign) -> Campaign:
    """Send the rest: the paused messages are queued again for now and handed to the sender. A sent
    message is never touched, so nobody gets the campaign twice. Resuming a sending campaign changes
    nothing; only a paused one can be resumed (else 409)."""
    now = timezone.now()
    with transaction.atomic():
        campaign = _locked(workspace, campaign)
        if campaign.status == CampaignStatus.SENDING:
            return campaign
        if campaign.status != CampaignStatus.PAUSED:
            raise Conflict(
                f"A {campaign.status} campaign cannot be resumed; only a paused one can.", code="campaign_not_paused"
            )
        Message.objects.filter(campaign=campaign, status=MessageStatus.DEFERRED, deferred_reason=PAUSED_REASON).update(
            status=MessageStatus.QUEUED, send_after=now, deferred_reason="", updated_at=now
        )
        campaign.status = CampaignStatus.SENDING
        campaign.save(update_fields=["status", "updated_at"])
        _status_changed(campaign)
        _finish_if_done(campaign, now)
        if campaign.status == CampaignStatus.SENDING:
            _enqueue_after_commit(campaign.pk)
    return campaign


def campaign_cancel(*, workspace: Workspace, campaign: Campaign) -> Campaign:
    """Stop for good: unsent messages (queued, deferred) become `suppressed` with last_error
    "campaign cancelled"; sent ones stay. Cancelling again changes nothing; a sent campaign answers 409."""
    now = timezone.now()
    with transaction.atomic():
        campaign = _locked(workspace, campaign)
        if campaign.status == CampaignStatus.CANCELLED:
            return campaign
        if campaign.status == CampaignStatus.SENT:
            raise Conflict("The campaign has been sent; there is nothing left to cancel.", code="campaign_sent")
        Message.objects.filter(campaign=campaign, status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED]).update(
            status=MessageStatus.SUPPRESSED, last_error=CANCELLED_ERROR, deferred_reason="", updated_at=now
        )
        campaign.status = CampaignStatus.CANCELLED
        campaign.finished_at = now
        campaign.save(update_fields=["status", "finished_at", "updated_at"])
        _status_changed(campaign)
    return campaign


# The beat tick ----------------------------------------------------------------------------------


def _finish_if_done(campaign: Campaign, now: datetime) -> bool:
    # Called with the campaign's row locked: sending, and nothing left queued, sending or deferred.
    if campaign.status != CampaignStatus.SENDING:
        return False
    if Message.objects.filter(campaign=campaign, status__in=UNSENT_STATUSES).exists():
        return False
    campaign.status = CampaignStatus.SENT
    campaign.finished_at = now
    campaign.save(update_fields=["status", "finished_at", "updated_at"])
    _status_changed(campaign)
    return True


@dataclass
class TickResult:
    started: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[int]]:
        return {"started": self.started, "finished": self.finished}


def _claim_one(queryset: QuerySet[Campaign]) -> Campaign | None:
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True)
    else:
        queryset = queryset.select_for_update()
    return queryset.select_related("workspace", "template").first()


def campaigns_tick(*, now: datetime | None = None) -> TickResult:
    """Start the scheduled campaigns whose time has come, and mark `sent` the sending ones with no
    message left queued, sending or deferred.

    Each campaign is claimed with SELECT ... FOR UPDATE SKIP LOCKED in its own transaction, so two
    ticks never start the same campaign (and the (campaign, subscriber) key would refuse a second
    message anyway). A campaign that cannot start (its template no longer compiles) is left scheduled
    and skipped by this tick.
    """
    now = now or timezone.now()
    result = TickResult()
    skipped: list[int] = []
    for _ in range(TICK_MAX_STARTS):
        with transaction.atomic():
            due = Campaign.objects.filter(status=CampaignStatus.SCHEDULED, scheduled_at__lte=now).exclude(
                pk__in=skipped
            )
            campaign = _claim_one(due.order_by("scheduled_at", "pk"))
            if campaign is None:
                break
            try:
                with transaction.atomic():
                    _start_locked(campaign, now)
            except Conflict:
                skipped.append(campaign.pk)
                continue
            result.started.append(campaign.pk)
    unfinished = Message.objects.filter(campaign=OuterRef("pk"), status__in=UNSENT_STATUSES)
    done = list(
        Campaign.objects.filter(status=CampaignStatus.SENDING).filter(~Exists(unfinished)).values_list("pk", flat=True)
    )
    for campaign_id in done:
        with transaction.atomic():
            campaign = _claim_one(Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SENDING))
            if campaign is not None and _finish_if_done(campaign, timezone.now()):
                result.finished.append(campaign.pk)
    return result


# Numbers ----------------------------------------------------------------------------------------


@dataclass
class CampaignStats:
    recipients: int
    by_status: dict[str, int]
    sent: int
    delivered: int
    opened: int
    clicked: int
    unsubscribed: int
    bounced: int
    complained: int
    open_rate: float | None
    click_rate: float | None
    unsubscribe_rate: float | None
    bounce_rate: float | None
    note: str


ENGAGEMENT_TYPES = {
    "delivered": EventType.DELIVERED,
    "opened": EventType.OPENED,
    "clicked": EventType.CLICKED,
    "unsubscribed": EventType.UNSUBSCRIBED,
    "bounced": EventType.BOUNCED,
    "complained": EventType.COMPLAINED,
}


def campaign_stats(*, workspace: Workspace, campaign: Campaign) -> CampaignStats:
    """The campaign's numbers, computed from its messages and the event log.

    Recipients are its messages; `by_status` counts them per status. Deliveries (as the provider
    reports them), opens, clicks, unsubscribes, bounces and complaints are unique subscribers with
    such an event of the campaign (its `campaign_id`, or the id of one of its messages). Rates are
    those over `sent`, and null (with a note) while nothing has been sent.
    """
    _own(campaign, workspace)
    messages = Message.objects.filter(campaign=campaign)
    by_status = dict.fromkeys(MessageStatus.values, 0)
    for row in messages.values("status").annotate(n=Count("pk")).order_by():
        by_status[row["status"]] = row["n"]
    sent = by_status[MessageStatus.SENT]
    of_campaign = Q(campaign_id=campaign.pk) | Q(message_id__in=messages.values("pk"))
    events = (
        Event.objects.filter(of_campaign, workspace=workspace, type__in=list(ENGAGEMENT_TYPES.values()))
        .values("type")
        .annotate(n=Count("subscriber_id", distinct=True, output_field=IntegerField()))
        .order_by()
    )
    counts = {row["type"]: row["n"] for row in events}
    unique = {name: counts.get(str(event_type), 0) for name, event_type in ENGAGEMENT_TYPES.items()}

    def rate(count: int) -> float | None:
        return round(count / sent, 4) if sent else None

    return CampaignStats(
        recipients=sum(by_status.values()), by_status=by_status, sent=sent, **unique,
        open_rate=rate(unique["opened"]), click_rate=rate(unique["clicked"]),
        unsubscribe_rate=rate(unique["unsubscribed"]), bounce_rate=rate(unique["bounced"]),
        note="" if sent else "Nothing sent yet: rates are null until a message is sent.",
    )  # fmt: skip


def campaign_counts(*, campaign_ids: Collection[int]) -> Mapping[int, dict[str, int]]:
    """Messages per status of each of these campaigns, in one query (for lists and the admin)."""
    counts: dict[int, dict[str, int]] = {pk: {} for pk in campaign_ids}
    rows = (
        Message.objects.filter(campaign_id__in=list(campaign_ids))
        .values("campaign_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        counts[row["campaign_id"]][row["status"]] = row["n"]
    return counts


@dataclass(frozen=True)
class CampaignListNumbers:
    recipients: int
    sent: int
    opened: int
    clicked: int


def campaigns_list_numbers(*, workspace: Workspace, campaign_ids: Collection[int]) -> dict[int, CampaignListNumbers]:
    """Recipients, sent and unique openers and clickers of each campaign, by `campaign_stats`' rules (an
    event is the campaign's by its campaign_id or by one of its messages' ids), in two queries for a page."""
    ids = list(campaign_ids)
    counts = campaign_counts(campaign_ids=ids)
    messages = Message.objects.filter(campaign_id__in=ids)
    of_campaign = Coalesce(
        "campaign_id",
        Subquery(Message.objects.filter(pk=OuterRef("message_id")).values("campaign_id")[:1]),
        output_field=BigIntegerField(),
    )
    rows = (
        Event.objects.filter(
            Q(campaign_id__in=ids) | Q(message_id__in=messages.values("pk")),
            workspace=workspace, type__in=[EventType.OPENED, EventType.CLICKED],
        )
        .annotate(of=of_campaign)
        .values("of", "type")
        .annotate(n=Count("subscriber_id", distinct=True, output_field=IntegerField()))
        .order_by()
    )  # fmt: skip
    unique: dict[tuple[int, str], int] = {(row["of"], row["type"]): row["n"] for row in rows}
    return {
        pk: CampaignListNumbers(
            recipients=sum(counts[pk].values()),
            sent=counts[pk].get(MessageStatus.SENT, 0),
            opened=unique.get((pk, EventType.OPENED), 0),
            clicked=unique.get((pk, EventType.CLICKED), 0),
        )
        for pk in ids
    }
