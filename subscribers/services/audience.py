"""Writes for lists (and their members in bulk), tags, custom field definitions and suppressions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from accounts.models import Workspace
from core.errors import Conflict, ValidationFailed
from subscribers.models import (
    FieldDefinition,
    FieldType,
    MailingList,
    Subscriber,
    Suppression,
    SuppressionKind,
    Tag,
)
from subscribers.services.subscribers import (
    BULK_MAX_ITEMS,
    error_as_dict,
    list_membership_add,
    list_membership_remove,
    subscribers_by_email,
)
from subscribers.services.validation import UNSTORABLE_RE, domain_normalize, email_normalize, text_storable

FIELD_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RESERVED_FIELD_KEYS = {"email", "first_name", "last_name", "time_zone", "locale", "status", "id", "full_name"}


def _check_owned(workspace: Workspace, instance: Any) -> None:
    """Callers resolve rows in the workspace first (a foreign id is a 404 there); this is the backstop."""
    if instance.workspace_id != workspace.pk:
        raise ValueError(f"{type(instance).__name__} belongs to another workspace")


def _save_unique(instance: Any, *, message: str, code: str, field: str) -> None:
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        raise Conflict(message, code=code, details={field: [message]})


def _text(value: Any, *, field: str, max_length: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed.for_field(field, "Must be a string.")
    value = text_storable(value=value.strip(), field=field)
    if required and not value:
        raise ValidationFailed.for_field(field, "This field may not be blank.")
    if len(value) > max_length:
        raise ValidationFailed.for_field(field, f"Ensure this field has no more than {max_length} characters.")
    return value


# Lists -----------------------------------------------------------------------------------------


def mailing_list_create(
    *, workspace: Workspace, name: str, description: str = "", double_opt_in: bool = False
) -> MailingList:
    mailing_list = MailingList(
        workspace=workspace,
        name=_text(name, field="name", max_length=200),
        description=_text(description, field="description", max_length=5000, required=False),
        double_opt_in=bool(double_opt_in),
    )
    _save_unique(mailing_list, message=f"A list named '{mailing_list.name}' exists.", code="list_exists", field="name")
    return mailing_list


def mailing_list_update(*, workspace: Workspace, mailing_list: MailingList, **changes: Any) -> MailingList:
    _check_owned(workspace, mailing_list)
    if "name" in changes:
        mailing_list.name = _text(changes["name"], field="name", max_length=200)
    if "description" in changes:
        mailing_list.description = _text(changes["description"], field="description", max_length=5000, required=False)
    if "double_opt_in" in changes:
        mailing_list.double_opt_in = bool(changes["double_opt_in"])
    _save_unique(mailing_list, message=f"A list named '{mailing_list.name}' exists.", code="list_exists", field="name")
    return mailing_list


def mailing_list_delete(*, workspace: Workspace, mailing_list: MailingList) -> None:
    """Delete the list and its memberships; the subscribers stay. A list that is a sequence's audience
    is kept (409): deleting it would silently open the sequence to everyone."""
    _check_owned(workspace, mailing_list)
    try:
        with transaction.atomic():
            mailing_list.delete()
    except ProtectedError as exc:
        users = ", ".join(sorted({str(obj) for obj in exc.protected_objects})[:5])
        raise Conflict(
            f"The list is the audience of: {users}. Choose another list for them first.", code="list_in_use"
        ) from exc


@dataclass
class MemberResult:
    index: int
    status: str  # subscribed | pending | unsubscribed | unchanged | error
    subscriber_id: int | None = None
    email: str | None = None
    error: dict[str, Any] | None = None


def _resolve_members(
    *, workspace: Workspace, subscriber_ids: Sequence[int], emails: Sequence[str]
) -> list[tuple[Subscriber | None, MemberResult]]:
    if len(subscriber_ids) + len(emails) > BULK_MAX_ITEMS:
        raise ValidationFailed.for_field("subscriber_ids", f"At most {BULK_MAX_ITEMS} subscribers per request.")
    by_id = {s.pk: s for s in Subscriber.objects.filter(workspace=workspace, pk__in=list(subscriber_ids))}
    normalized: list[str | ValidationFailed] = []
    for email in emails:
        try:
            normalized.append(email_normalize(email=email))
        except ValidationFailed as error:
            normalized.append(error)
    by_email = subscribers_by_email(workspace=workspace, emails=[e for e in normalized if isinstance(e, str)])
    resolved: list[tuple[Subscriber | None, MemberResult]] = []
    for index, subscriber_id in enumerate(subscriber_ids):
        subscriber = by_id.get(subscriber_id)
        result = MemberResult(index=index, status="error", subscriber_id=subscriber_id)
        if subscriber is None:
            result.error = {"field": "subscriber_ids", "code": "not_found", "message": "Subscriber not found."}
        resolved.append((subscriber, result))
    for offset, address in enumerate(normalized):
        index = len(subscriber_ids) + offset
        if isinstance(address, ValidationFailed):
            resolved.append((None, MemberResult(index=index, status="error", error=error_as_dict(address))))
            continue
        subscriber = by_email.get(address)
        result = MemberResult(index=index, status="error", email=address)
        if subscriber is None:
            result.error = {"field": "emails", "code": "not_found", "message": "Subscriber not found."}
        resolved.append((subscriber, result))
    return resolved


@transaction.atomic
def list_members_add(
    *, workspace: Workspace, mailing_list: MailingList, subscriber_ids: Sequence[int] = (), emails: Sequence[str] = ()
) -> list[MemberResult]:
    """Add existing subscribers (by id or address) to the list; results follow ids first, then emails."""
    results = []
    for subscriber, result in _resolve_members(workspace=workspace, subscriber_ids=subscriber_ids, emails=emails):
        if subscriber is not None:
            membership, changed = list_membership_add(
                workspace=workspace, subscriber=subscriber, mailing_list=mailing_list
            )
            result.subscriber_id, result.email = subscriber.pk, subscriber.email
            result.status = membership.status if changed else "unchanged"
        results.append(result)
    return results


@transaction.atomic
def list_members_remove(
    *, workspace: Workspace, mailing_list: MailingList, subscriber_ids: Sequence[int] = (), emails: Sequence[str] = ()
) -> list[MemberResult]:
    results = []
    for subscriber, result in _resolve_members(workspace=workspace, subscriber_ids=subscriber_ids, emails=emails):
        if subscriber is not None:
            changed = list_membership_remove(workspace=workspace, subscriber=subscriber, mailing_list=mailing_list)
            result.subscriber_id, result.email = subscriber.pk, subscriber.email
            result.status = "unsubscribed" if changed else "unchanged"
        results.append(result)
    return results


# Tags ------------------------------------------------------------------------------------------


def tag_create(*, workspace: Workspace, name: str) -> Tag:
    tag = Tag(workspace=workspace, name=_text(name, field="name", max_length=100))
    _save_unique(tag, message=f"A tag named '{tag.name}' exists.", code="tag_exists", field="name")
    return tag


def tag_update(*, workspace: Workspace, tag: Tag, name: str) -> Tag:
    _check_owned(workspace, tag)
    tag.name = _text(name, field="name", max_length=100)
    _save_unique(tag, message=f"A tag named '{tag.name}' exists.", code="tag_exists", field="name")
    return tag


def tag_delete(*, workspace: Workspace, tag: Tag) -> None:
    _check_owned(workspace, tag)
    tag.delete()


# Custom fields ---------------------------------------------------------------------------------


def _choices_clean(*, type: str, choices: Any) -> list[str]:
    if type != FieldType.CHOICE:
        if choices:
            raise ValidationFailed.for_field("choices", "Only choice fields have choices.")
        return []
    if not isinstance(choices, list | tuple) or not choices:
        raise ValidationFailed.for_field("choices", "A choice field needs a non-empty list of choices.")
    cleaned: list[str] = []
    for index, choice in enumerate(choices):
        if not isinstance(choice, str) or not choice.strip() or len(choice) > 200 or UNSTORABLE_RE.search(choice):
            raise ValidationFailed.for_field(
                f"choices[{index}]", "A choice is a non-empty string of at most 200 characters."
            )
        if choice.strip() in cleaned:
            raise ValidationFailed.for_field(f"choices[{index}]", f"'{choice}' is listed twice.")
        cleaned.append(choice.strip())
    return cleaned


def field_definition_create(
    *, workspace: Workspace, key: str, label: str = "", type: str = FieldType.TEXT, choices: Sequence[str] = ()
) -> FieldDefinition:
    """Define a custom attribute. `key` is a lower-case identifier (`plan`, `signup_date`) and cannot change."""
    if not isinstance(key, str) or not FIELD_KEY_RE.match(key):
        raise ValidationFailed.for_field(
            "key", "Use a lower-case letter then letters, digits or underscores (at most 64).", code="invalid_key"
        )
    if key in RESERVED_FIELD_KEYS:
        raise ValidationFailed.for_field("key", f"'{key}' is a built-in subscriber field.", code="reserved_key")
    if type not in FieldType.values:
        raise ValidationFailed.for_field("type", f"Must be one of {', '.join(FieldType.values)}.")
    definition = FieldDefinition(
        workspace=workspace,
        key=key,
        label=_text(label, field="label", max_length=100, required=False) or key.replace("_", " ").capitalize(),
        type=type,
        choices=_choices_clean(type=type, choices=list(choices or [])),
    )
    _save_unique(definition, message=f"A field with key '{key}' exists.", code="field_exists", field="key")
    return definition


def field_definition_update(
    *, workspace: Workspace, definition: FieldDefinition, label: str | None = None, choices: Sequence[str] | None = None
) -> FieldDefinition:
    """Change the label or a choice field's choices. Key and type are fixed: stored values depend on them."""
    _check_owned(workspace, definition)
    if label is not None:
        definition.label = _text(label, field="label", max_length=100)
    if choices is not None:
        definition.choices = _choices_clean(type=definition.type, choices=list(choices))
    definition.save(update_fields=["label", "choices"])
    return definition


