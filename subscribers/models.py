"""Subscribers, their fields, lists, tags, suppressions, imports and the event log."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import Workspace


class FieldType(models.TextChoices):
    TEXT = "text", "Text"
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "Boolean"
    DATE = "date", "Date"
    DATETIME = "datetime", "Date and time"
    CHOICE = "choice", "Choice"


class FieldDefinition(models.Model):
    """A custom attribute a workspace keeps on its subscribers; `Subscriber.attributes` is checked against these."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="field_definitions")
    key = models.SlugField(max_length=64, help_text="The attribute's key, e.g. `plan`; used in merge tags.")
    label = models.CharField(max_length=100)
    type = models.CharField(max_length=16, choices=FieldType.choices, default=FieldType.TEXT)
    choices = models.JSONField(default=list, blank=True, help_text="Allowed values of a choice field.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="field_definition_unique_key")]
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class SubscriberStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"


class Subscriber(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="subscribers")
    email = models.EmailField(max_length=254)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    time_zone = models.CharField(max_length=64, blank=True, help_text="IANA zone; empty uses the workspace's.")
    locale = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, choices=SubscriberStatus.choices, default=SubscriberStatus.ACTIVE)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(max_length=255, blank=True)
    status_changed_by = models.CharField(
        max_length=100, blank=True, help_text="Who changed the status: user:ID email, key:ID prefix, system."
    )
    consent_source = models.CharField(max_length=100, blank=True, help_text="api, import, form, admin, ...")
    consent_ip = models.GenericIPAddressField(null=True, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True, help_text="Double opt-in confirmation.")
    tags: models.ManyToManyField[Tag, Any] = models.ManyToManyField("Tag", blank=True, related_name="subscribers")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("workspace", Lower("email"), name="subscriber_unique_email_ci"),
        ]
        indexes = [
            models.Index(fields=["workspace", "status"], name="subscriber_ws_status"),
            models.Index(fields=["workspace", "created_at"], name="subscriber_ws_created"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.email

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class MailingList(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="lists")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    double_opt_in = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="list_unique_name")]
        ordering = ["name"]
        verbose_name = "list"

    def __str__(self) -> str:
        return self.name


class MembershipStatus(models.TextChoices):
    SUBSCRIBED = "subscribed", "Subscribed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    PENDING = "pending", "Pending confirmation"


class ListMembership(models.Model):
    mailing_list = models.ForeignKey(MailingList, on_delete=models.CASCADE, related_name="memberships")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="list_memberships")
    status = models.CharField(max_length=16, choices=MembershipStatus.choices, default=MembershipStatus.SUBSCRIBED)
    subscribed_at = models.DateTimeField(default=timezone.now)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailing_list", "subscriber"], name="list_membership_unique"),
        ]
        indexes = [models.Index(fields=["mailing_list", "status"], name="list_membership_status")]

    def __str__(self) -> str:
        return f"{self.subscriber_id} in {self.mailing_list_id} ({self.status})"


class Tag(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="tag_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SuppressionKind(models.TextChoices):
    EMAIL = "email", "Address"
    DOMAIN = "domain", "Whole domain"


class Suppression(models.Model):
    """An address or domain that is never sent to, whatever its subscriber status says."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="suppressions")
    kind = models.CharField(max_length=8, choices=SuppressionKind.choices, default=SuppressionKind.EMAIL)
    value = models.CharField(max_length=254, help_text="A lower-cased address or domain.")
    reason = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=100, blank=True, help_text="bounce, complaint, api, admin, import, ...")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "kind", "value"], name="suppression_unique")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.value


class EventType(models.TextChoices):
    SUBSCRIBED = "subscribed", "Subscribed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    CONFIRMED = "confirmed", "Confirmed"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"
    ENROLLED = "enrolled", "Enrolled"
    EXITED = "exited", "Exited"
    GOAL = "goal", "Goal reached"
    TAG_ADDED = "tag_added", "Tag added"
    TAG_REMOVED = "tag_removed", "Tag removed"
    FIELD_CHANGED = "field_changed", "Field changed"
    CUSTOM = "custom", "Custom"


class Event(models.Model):
    """One line of the event log. Written only through `subscribers.services.event_record`."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="events")
    subscriber = models.ForeignKey(Subscriber, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=16, choices=EventType.choices, default=EventType.CUSTOM)
    name = models.CharField(max_length=100, help_text="For custom events, the name; otherwise the type.")
    properties = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    recorded_at = models.DateTimeField(auto_now_add=True)
    # Ids of higher-layer rows (sequences, messages, campaigns): plain integers so this layer never
    # imports those apps.
    message_id = models.BigIntegerField(null=True, blank=True)
    sequence_id = models.BigIntegerField(null=True, blank=True)
    step_id = models.BigIntegerField(null=True, blank=True)
    campaign_id = models.BigIntegerField(null=True, blank=True)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 - NULLs never collide

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "dedupe_key"], name="event_unique_dedupe_key"),
        ]
        indexes = [
            models.Index(fields=["workspace", "subscriber", "occurred_at"], name="event_ws_subscriber_time"),
            models.Index(fields=["workspace", "name", "occurred_at"], name="event_ws_name_time"),
            models.Index(fields=["workspace", "type", "occurred_at"], name="event_ws_type_time"),
        ]
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class ImportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
    """A CSV import: the uploaded file, how its columns map to fields, progress and the bad-row report."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="imports")
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_filename = models.CharField(max_length=255, blank=True)
    column_mapping = models.JSONField(
        default=dict, blank=True, help_text="CSV column -> field (email, first_name, ..., or attributes.KEY)."
    )
    mailing_list = models.ForeignKey(MailingList, null=True, blank=True, on_delete=models.SET_NULL)
    tag_names = models.JSONField(default=list, blank=True)
    update_existing = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    total_bytes = models.BigIntegerField(default=0)
    processed_bytes = models.BigIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    error_report = models.FileField(upload_to="imports/errors/%Y/%m/", blank=True)
    failure_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Import {self.pk} ({self.status})"


class Segment(models.Model):
    """A saved rule tree over a workspace's subscribers (see `subscribers.segments`)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    rules = models.JSONField(default=dict, help_text="The rule tree: all / any / not over leaf conditions.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="segment_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
