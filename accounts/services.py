"""Writes for workspaces, members and API keys."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import ApiKey, ApiKeyScope, Membership, Role, Workspace
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

logger = logging.getLogger(__name__)

WORKSPACE_EDITABLE_FIELDS = {
    "name", "time_zone", "from_name", "from_email", "reply_to", "postal_address", "sending_rate_per_second",
    "track_opens", "quiet_hours_start", "quiet_hours_end", "frequency_cap_count", "frequency_cap_hours",
}  # fmt: skip

# Called with `workspace=` after sending resumes (the sender puts the messages it held back in the queue
# again); higher apps register from their AppConfig.ready(): accounts imports none of them.
ResumeHandler = Callable[..., object]
_resume_handlers: list[ResumeHandler] = []


def validate_time_zone(*, field: str, value: str) -> str:
    """An IANA zone name (`Europe/Berlin`), or a ValidationFailed naming `field`."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationFailed.for_field(field, f"'{value}' is not a known IANA time zone.", code="invalid_time_zone")
    return value


def validate_quiet_hours(*, start: object, end: object) -> tuple[int | None, int | None]:
    """Both hours 0-23 and different, or both empty (no quiet hours); else a ValidationFailed."""
    if start is None and end is None:
        return None, None
    for field, hour in (("quiet_hours_start", start), ("quiet_hours_end", end)):
        if hour is None:
            other = "quiet_hours_end" if field == "quiet_hours_start" else "quiet_hours_start"
            raise ValidationFailed.for_field(field, f"Set both quiet hours or neither ({other} is set).")
        if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
            raise ValidationFailed.for_field(field, "An hour from 0 to 23.")
    if start == end:
        raise ValidationFailed.for_field("quiet_hours_end", "Quiet hours must end at another hour than they start.")
    return start, end  # type: ignore[return-value]


FREQUENCY_CAP_HOURS_MAX = 24 * 366