def field_definition_delete(*, workspace: Workspace, definition: FieldDefinition) -> None:
    """Delete the definition. Stored values stay on subscribers but can no longer be set."""
    _check_owned(workspace, definition)
    definition.delete()


# Suppressions ----------------------------------------------------------------------------------


def suppression_value_clean(*, kind: str, value: Any) -> str:
    if kind == SuppressionKind.EMAIL:
        return email_normalize(email=value, field="value")
    if kind == SuppressionKind.DOMAIN:
        return domain_normalize(domain=value)
    raise ValidationFailed.for_field("kind", f"Must be one of {', '.join(SuppressionKind.values)}.")


def suppression_create(
    *, workspace: Workspace, kind: str = SuppressionKind.EMAIL, value: str, reason: str = "", source: str = "api"
) -> Suppression:
    """Never send to this address (or any address at this domain) again."""
    suppression = Suppression(
        workspace=workspace,
        kind=kind,
        value=suppression_value_clean(kind=kind, value=value),
        reason=_text(reason, field="reason", max_length=255, required=False),
        source=_text(source, field="source", max_length=100, required=False),
    )
    _save_unique(
        suppression, message=f"{suppression.value} is already suppressed.", code="suppression_exists", field="value"
    )
    return suppression


def suppression_get_or_create(
    *, workspace: Workspace, kind: str = SuppressionKind.EMAIL, value: str, reason: str = "", source: str = "api"
) -> tuple[Suppression, bool]:
    """Like suppression_create, but an existing suppression is returned (for bounces, admin actions)."""
    normalized = suppression_value_clean(kind=kind, value=value)
    existing = Suppression.objects.filter(workspace=workspace, kind=kind, value=normalized).first()
    if existing is not None:
        return existing, False
    try:
        return suppression_create(workspace=workspace, kind=kind, value=value, reason=reason, source=source), True
    except Conflict:
        return Suppression.objects.get(workspace=workspace, kind=kind, value=normalized), False


def suppression_update(*, workspace: Workspace, suppression: Suppression, reason: str) -> Suppression:
    _check_owned(workspace, suppression)
    suppression.reason = _text(reason, field="reason", max_length=255, required=False)
    suppression.save(update_fields=["reason"])
    return suppression


def suppression_delete(*, workspace: Workspace, suppression: Suppression) -> None:
    _check_owned(workspace, suppression)
    suppression.delete()
