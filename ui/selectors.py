"""Reads the UI pages show: every number is counted from the database and the event log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain
from typing import Any

from django.db.models import Count
from django.utils import timezone

from accounts.models import Workspace
from sequences.models import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    Message,
    Sequence,
    SequenceStatus,
    Template,
)
from subscribers.models import Event, EventType, Subscriber, SubscriberStatus

STEP_EVENT_TYPES = (EventType.SENT, EventType.OPENED, EventType.CLICKED, EventType.UNSUBSCRIBED, EventType.BOUNCED)


def dashboard_numbers(*, workspace: Workspace, now: datetime | None = None, days: int = 7) -> dict[str, int]:
    """Active subscribers, messages sent/opened/clicked in the last `days` days (from the event log),
    active sequences and enrollments, and campaigns that are sending."""
    since = (now or timezone.now()) - timedelta(days=days)
    by_type = dict(
        Event.objects.filter(
            workspace=workspace, occurred_at__gte=since, type__in=[EventType.SENT, EventType.OPENED, EventType.CLICKED]
        )
        .values_list("type")
        .annotate(n=Count("id"))
        .values_list("type", "n")
    )
    return {
        "subscribers_active": Subscriber.objects.filter(workspace=workspace, status=SubscriberStatus.ACTIVE).count(),
        "sent": by_type.get(EventType.SENT, 0),
        "opened": by_type.get(EventType.OPENED, 0),
        "clicked": by_type.get(EventType.CLICKED, 0),
        "sequences_active": Sequence.objects.filter(workspace=workspace, status=SequenceStatus.ACTIVE).count(),
        "enrollments_active": Enrollment.objects.filter(workspace=workspace, status=EnrollmentStatus.ACTIVE).count(),
        "campaigns_running": Campaign.objects.filter(workspace=workspace, status=CampaignStatus.SENDING).count(),
    }


@dataclass(frozen=True)
class GettingStartedStep:
    label: str
    done: bool
    url_name: str  # where to do it
    action: str  # the link's text


def getting_started(*, workspace: Workspace) -> list[GettingStartedStep]:
    """The first things a new workspace does, each marked done from its data (not from clicks)."""
    sequences = Sequence.objects.filter(workspace=workspace)
    return [
        GettingStartedStep("Set who your emails come from", bool(workspace.from_email), "ui:settings", "Open settings"),
        GettingStartedStep(
            "Import your subscribers",
            Subscriber.objects.filter(workspace=workspace).exists(),
            "ui:import",
            "Import a CSV",
        ),
        GettingStartedStep(
            "Write an email template",
            Template.objects.filter(workspace=workspace).exists(),
            "ui:template-new",
            "New template",
        ),
        GettingStartedStep(
            "Build a sequence with its steps and send window",
            sequences.filter(steps__isnull=False).exists(),
            "ui:sequence-new",
            "New sequence",
        ),
        GettingStartedStep(
            "Activate it and enroll subscribers",
            Enrollment.objects.filter(workspace=workspace).exists(),
            "ui:sequences",
            "Your sequences",
        ),
    ]


def step_numbers(*, workspace: Workspace, sequence_ids: list[int]) -> dict[int, dict[str, int]]:
    """step id -> {sent, opened, clicked, unsubscribed, bounced}, counted from the event log in one query."""
    rows = (
        Event.objects.filter(workspace=workspace, sequence_id__in=sequence_ids, type__in=STEP_EVENT_TYPES)
        .exclude(step_id=None)
        .values_list("step_id", "type")
        .annotate(n=Count("id"))
    )
    numbers: dict[int, dict[str, int]] = {}
    for step_id, event_type, n in rows:
        numbers.setdefault(step_id, {t.value: 0 for t in STEP_EVENT_TYPES})[event_type] = n
    return numbers


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "event" or "message"
    title: str
    detail: str


def subscriber_timeline(*, workspace: Workspace, subscriber: Subscriber, limit: int = 50) -> list[TimelineEntry]:
    """The subscriber's latest events and messages, newest first, merged into one list."""
    events = list(
        Event.objects.filter(workspace=workspace, subscriber=subscriber).order_by("-occurred_at", "-id")[:limit]
    )
    messages = Message.objects.filter(workspace=workspace, subscriber=subscriber).order_by("-created_at", "-id")[:limit]
    sequence_names = dict(
        Sequence.objects.filter(
            workspace=workspace, pk__in={e.sequence_id for e in events if e.sequence_id}
        ).values_list("pk", "name")
    )
    entries = chain(
        (TimelineEntry(e.occurred_at, "event", e.get_type_display(), _event_detail(e, sequence_names)) for e in events),
        (
            TimelineEntry(m.sent_at or m.created_at, "message", f"Email: {m.subject or '(no subject)'}", m.status)
            for m in messages
        ),
    )
    return sorted(entries, key=lambda entry: entry.at, reverse=True)[:limit]


def _or_dash(value: Any) -> str:
    return "—" if value in (None, "") else str(value)


def _event_detail(event: Event, sequence_names: dict[int, str]) -> str:
    """A line a marketer can read: names rather than ids, the change a field went through."""
    if event.type == EventType.CUSTOM:
        return event.name
    properties: dict[str, Any] = event.properties if isinstance(event.properties, dict) else {}
    if event.type == EventType.FIELD_CHANGED and "field" in properties:
        before, after = (_or_dash(properties.get(key)) for key in ("from", "to"))
        return f"{properties['field']}: {before} → {after}"
    if event.type in (EventType.TAG_ADDED, EventType.TAG_REMOVED) and "tag" in properties:
        return str(properties["tag"])
    parts = []
    if event.sequence_id in sequence_names:
        parts.append(f"sequence {sequence_names[event.sequence_id]}")
    if "list" in properties:
        parts.append(f"list {properties['list']}")
    # The rest, ids left out (they mean nothing on this page), in a stable order.
    shown = {"list", "tag"}
    rest = sorted(
        (k, v) for k, v in properties.items() if k not in shown and not k.endswith("_id") and v not in ("", None)
    )
    parts.extend(f"{key}: {value}" for key, value in rest[:3])
    return ", ".join(parts)