def validate_frequency_cap_hours(value: object) -> None:
    """The frequency cap's window: 1 hour to a year."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= FREQUENCY_CAP_HOURS_MAX:
        raise ValidationFailed.for_field("frequency_cap_hours", f"Hours from 1 to {FREQUENCY_CAP_HOURS_MAX}.")


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "workspace"
    slug, n = base, 1
    while Workspace.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def workspace_create(*, name: str, owner: User, time_zone: str = "UTC", **fields: object) -> Workspace:
    """Create a workspace with `owner` as its owner."""
    if not name.strip():
        raise ValidationFailed.for_field("name", "This field may not be blank.")
    validate_time_zone(field="time_zone", value=time_zone)
    unknown = set(fields) - WORKSPACE_EDITABLE_FIELDS
    if unknown:
        raise ValidationFailed(f"Unknown workspace fields: {', '.join(sorted(unknown))}")
    validate_quiet_hours(start=fields.get("quiet_hours_start"), end=fields.get("quiet_hours_end"))
    if "frequency_cap_hours" in fields:
        validate_frequency_cap_hours(fields["frequency_cap_hours"])
    workspace = Workspace.objects.create(name=name.strip(), slug=_unique_slug(name), time_zone=time_zone, **fields)
    Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    return workspace


def workspace_update(*, workspace: Workspace, **fields: object) -> Workspace:
    unknown = set(fields) - WORKSPACE_EDITABLE_FIELDS
    if unknown:
        raise ValidationFailed(f"Unknown workspace fields: {', '.join(sorted(unknown))}")
    if "time_zone" in fields:
        validate_time_zone(field="time_zone", value=str(fields["time_zone"]))
    if "quiet_hours_start" in fields or "quiet_hours_end" in fields:
        validate_quiet_hours(
            start=fields.get("quiet_hours_start", workspace.quiet_hours_start),
            end=fields.get("quiet_hours_end", workspace.quiet_hours_end),
        )
    if "frequency_cap_hours" in fields:
        validate_frequency_cap_hours(fields["frequency_cap_hours"])
    for name, value in fields.items():
        setattr(workspace, name, value)
    workspace.save(update_fields=[*fields, "updated_at"])
    return workspace


def workspace_sending_resumed_handler_register(handler: ResumeHandler) -> ResumeHandler:
    if handler not in _resume_handlers:
        _resume_handlers.append(handler)
    return handler


def workspace_sending_pause(*, workspace: Workspace, reason: str, actor: str) -> bool:
    """Stop every email of `workspace` until it is resumed; `reason` is shown wherever the pause is.

    Returns False (and keeps the first reason) when it was already paused.
    """
    reason = reason.strip()
    if not reason:
        raise ValidationFailed.for_field("reason", "Say why sending is paused.")
    now = timezone.now()
    updated = Workspace.objects.filter(pk=workspace.pk, sending_paused_at__isnull=True).update(
        sending_paused_at=now, sending_paused_reason=reason[:255], updated_at=now
    )
    workspace.refresh_from_db(fields=["sending_paused_at", "sending_paused_reason", "updated_at"])
    if updated:
        logger.warning("Sending paused in workspace %s by %s: %s", workspace.pk, actor, reason)
    return bool(updated)


def workspace_sending_resume(*, workspace: Workspace, actor: str) -> bool:
    """Let `workspace` send again; the messages held back during the pause are queued again now.

    Returns False (and does nothing) when it was not paused.
    """
    now = timezone.now()
    with transaction.atomic():
        updated = Workspace.objects.filter(pk=workspace.pk, sending_paused_at__isnull=False).update(
            sending_paused_at=None, sending_paused_reason="", updated_at=now
        )
        if updated:
            for handler in list(_resume_handlers):
                handler(workspace=workspace)
    workspace.refresh_from_db(fields=["sending_paused_at", "sending_paused_reason", "updated_at"])
    if updated:
        logger.warning("Sending resumed in workspace %s by %s", workspace.pk, actor)
    return bool(updated)


def user_get_or_create(*, email: str, password: str | None = None) -> tuple[User, bool]:
    """Users log in with their email, which is also their username."""
    email = User.objects.normalize_email(email).strip()
    user = User.objects.filter(username__iexact=email).first()
    if user is not None:
        return user, False
    user = User.objects.create_user(username=email, email=email, password=password)
    return user, True


def membership_add(
    *, workspace: Workspace, email: str, role: str, password: str | None = None, by_role: str
) -> Membership:
    _check_may_grant(role=role, by_role=by_role)
    user, _ = user_get_or_create(email=email, password=password)
    try:
        with transaction.atomic():
            return Membership.objects.create(workspace=workspace, user=user, role=role)
    except IntegrityError:
        raise Conflict(f"{email} is already a member of this workspace.", code="already_member")


def membership_update(*, membership: Membership, role: str, by_role: str) -> Membership:
    _check_may_grant(role=role, by_role=by_role)
    _check_may_grant(role=membership.role, by_role=by_role)
    if membership.role == Role.OWNER and role != Role.OWNER:
        _check_not_last_owner(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


def membership_remove(*, membership: Membership, by_role: str) -> None:
    _check_may_grant(role=membership.role, by_role=by_role)
    if membership.role == Role.OWNER:
        _check_not_last_owner(membership)
    membership.delete()


def _check_may_grant(*, role: str, by_role: str) -> None:
    if role not in Role.values:
        raise ValidationFailed.for_field("role", f"'{role}' is not one of {', '.join(Role.values)}.")
    if role == Role.OWNER and by_role != Role.OWNER:
        raise PermissionDenied("Only an owner can grant, change or remove the owner role.")


def _check_not_last_owner(membership: Membership) -> None:
    owners = Membership.objects.filter(workspace_id=membership.workspace_id, role=Role.OWNER)
    if owners.exclude(pk=membership.pk).count() == 0:
        raise Conflict("A workspace keeps at least one owner.", code="last_owner")


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    secret: str  # the full key; never stored, shown once


def _hash_secret(secret: str) -> str:
    # The secret has 256 bits of entropy, so a fast hash is safe and keeps authentication cheap.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, workspace: Workspace, name: str, scope: str, created_by: User | None) -> IssuedApiKey:
    if scope not in ApiKeyScope.values:
        raise ValidationFailed.for_field("scope", f"'{scope}' is not one of {', '.join(ApiKeyScope.values)}.")
    if not name.strip():
        raise ValidationFailed.for_field("name", "This field may not be blank.")
    prefix = ApiKey.PREFIX + secrets.token_hex(4)
    secret = f"{prefix}.{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        workspace=workspace, name=name.strip(), prefix=prefix, hashed_secret=_hash_secret(secret), scope=scope,
        created_by=created_by,
    )  # fmt: skip
    return IssuedApiKey(api_key=api_key, secret=secret)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, secret: str) -> ApiKey:
    """The active key whose secret this is; NotFound for anything else (no hint which part was wrong)."""
    prefix = secret.split(".", 1)[0]
    api_key = ApiKey.objects.select_related("workspace").filter(prefix=prefix, revoked_at__isnull=True).first()
    if api_key is None or not hmac.compare_digest(api_key.hashed_secret, _hash_secret(secret)):
        raise NotFound("Invalid API key.", code="invalid_api_key")
    now = timezone.now()
    # Recording every use would be a write per request; a minute's precision is enough to audit keys.
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
