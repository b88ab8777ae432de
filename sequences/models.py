"""Templates, sequences and their steps, enrollments, and the local outbox of the embedded mode."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Workspace
from subscribers.models import Subscriber


class Template(models.Model):
    """An email's content. Subject, preheader, HTML and text may use merge tags (Django template syntax)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=255)
    preheader = models.CharField(max_length=255, blank=True)
    html = models.TextField()
    text = models.TextField(blank=True, help_text="Plain-text part; generated from the HTML when empty.")
    from_name = models.CharField(max_length=200, blank=True, help_text="Overrides the workspace's.")
    from_email = models.EmailField(blank=True, help_text="Overrides the workspace's.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SequenceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class ReEntry(models.TextChoices):
    NEVER = "never", "Never: once per subscriber"
    AFTER_COMPLETION = "after_completion", "Again after finishing or exiting"
    ALWAYS = "always", "Always (a new enrollment each time; one active at a time)"


def all_days() -> list[int]:
    return [0, 1, 2, 3, 4, 5, 6]


class Sequence(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sequences")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=SequenceStatus.choices, default=SequenceStatus.DRAFT)
    # Send window in the subscriber's time zone (the workspace's when the subscriber has none).
    # Days are ISO weekdays counted from Monday = 0; hours are [start, end) on a 24-hour clock.
    send_days = models.JSONField(default=all_days, blank=True)
    send_start_hour = models.PositiveSmallIntegerField(default=0)
    send_end_hour = models.PositiveSmallIntegerField(default=24)
    re_entry = models.CharField(max_length=16, choices=ReEntry.choices, default=ReEntry.NEVER)
    goal_event = models.CharField(max_length=100, blank=True, help_text="An event name; reaching it exits.")
    mailing_list = models.ForeignKey(
        "subscribers.MailingList", null=True, blank=True, on_delete=models.PROTECT, related_name="sequences",
        help_text="Optional: only subscribed members of this list receive the sequence; leaving the list exits it.",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class DelayUnit(models.TextChoices):
    SECONDS = "seconds", "Seconds"
    MINUTES = "minutes", "Minutes"
    HOURS = "hours", "Hours"
    DAYS = "days", "Days"
    WEEKS = "weeks", "Weeks"


class Step(models.Model):
    """An email step: wait `delay`, then send `template`. Steps run in `position` order."""

    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True)
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="steps")
    delay_value = models.PositiveIntegerField(default=0)
    delay_unit = models.CharField(max_length=8, choices=DelayUnit.choices, default=DelayUnit.DAYS)
    high_priority = models.BooleanField(
        default=False, help_text="Sent even when the subscriber has reached the workspace's frequency cap."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sequence", "position", "id"]
        indexes = [models.Index(fields=["sequence", "position"], name="step_sequence_position")]

    def __str__(self) -> str:
        return self.name or f"Step {self.position}"

    @property
    def delay(self) -> timedelta:
        return timedelta(**{self.delay_unit: self.delay_value})


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    EXITED = "exited", "Exited"
    FAILED = "failed", "Failed"


class Enrollment(models.Model):
    """A subscriber's way through a sequence. The scheduler picks up active ones by `next_run_at`."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="enrollments")
    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="enrollments")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="enrollments")
    status = models.CharField(max_length=16, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE)
    current_step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The next step to run."
    )
    next_run_at = models.DateTimeField(null=True, blank=True)
    enrolled_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=100, blank=True, help_text="api, admin, workflow, ...")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sequence", "subscriber"],
                condition=Q(status="active"),
                name="enrollment_one_active_per_subscriber",
            ),
        ]
        indexes = [
            # The scheduler's only way to find due work: active enrollments by due time.
            models.Index(fields=["next_run_at"], condition=Q(status="active"), name="enrollment_due"),
            models.Index(fields=["sequence", "status"], name="enrollment_sequence_status"),
            models.Index(fields=["subscriber", "sequence"], name="enrollment_subscriber"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.subscriber_id} in {self.sequence_id} ({self.status})"


class OutboxEmail(models.Model):
    """An email the embedded mode 'sent': stored here instead of leaving the machine."""

    message_id = models.CharField(max_length=255, blank=True, db_index=True)
    from_email = models.CharField(max_length=320)
    to = models.JSONField(default=list)
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    text = models.TextField(blank=True)
    html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    raw = models.TextField(help_text="The whole MIME message as it would have been sent.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "outbox email"

    def __str__(self) -> str:
        return f"{self.subject} → {', '.join(self.to)}"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    PAUSED = "paused", "Paused"
    SENT = "sent", "Sent"
    CANCELLED = "cancelled", "Cancelled"


class Campaign(models.Model):
    """A broadcast: one template to an audience (lists, tags and segments, minus exclusions), now or at a time.

    Its messages go through the same outbox as sequence steps; the unique key on (campaign, subscriber)
    makes a second message to the same person impossible.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="campaigns")
    status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    lists = models.ManyToManyField("subscribers.MailingList", blank=True, related_name="campaigns")
    tags = models.ManyToManyField("subscribers.Tag", blank=True, related_name="campaigns")
    exclude_lists = models.ManyToManyField("subscribers.MailingList", blank=True, related_name="+")
    exclude_tags = models.ManyToManyField("subscribers.Tag", blank=True, related_name="+")
    # Saved segments, evaluated once, when the campaign starts (its messages are the audience then).
    segments = models.ManyToManyField("subscribers.Segment", blank=True, related_name="campaigns")
    exclude_segments = models.ManyToManyField("subscribers.Segment", blank=True, related_name="+")
    high_priority = models.BooleanField(
        default=False, help_text="Sent even when a subscriber has reached the workspace's frequency cap."
    )
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="Empty: send when started.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "scheduled_at"], name="campaign_status_scheduled")]

    def __str__(self) -> str:
        return self.name


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed"
    DEFERRED = "deferred", "Deferred"


class Message(models.Model):
    """One email to one subscriber: the outbox row the sending path claims, sends and records.

    The unique key on (enrollment, step) makes a second message for the same step impossible, however
    many schedulers run. A claim is a lease: `lease_owner` holds the row until `lease_expires_at`, after
    which another worker may take it again (a worker killed mid-send loses nothing).
    """

    # Outbox rows are inserted by the hundred thousand: foreign keys whose lookups a composite index
    # below already serves get no index of their own (each index costs every insert).
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="messages", db_index=False
    )  # message_ws_status
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="messages", db_index=False
    )  # message_subscriber
    enrollment = models.ForeignKey(
        Enrollment, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    step = models.ForeignKey(Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="messages", db_index=False
    )  # message_once_per_campaign_subscriber
    template = models.ForeignKey(Template, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_email = models.EmailField(max_length=254)
    from_email = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    send_after = models.DateTimeField(default=timezone.now, help_text="Not claimed before this time.")
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    links = models.JSONField(
        default=list, blank=True, help_text="The URLs of the message's links, by index: the only click targets."
    )
    message_id_header = models.CharField(max_length=255, blank=True, help_text="The RFC 5322 Message-ID.")
    provider_message_id = models.CharField(max_length=255, blank=True)  # message_provider_id
    last_error = models.TextField(blank=True)
    deferred_reason = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment", "step"],
                condition=Q(enrollment__isnull=False, step__isnull=False),
                name="message_once_per_enrollment_step",
            ),
            models.UniqueConstraint(
                fields=["campaign", "subscriber"],
                condition=Q(campaign__isnull=False),
                name="message_once_per_campaign_subscriber",
            ),
        ]
        indexes = [
            # The sender's claim: queued or deferred rows whose time has come, oldest first.
            models.Index(
                fields=["send_after"],
                condition=Q(status__in=["queued", "deferred"]),
                name="message_claimable",
            ),
            # Reclaiming expired leases of workers that died mid-send.
            models.Index(fields=["lease_expires_at"], condition=Q(status="sending"), name="message_leased"),
            models.Index(fields=["workspace", "status", "created_at"], name="message_ws_status"),
            models.Index(fields=["subscriber", "created_at"], name="message_subscriber"),
            # ESP webhooks find their message by the provider's id; rows without one stay out of it.
            models.Index(
                fields=["provider_message_id"], condition=~Q(provider_message_id=""), name="message_provider_id"
            ),
            # The send-latency metric: messages sent in the last hour, read at every /metrics scrape.
            models.Index(fields=["sent_at"], condition=Q(status="sent"), name="message_sent_recent"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to_email} ({self.status})"
