"""The reputation guardrail: a workspace whose recent sends bounce or draw complaints too often pauses itself."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from accounts.models import Workspace
from accounts.services import workspace_sending_pause
from sequences.delivery.pace import Reason
from sequences.models import Message, MessageStatus
from subscribers.models import Event, EventType

logger = logging.getLogger(__name__)

# Messages that were handed to the server: accepted (sent) or refused for good (failed; a hard bounce).
ATTEMPTED_STATUSES = (MessageStatus.SENT, MessageStatus.FAILED)


@dataclass(frozen=True)
class GuardrailResult:
    sends: int
    bounces: int
    complaints: int
    paused: bool  # paused by this check
    reason: str = ""

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.sends if self.sends else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sends if self.sends else 0.0


def _percent(value: float) -> str:
    return f"{value * 100:.2f}".rstrip("0").rstrip(".") + " %"


def workspace_guardrail_check(*, workspace: Workspace) -> GuardrailResult:
    """Pause `workspace` when its bounce or complaint rate over its last DELIVERY_GUARDRAIL_WINDOW sends
    reaches DELIVERY_GUARDRAIL_BOUNCE_RATE or DELIVERY_GUARDRAIL_COMPLAINT_RATE; returns the numbers.

    Nothing happens under DELIVERY_GUARDRAIL_MIN_SENDS sends (three early bounces are no trend), nor to a
    workspace already paused. Bounces and complaints are events linked to those messages by message_id;
    each message counts once. Three queries; the sender calls it after a chunk with bounces, the ESP
    webhooks after recording bounces or complaints.
    """
    window = list(
        Message.objects.filter(workspace=workspace, status__in=ATTEMPTED_STATUSES)
        .order_by("-created_at", "-id")
        .values_list("pk", "created_at")[: settings.DELIVERY_GUARDRAIL_WINDOW]
    )
    sends = len(window)
    if sends == 0:
        return GuardrailResult(sends=0, bounces=0, complaints=0, paused=False)
    oldest = min(created_at for _, created_at in window)
    counts = dict(
        Event.objects.filter(
            workspace=workspace,
            type__in=[EventType.BOUNCED, EventType.COMPLAINED],
            occurred_at__gte=oldest,
            message_id__in=[pk for pk, _ in window],
        )
        .values_list("type")
        .annotate(messages=Count("message_id", distinct=True))
        .values_list("type", "messages")
    )
    bounces, complaints = counts.get(EventType.BOUNCED, 0), counts.get(EventType.COMPLAINED, 0)
    result = GuardrailResult(sends=sends, bounces=bounces, complaints=complaints, paused=False)
    if sends < settings.DELIVERY_GUARDRAIL_MIN_SENDS:
        return result
    problems = []
    if result.bounce_rate >= settings.DELIVERY_GUARDRAIL_BOUNCE_RATE:
        problems.append(
            f"bounce rate {_percent(result.bounce_rate)} ({bounces} of the last {sends} sends) reached the "
            f"{_percent(settings.DELIVERY_GUARDRAIL_BOUNCE_RATE)} limit"
        )
    if result.complaint_rate >= settings.DELIVERY_GUARDRAIL_COMPLAINT_RATE:
        problems.append(
            f"complaint rate {_percent(result.complaint_rate)} ({complaints} of the last {sends} sends) reached "
            f"the {_percent(settings.DELIVERY_GUARDRAIL_COMPLAINT_RATE)} limit"
        )
    if not problems:
        return result
    reason = ("Paused by the guardrail: " + "; ".join(problems))[:255]
    paused = workspace_sending_pause(workspace=workspace, reason=reason, actor="guardrail")
    if paused:
        logger.warning("Workspace %s paused: %s", workspace.pk, reason)
    return GuardrailResult(sends=sends, bounces=bounces, complaints=complaints, paused=paused, reason=reason)


def messages_requeue_after_resume(*, workspace: Workspace) -> int:
    """The messages held back while `workspace` was paused go back to the outbox now (the next delivery
    tick sends them); returns how many. Registered (SequencesConfig.ready) as a handler of
    accounts.services.workspace_sending_resume."""
    now = timezone.now()
    updated = Message.objects.filter(
        workspace=workspace, status=MessageStatus.DEFERRED, deferred_reason=Reason.WORKSPACE_PAUSED
    ).update(status=MessageStatus.QUEUED, send_after=now, deferred_reason="", updated_at=now)
    if updated:
        logger.info("Workspace %s resumed: %d held messages queued again", workspace.pk, updated)
    return updated
