"""Webhook endpoint services: create, update, delete, rotate the secret, enable again."""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import Workspace
from automation.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, webhook_secret_new
from automation.outgoing.events import ALL_TYPES, SUBSCRIBABLE_TYPES
from automation.ssrf import UnsafeUrl, url_vet
from core.errors import Conflict, ValidationFailed

logger = logging.getLogger(__name__)

MAX_ENDPOINTS_PER_WORKSPACE = 100
ACTIVE_CACHE_SECONDS = 60


def active_cache_key(workspace_id: int) -> str:
    return f"webhooks:active:{workspace_id}"


def webhook_active_cache_forget(*, workspace_id: int) -> None:
    """Every change to a workspace's endpoints calls this, now and again after commit (a reader between
    the two could have cached the old answer)."""
    key = active_cache_key(workspace_id)

    def forget() -> None:
        try:
            cache.delete(key)
        except Exception:  # Redis down: the entry expires within ACTIVE_CACHE_SECONDS anyway
            logger.warning("Could not forget the cached webhook endpoint lookup %s", key, exc_info=True)

    forget()
    transaction.on_commit(forget)


def _url_clean(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed.for_field("url", "Enter an http or https URL.")
    url = url.strip()
    if len(url) > 2000:
        raise ValidationFailed.for_field("url", "At most 2000 characters.")
    try:
        url_vet(url)  # refused now rather than at the first delivery; checked again on every attempt
    except UnsafeUrl as exc:
        raise ValidationFailed.for_field("url", str(exc), code="unsafe_url") from exc
    return url


def _event_types_clean(event_types: Any) -> list[str]:
    if not isinstance(event_types, list) or not event_types:
        raise ValidationFailed.for_field(
            "event_types", 'A non-empty list of event types (see docs/webhooks.md), or ["*"] for all.'
        )
    cleaned: list[str] = []
    for index, value in enumerate(event_types):
        if value != ALL_TYPES and value not in SUBSCRIBABLE_TYPES:
            known = ", ".join(SUBSCRIBABLE_TYPES)
            raise ValidationFailed.for_field(
                f"event_types[{index}]", f"Unknown event type {str(value)[:100]!r}; one of: *, {known}."
            )
        if value not in cleaned:
            cleaned.append(value)
    return [ALL_TYPES] if ALL_TYPES in cleaned else cleaned


def _description_clean(description: Any) -> str:
    if not isinstance(description, str):
        raise ValidationFailed.for_field("description", "A string.")
    if len(description) > 200:
        raise ValidationFailed.for_field("description", "At most 200 characters.")
    return description


@transaction.atomic
def webhook_endpoint_create(
    *, workspace: Workspace, url: str, event_types: list[str], description: str = ""
) -> WebhookEndpoint:
    """A new active endpoint with a fresh secret (shown to the caller once, here and on rotation)."""
    url = _url_clean(url)
    event_types = _event_types_clean(event_types)
    description = _description_clean(description)
    if WebhookEndpoint.objects.filter(workspace=workspace).count() >= MAX_ENDPOINTS_PER_WORKSPACE:
        raise Conflict(f"A workspace has at most {MAX_ENDPOINTS_PER_WORKSPACE} webhook endpoints.")
    endpoint = WebhookEndpoint.objects.create(
        workspace=workspace, url=url, event_types=event_types, description=description
    )
    webhook_active_cache_forget(workspace_id=workspace.pk)
    return endpoint


@transaction.atomic
def webhook_endpoint_update(
    *,
    workspace: Workspace,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    active: bool | None = None,
) -> WebhookEndpoint:
    """Change what is given. `active=False` pauses the endpoint (its pending deliveries fail);
    `active=True` is `webhook_endpoint_enable`."""
    if endpoint.workspace_id != workspace.pk:
        raise ValueError("endpoint belongs to another workspace")
    if url is not None:
        endpoint.url = _url_clean(url)
    if event_types is not None:
        endpoint.event_types = _event_types_clean(event_types)
    if description is not None:
        endpoint.description = _description_clean(description)
    endpoint.save()
    if active is True and not endpoint.active:
        endpoint = webhook_endpoint_enable(workspace=workspace, endpoint=endpoint)
    elif active is False and endpoint.active:
        webhook_endpoint_disable(endpoint=endpoint, reason="Disabled by a user.")
        endpoint.refresh_from_db()
    webhook_active_cache_forget(workspace_id=workspace.pk)
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, workspace: Workspace, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its delivery log."""
    if endpoint.workspace_id != workspace.pk:
        raise ValueError("endpoint belongs to another workspace")
    endpoint.delete()
    webhook_active_cache_forget(workspace_id=workspace.pk)


@transaction.atomic
def webhook_endpoint_secret_rotate(*, workspace: Workspace, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """A new secret; deliveries from now on are signed with it (the old one stops verifying at once)."""
    if endpoint.workspace_id != workspace.pk:
        raise ValueError("endpoint belongs to another workspace")
    endpoint.secret = webhook_secret_new()
    endpoint.save(update_fields=["secret", "updated_at"])
    return endpoint


@transaction.atomic
def webhook_endpoint_enable(*, workspace: Workspace, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Active again, with the failure count and the disabled state cleared. Deliveries that failed
    while it was disabled stay failed (retry them one by one through the API)."""
    if endpoint.workspace_id != workspace.pk:
        raise ValueError("endpoint belongs to another workspace")
    endpoint.active = True
    endpoint.consecutive_failures = 0
    endpoint.disabled_at = None
    endpoint.disabled_reason = ""
    endpoint.save(update_fields=["active", "consecutive_failures", "disabled_at", "disabled_reason", "updated_at"])
    webhook_active_cache_forget(workspace_id=workspace.pk)
    return endpoint


def webhook_endpoint_disable(*, endpoint: WebhookEndpoint, reason: str) -> int:
    """Inactive, with the reason; its pending deliveries fail with it. Returns how many failed.
    The caller holds a transaction (and, when it matters, the endpoint's row lock)."""
    now = timezone.now()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        active=False, disabled_at=now, disabled_reason=reason[:300], updated_at=now
    )
    failed = WebhookDelivery.objects.filter(endpoint_id=endpoint.pk, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED,
        next_attempt_at=None,
        lease_expires_at=None,
        last_error=f"Endpoint disabled: {reason}"[:2000],
    )
    webhook_active_cache_forget(workspace_id=endpoint.workspace_id)
    return failed
