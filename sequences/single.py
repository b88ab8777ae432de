"""One email, outside any sequence or campaign: a template to a subscriber (the workflow "send email" action).

The Message goes through the normal outbox and sending path, so suppression, the unsubscribe link and
headers, tracking, pacing and the frequency cap all apply; the sender renders it from `Message.template`.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone

from accounts.models import Workspace
from sequences.delivery.tasks import messages_enqueue
from sequences.models import Message, MessageStatus, Template
from subscribers.models import Subscriber


def single_email_queue(
    *, workspace: Workspace, subscriber: Subscriber, template: Template, now: datetime | None = None
) -> Message:
    """Queue one email of `template` to `subscriber` and hand it to the sender once the caller's
    transaction commits. Create it in the same transaction as whatever records that it was sent (the
    workflow step): that record is what makes it exactly once."""
    if subscriber.workspace_id != workspace.pk or template.workspace_id != workspace.pk:
        raise ValueError("subscriber or template belongs to another workspace")
    now = now or timezone.now()
    message = Message.objects.create(
        workspace=workspace,
        subscriber=subscriber,
        template=template,
        to_email=subscriber.email,
        from_email=template.from_email or workspace.from_email or settings.FROM_EMAIL,
        subject=template.subject,  # the raw subject, until the sender renders the real one
        status=MessageStatus.QUEUED,
        send_after=now,
        created_at=now,
    )
    messages_enqueue([message.pk])  # on commit: a rolled-back step leaves no message and enqueues nothing
    return message
