"""Tracking and unsubscribe: resolve a public token to its message, record opens and clicks, unsubscribe.

Every lookup starts from a signed token (sequences.tokens): the token names the message, and the
message names the workspace and the subscriber. Nothing here takes a raw id from a URL, and a token
that is forged, malformed or names a message that no longer exists is a NotFound, all alike.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import Conflict, NotFound
from sequences.models import Enrollment, EnrollmentStatus, Message
from sequences.services import enrollment_exit
from sequences.tokens import TokenPurpose, token_read
from subscribers.models import (
    Event,
    EventType,
    ListMembership,
    MailingList,
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
)
from subscribers.services import (
    event_record,
    list_membership_add,
    list_membership_remove,
    subscriber_unsubscribe,
)

# Sources of an unsubscribe, as stored on the subscriber's `unsubscribed` event.
SOURCE_ONE_CLICK = "one-click"
SOURCE_PREFERENCE_CENTER = "preference-center"
ENROLLMENT_EXIT_REASON = "unsubscribed"

# Machine opens. Apple Mail Privacy Protection fetches every image through Apple's proxies, whose
# user agent is the bare `Mozilla/5.0`; Gmail fetches through its image proxy (`GoogleImageProxy`);
# Yahoo through `YahooMailProxy`. Security scanners often send no user agent at all.
APPLE_PROXY_USER_AGENT = "Mozilla/5.0"
PROXY_USER_AGENT_MARKERS = {
    "googleimageproxy": "google_image_proxy",
    "yahoomailproxy": "yahoo_mail_proxy",
}


def message_get_for_token(*, purpose: TokenPurpose, token: str) -> tuple[Message, int | None]:
    """The message a public token names, with the link index of a click token.

    Zulip-style access helper: a forged or malformed token, a token of another purpose, and a token
    of a message that was deleted all raise the same NotFound.
    """
    claims = token_read(purpose=purpose, token=token)
    if claims is None:
        raise NotFound("Not found.")
    message = (
        Message.objects.select_related("workspace", "subscriber", "enrollment").filter(pk=claims.message_id).first()
    )
    if message is None or message.subscriber.workspace_id != message.workspace_id:
        raise NotFound("Not found.")
    return message, claims.link_index


def _message_event_ids(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.pk,
        "sequence_id": message.enrollment.sequence_id if message.enrollment else None,
        "step_id": message.step_id,
        "campaign_id": message.campaign_id,
    }


# Opens -------------------------------------------------------------------------------------------


def machine_open_reason(*, user_agent: str, sent_at: datetime | None, now: datetime) -> str:
    """Why an open looks like a machine's (a proxy prefetch or a scanner), or "" for a person's.

    Checked in order: no user agent; Apple's privacy proxy (exactly `Mozilla/5.0`); the known mail
    proxies; an open within TRACKING_MACHINE_OPEN_SECONDS of sending (or before the send was recorded).
    """
    agent = (user_agent or "").strip()
    if not agent:
        return "no_user_agent"
    if agent == APPLE_PROXY_USER_AGENT:
        return "apple_privacy_proxy"
    lowered = agent.lower()
    for marker, reason in PROXY_USER_AGENT_MARKERS.items():
        if marker in lowered:
            return reason
    if sent_at is None or (now - sent_at).total_seconds() < settings.TRACKING_MACHINE_OPEN_SECONDS:
        return "opened_right_after_sending"
    return ""


@dataclass(frozen=True)
class OpenOutcome:
    event: Event | None
    unique: bool  # the message's first open
    machine_reason: str


def message_open_record(
    *, message: Message, user_agent: str = "", now: datetime | None = None, inferred_from_click: bool = False
) -> OpenOutcome:
    """Record that the message was opened.

    The first open is an `opened` event with dedupe key `open:<message id>` (so two first opens racing
    still write one); every later open is another `opened` event marked `repeat: true`, without a
    dedupe key, so opens are counted and unique opens are the events without `repeat`. Probable machine
    opens are flagged (`machine_open: true`, `reason`), never dropped. With the workspace's open
    tracking turned off nothing is recorded.
    """
    if not message.workspace.track_opens:
        return OpenOutcome(event=None, unique=False, machine_reason="")
    now = now or timezone.now()
    reason = "" if inferred_from_click else machine_open_reason(user_agent=user_agent, sent_at=message.sent_at, now=now)
    properties: dict[str, Any] = {"machine_open": bool(reason)}
    if reason:
        properties["reason"] = reason
    if inferred_from_click:
        properties["inferred_from_click"] = True
    common = {
        "workspace": message.workspace, "subscriber": message.subscriber, "type": EventType.OPENED,
        "occurred_at": now, **_message_event_ids(message),
    }  # fmt: skip
    event, created = event_record(**common, properties=properties, dedupe_key=f"open:{message.pk}")
    if created:
        return OpenOutcome(event=event, unique=True, machine_reason=reason)
    if inferred_from_click:  # a click after an open is not another open
        return OpenOutcome(event=None, unique=False, machine_reason=reason)
    event, _ = event_record(**common, properties={**properties, "repeat": True})
    return OpenOutcome(event=event, unique=False, machine_reason=reason)


# Clicks ------------------------------------------------------------------------------------------


def _safe_target(url: Any) -> str | None:
    """The URL when it is an absolute http(s) URL with a host and nothing that could bend a redirect."""
    if not isinstance(url, str) or not url or len(url) > 8192:
        return None
    # Control characters could split the Location header; a backslash reads as "/" to browsers. A space
    # (a merge tag's value) is fine: the redirect percent-encodes it.
    if any(ord(char) < 0x20 or char in "\\\x7f" for char in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def message_link_get(*, message: Message, link_index: int | None) -> str:
    """The original URL of the message's link `link_index`: the only place a click may go.

    An index out of range, or a stored link that is not an absolute http(s) URL, is a NotFound.
    """
    links = message.links if isinstance(message.links, list) else []
    if link_index is None or not 0 <= link_index < len(links):
        raise NotFound("Not found.")
    target = _safe_target(links[link_index])
    if target is None:
        raise NotFound("Not found.")
    return target


@transaction.atomic
def message_click_record(
    *, message: Message, link_index: int | None, user_agent: str = "", now: datetime | None = None
) -> tuple[str, Event]:
    """Record a click on link `link_index` and answer the URL to redirect to.

    The first click on a link carries dedupe key `click:<message id>:<link index>`; later clicks are
    `repeat: true`. A click proves the email was opened, so a message with no open yet gets its unique
    open (`inferred_from_click: true`): opens are not lost when images are blocked.
    """
    url = message_link_get(message=message, link_index=link_index)
    now = now or timezone.now()
    common = {
        "workspace": message.workspace, "subscriber": message.subscriber, "type": EventType.CLICKED,
        "occurred_at": now, **_message_event_ids(message),
    }  # fmt: skip
    properties = {"url": url, "link_index": link_index}
    event, created = event_record(**common, properties=properties, dedupe_key=f"click:{message.pk}:{link_index}")
    if not created:
        event, _ = event_record(**common, properties={**properties, "repeat": True})
    message_open_record(message=message, user_agent=user_agent, now=now, inferred_from_click=True)
    return url, event


# Unsubscribe and preferences ---------------------------------------------------------------------


def subscriber_enrollments_exit(*, subscriber: Subscriber, reason: str) -> int:
    """Exit every active enrollment of the subscriber (through `enrollment_exit`); answers how many."""
    exited = 0
    active = Enrollment.objects.filter(
        workspace_id=subscriber.workspace_id, subscriber=subscriber, status=EnrollmentStatus.ACTIVE
    ).select_related("workspace")
    for enrollment in active:
        try:
            enrollment_exit(workspace=enrollment.workspace, enrollment=enrollment, reason=reason)
        except (Conflict, NotFound):  # finished or gone meanwhile: nothing left to exit
            continue
        exited += 1
    return exited


@transaction.atomic
def message_subscriber_unsubscribe(*, message: Message, source: str) -> bool:
    """Unsubscribe the message's subscriber from everything and exit their active enrollments.

    Idempotent: a second call changes nothing and writes no event. Answers whether the status changed.
    The `unsubscribed` event (written by the subscribers service) has `source` (`one-click` or
    `preference-center`), `by` = `message:<id>` and a reason naming the message. A subscriber who is
    bounced or complained keeps that status (it already stops all sending and says more).
    """
    subscriber = Subscriber.objects.select_for_update().get(pk=message.subscriber_id)
    changed = subscriber.status == SubscriberStatus.ACTIVE
    if changed:
        sequence_id = message.enrollment.sequence_id if message.enrollment is not None else None
        subscriber = subscriber_unsubscribe(
            workspace=message.workspace, subscriber=subscriber, source=source, actor=f"message:{message.pk}",
            reason=f"{source} unsubscribe from message {message.pk}", message_id=message.pk,
            sequence_id=sequence_id, step_id=message.step_id,
        )  # fmt: skip
    message.subscriber = subscriber
    subscriber_enrollments_exit(subscriber=subscriber, reason=ENROLLMENT_EXIT_REASON)
    return changed


@dataclass(frozen=True)
class ListChoice:
    id: int
    name: str
    description: str
    subscribed: bool


def message_list_choices(*, message: Message) -> list[ListChoice]:
    """The lists the message's subscriber is or was on (the preference center never shows others);
    pending (unconfirmed) memberships count as subscribed."""
    memberships = (
        ListMembership.objects.filter(subscriber=message.subscriber, mailing_list__workspace=message.workspace)
        .select_related("mailing_list")
        .order_by("mailing_list__name", "mailing_list_id")
    )
    return [
        ListChoice(
            id=m.mailing_list_id,
            name=m.mailing_list.name,
            description=m.mailing_list.description,
            subscribed=m.status != MembershipStatus.UNSUBSCRIBED,
        )
        for m in memberships
    ]


@transaction.atomic
def message_preferences_update(*, message: Message, subscribed_list_ids: Collection[int]) -> dict[str, list[int]]:
    """Set the subscriber's list memberships from the preference center: lists in `subscribed_list_ids`
    are (re)joined, the subscriber's other lists are left. Ids of lists the subscriber was never on,
    or of another workspace, are ignored. Someone unsubscribed from everything can only leave lists:
    coming back takes a new opt-in, not a link in an old email. Answers the ids joined and left."""
    subscriber = Subscriber.objects.select_for_update().get(pk=message.subscriber_id)
    message.subscriber = subscriber
    can_join = subscriber.status == SubscriberStatus.ACTIVE
    wanted = set(subscribed_list_ids)
    changed: dict[str, list[int]] = {"joined": [], "left": []}
    lists = {
        m.mailing_list_id: m
        for m in ListMembership.objects.filter(
            subscriber=message.subscriber, mailing_list__workspace=message.workspace
        ).select_related("mailing_list")
    }
    for list_id, membership in sorted(lists.items()):
        mailing_list: MailingList = membership.mailing_list
        is_on = membership.status != MembershipStatus.UNSUBSCRIBED
        if list_id in wanted and not is_on and can_join:
            list_membership_add(workspace=message.workspace, subscriber=message.subscriber, mailing_list=mailing_list)
            changed["joined"].append(list_id)
        elif list_id not in wanted and is_on:
            list_membership_remove(
                workspace=message.workspace, subscriber=message.subscriber, mailing_list=mailing_list
            )
            changed["left"].append(list_id)
    return changed
