"""Automation: workflows (trigger -> entry conditions -> actions), their runs, and outgoing webhooks.

The JSON shapes of `Workflow.trigger_config` and `Workflow.actions` are documented in
docs/automation.md and validated by `automation.services`; nothing else writes these rows.
"""

from __future__ import annotations

import secrets
import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Workspace
from subscribers.models import Subscriber


class WorkflowStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


class TriggerType(models.TextChoices):
    EVENT = "event", "An event is recorded"
    LIST_SUBSCRIBED = "list_subscribed", "Subscribed to a list"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    TAG_ADDED = "tag_added", "Tag added"
    TAG_REMOVED = "tag_removed", "Tag removed"
    FIELD_CHANGED = "field_changed", "Field changed"
    DATE = "date", "A date attribute"
    SEGMENT_ENTERED = "segment_entered", "Entered a segment"
    SEGMENT_LEFT = "segment_left", "Left a segment"
    CRON = "cron", "On a schedule"
    WEBHOOK = "webhook", "Inbound webhook"
    API = "api", "API call"


class ReEntry(models.TextChoices):
    ONCE = "once", "Once per subscriber, ever"
    AFTER_FINISH = "after_finish", "Again once the previous run has finished"
    ALWAYS = "always", "Every time it triggers (one run per dedupe key)"


def hook_token_new() -> str:
    return secrets.token_urlsafe(24)


class Workflow(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="workflows")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=WorkflowStatus.choices, default=WorkflowStatus.DRAFT)
    trigger_type = models.CharField(max_length=32, choices=TriggerType.choices)
    trigger_config = models.JSONField(default=dict, blank=True)
    # What the event matcher looks a workflow up by, beside its type: the event name, list id, tag
    # name, field key or segment id (lower-cased text; "*" for "any"). Derived from trigger_config by
    # the service, so matching an event is one indexed query, never a scan of every workflow.
    trigger_key = models.CharField(max_length=200, blank=True)
    # What a scheduled trigger last saw, kept by automation.triggers (never by the service): for a segment
    # trigger, the segment id its membership snapshot belongs to and when it was taken. No snapshot, or
    # one of another segment, means the next evaluation is a baseline that starts no runs.
    trigger_state = models.JSONField(default=dict, blank=True, editable=False)
    entry_rules = models.JSONField(
        null=True, blank=True, help_text="A segment rule tree the subscriber must match when a run starts."
    )
    actions = models.JSONField(default=list, blank=True, help_text="The ordered actions, with nested branches.")
    re_entry = models.CharField(max_length=16, choices=ReEntry.choices, default=ReEntry.ONCE)
    dedupe_property = models.CharField(
        max_length=100,
        blank=True,
        help_text="A property of the trigger's payload (e.g. order_id) that makes a run unique; "
        "empty: the triggering event's id.",
    )
    hook_token = models.CharField(max_length=64, unique=True, default=hook_token_new)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="workflow_unique_name")]
        indexes = [
            models.Index(
                fields=["workspace", "trigger_type", "trigger_key"],
                condition=Q(status="active"),
                name="workflow_trigger_lookup",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    ACTIVE = "active", "Active"  # running now, or waiting (see due_at / wait_event_name)
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    TIMED_OUT = "timed_out", "Timed out"


OPEN_RUN_STATUSES = (RunStatus.ACTIVE, RunStatus.PAUSED)


class WorkflowRun(models.Model):
    """One subscriber's way through one workflow, started by one trigger.

    A run is advanced by the engine until it finishes or waits. A wait is this row itself: `due_at`
    (a duration, a time of day, or a wait-for-event's timeout) is picked up by the scheduler's tick, and
    `wait_event_name` / `wait_key_value` let an incoming event find the runs waiting for it by index.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="workflow_runs")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="workflow_runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.ACTIVE)
    dedupe_key = models.CharField(max_length=200)
    trigger_type = models.CharField(max_length=32, choices=TriggerType.choices)
    trigger_event_id = models.BigIntegerField(null=True, blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="The trigger's payload: event name, properties.")
    position = models.JSONField(default=list, blank=True, help_text="Path to the next action, e.g. [2, 'then', 0].")
    due_at = models.DateTimeField(null=True, blank=True, help_text="When the engine next advances this run.")
    wait = models.JSONField(null=True, blank=True, help_text="The wait in progress, as the action defined it.")
    wait_event_name = models.CharField(max_length=100, blank=True)
    wait_key_value = models.CharField(max_length=200, blank=True)
    step_count = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=300, blank=True, help_text="Why the run ended, in words.")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "subscriber", "dedupe_key"], name="workflow_run_unique_dedupe_key"
            ),
        ]
        indexes = [
            models.Index(fields=["due_at"], condition=Q(status="active"), name="workflow_run_due"),
            models.Index(
                fields=["workspace", "wait_event_name"],
                condition=Q(status="active") & ~Q(wait_event_name=""),
                name="workflow_run_waiting_event",
            ),
            models.Index(fields=["workflow", "status"], name="workflow_run_status"),
            models.Index(fields=["subscriber", "workflow"], name="workflow_run_subscriber"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id}/{self.subscriber_id} ({self.status})"


class StepStatus(models.TextChoices):
    DONE = "done", "Done"
    WAITING = "waiting", "Waiting"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class WorkflowRunStep(models.Model):
    """One line of a run's log: what one action did, when, and why."""

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="steps")
    seq = models.PositiveIntegerField(help_text="Order within the run, from 1.")
    path = models.CharField(max_length=200, help_text="Where the action sits, e.g. 2.then.0.")
    action_type = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=StepStatus.choices)
    detail = models.TextField(blank=True, help_text="What happened, in words (e.g. 'condition held: then').")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="workflow_run_step_unique_seq")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.action_type} {self.status}"


class WorkflowSegmentMember(models.Model):
    """Who was in a segment-triggered workflow's segment at its last evaluation: the next one diffs
    against this to find who entered and who left."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="segment_members")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="+")
    since = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow", "subscriber"], name="workflow_segment_member_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id}/{self.subscriber_id}"


def webhook_secret_new() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """An integrator's URL that receives signed POSTs for the event types it subscribed to."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, help_text='Event types to receive; ["*"] for all.')
    secret = models.CharField(max_length=100, default=webhook_secret_new)
    active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["workspace"], condition=Q(active=True), name="webhook_endpoint_active")]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # not yet delivered; next_attempt_at says when it is tried (again)
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"  # gave up: retries exhausted, endpoint disabled or deleted target refused


class WebhookDelivery(models.Model):
    """One payload for one endpoint, tried until it succeeds or its retries run out (24 hours)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="webhook_deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # The delivery's public id: the payload's "id" and the X-EmailSequence-Delivery header, the same on
    # every retry, so a receiver can drop a delivery it has already processed.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=100)
    event_id = models.BigIntegerField(null=True, blank=True, help_text="The event log row this carries, if any.")
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker that holds the lease is sending this attempt; nobody else may until it expires.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When an attempt task was last handed to the broker: the tick does not hand it out again while
    # that task may still be waiting in the queue.
    queued_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], condition=Q(event_id__isnull=False), name="webhook_delivery_once"
            ),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="webhook_delivery_due"),
            models.Index(fields=["endpoint", "created_at"], name="webhook_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery: the log an integrator reads when their endpoint misbehaves."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["delivery", "attempted_at", "id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} @ {self.attempted_at:%Y-%m-%d %H:%M:%S} → {self.status_code or self.error}"
