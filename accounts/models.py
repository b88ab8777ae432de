"""Workspaces (the tenants), their members and roles, API keys and idempotency records."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    MARKETER = "marketer", "Marketer"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"

    @classmethod
    def rank(cls, role: str) -> int:
        """Roles are ordered: each can do everything the ones before it can."""
        return [cls.VIEWER.value, cls.MARKETER.value, cls.ADMIN.value, cls.OWNER.value].index(role)


class Workspace(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    from_name = models.CharField(max_length=200, blank=True)
    from_email = models.EmailField(blank=True)
    reply_to = models.EmailField(blank=True)
    postal_address = models.TextField(blank=True, help_text="Shown in email footers (CAN-SPAM, GDPR).")
    sending_rate_per_second = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1)], help_text="Messages per second, shared by all workers."
    )
    track_opens = models.BooleanField(default=True, help_text="Add an open-tracking pixel to every email.")
    # Quiet hours on the subscriber's local clock: no email from start to end (21 -> 8 is 21:00 to
    # 08:00, across midnight). Both set or both empty; they narrow every sequence's send window.
    quiet_hours_start = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(23)], help_text="Hour 0-23: quiet from this hour."
    )
    quiet_hours_end = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(23)], help_text="Hour 0-23: sending resumes at this hour."
    )
    # Frequency cap across every sequence and campaign: at most `frequency_cap_count` emails per
    # subscriber in any `frequency_cap_hours`; capped messages wait for the next allowed time.
    frequency_cap_count = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Empty: no cap."
    )
    frequency_cap_hours = models.PositiveIntegerField(default=24, validators=[MinValueValidator(1)])
    # Set by the bounce/complaint guardrail (or by hand): no email leaves the workspace until resumed.
    sending_paused_at = models.DateTimeField(null=True, blank=True)
    sending_paused_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique_user")]
        ordering = ["workspace", "user"]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"


class ApiKeyScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Read and write"


class ApiKey(models.Model):
    """A workspace credential for integrations. Only a hash of the secret is kept; it is shown once."""

    PREFIX = "es_"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, help_text="Recognisable start of the key.")
    hashed_secret = models.CharField(max_length=128)
    scope = models.CharField(max_length=8, choices=ApiKeyScope.choices, default=ApiKeyScope.READ)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_write(self) -> bool:
        return self.scope == ApiKeyScope.WRITE


class IdempotencyRecord(models.Model):
    """The stored answer to a creating POST sent with an `Idempotency-Key`, replayed on a retry."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    principal = models.CharField(max_length=64, help_text="user:ID or key:ID; keys are per caller.")
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "principal", "key"], name="idempotency_unique_key")]

    def __str__(self) -> str:
        return self.key
