"""Checks shared by every write path (API, bulk, CSV import, admin): addresses, attributes, locales."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_date, parse_datetime
from email_validator import EmailNotValidError, validate_email

from accounts.models import Workspace
from accounts.services import validate_time_zone
from core.errors import ValidationFailed
from subscribers.models import FieldDefinition, FieldType

# JSON numbers beyond 2**53 lose precision in JavaScript and many databases' JSON types.
MAX_ATTRIBUTE_NUMBER = 2**53
MAX_ATTRIBUTE_TEXT = 2000
LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
# NUL and lone surrogates cannot be stored by PostgreSQL (text or jsonb) nor encoded as UTF-8.
UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
TRUE_WORDS = {"true", "yes", "y", "1", "on"}
FALSE_WORDS = {"false", "no", "n", "0", "off"}


def text_storable(*, value: str, field: str) -> str:
    if UNSTORABLE_RE.search(value):
        raise ValidationFailed.for_field(field, "Contains characters that cannot be stored (NUL or lone surrogates).")
    return value


def json_storable(*, value: Any, field: str, depth: int = 0) -> Any:
    """Check every string (keys too) and number of a JSON value; refuse absurd nesting."""
    if depth > 20:
        raise ValidationFailed.for_field(field, "Nested too deeply (at most 20 levels).")
    if isinstance(value, str):
        text_storable(value=value, field=field)
    elif isinstance(value, float) and not math.isfinite(value):
        # JSON has no Infinity or NaN (Python's json parses 1e999 and NaN): jsonb refuses them with an error.
        raise ValidationFailed.for_field(field, "Numbers must be finite (no Infinity or NaN).")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            text_storable(value=str(key), field=field)
            json_storable(value=item, field=field, depth=depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            json_storable(value=item, field=field, depth=depth + 1)
    return value


def email_normalize(*, email: Any, field: str = "email") -> str:
    """The address as stored: syntax-checked (DNS only when EMAIL_CHECK_DELIVERABILITY), lower-cased.

    Lower-casing the whole address is what mailbox providers do in practice, and it makes the
    per-workspace uniqueness and every look-up plain comparisons.
    """
    if not isinstance(email, str) or not email.strip():
        raise ValidationFailed.for_field(field, "An email address is required.", code="invalid_email")
    if len(email) > 320:
        raise ValidationFailed.for_field(field, "The email address is too long.", code="invalid_email")
    if UNSTORABLE_RE.search(email):
        raise ValidationFailed.for_field(field, "The email address contains invalid characters.", code="invalid_email")
    try:
        info = validate_email(email.strip(), check_deliverability=settings.EMAIL_CHECK_DELIVERABILITY)
    except EmailNotValidError as error:
        raise ValidationFailed.for_field(field, str(error), code="invalid_email")
    normalized = info.normalized.lower()
    if len(normalized) > 254:
        raise ValidationFailed.for_field(field, "The email address is too long.", code="invalid_email")
    return normalized


def domain_normalize(*, domain: Any, field: str = "value") -> str:
    value = domain.strip().lower().lstrip("@") if isinstance(domain, str) and not UNSTORABLE_RE.search(domain) else ""
    try:
        value = value.encode("idna").decode("ascii") if value else value
    except UnicodeError:
        value = ""
    if not DOMAIN_RE.match(value):
        raise ValidationFailed.for_field(field, "Enter a valid domain name, e.g. example.com.", code="invalid_domain")
    return value


def time_zone_check(*, value: Any, field: str = "time_zone") -> str:
    """An IANA zone, or "" (the workspace's zone applies)."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > 64:
        raise ValidationFailed.for_field(field, "Must be an IANA time zone name.", code="invalid_time_zone")
    return validate_time_zone(field=field, value=value)


def locale_check(*, value: Any, field: str = "locale") -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > 16 or not LOCALE_RE.match(value):
        raise ValidationFailed.for_field(field, "Must be a language tag such as en or pt-BR.", code="invalid_locale")
    return value


def name_check(*, value: Any, field: str, max_length: int = 100) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed.for_field(field, "Must be a string.")
    value = text_storable(value=value.strip(), field=field)
    if len(value) > max_length:
        raise ValidationFailed.for_field(field, f"Ensure this field has no more than {max_length} characters.")
    return value


def field_definitions_by_key(*, workspace: Workspace) -> dict[str, FieldDefinition]:
    return {definition.key: definition for definition in FieldDefinition.objects.filter(workspace=workspace)}


def attribute_coerce(definition: FieldDefinition, value: Any, field: str) -> Any:
    """`value` as the field's type (what attribute writes store and segment conditions compare with);
    ValidationFailed naming `field` when it does not fit."""
    kind = definition.type

    def fail(message: str) -> ValidationFailed:
        return ValidationFailed.for_field(field, message, code="invalid_attribute")

    if kind == FieldType.TEXT:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise fail("Must be text.")
        text = text_storable(value=str(value), field=field)
        if len(text) > MAX_ATTRIBUTE_TEXT:
            raise fail(f"Must be at most {MAX_ATTRIBUTE_TEXT} characters.")
        return text
    if kind == FieldType.NUMBER:
        if isinstance(value, bool):
            raise fail("Must be a number.")
        if isinstance(value, str):
            try:
                parsed = Decimal(value.strip())
            except InvalidOperation:
                raise fail("Must be a number.")
            if not parsed.is_finite():
                raise fail("Must be a finite number.")
            value = (
                int(parsed)
                if parsed == parsed.to_integral_value() and abs(parsed) <= MAX_ATTRIBUTE_NUMBER
                else float(parsed)
            )
        if not isinstance(value, int | float):
            raise fail("Must be a number.")
        if isinstance(value, float) and not math.isfinite(value):
            raise fail("Must be a finite number.")
        if abs(value) > MAX_ATTRIBUTE_NUMBER:
            raise fail(f"Must be between -{MAX_ATTRIBUTE_NUMBER} and {MAX_ATTRIBUTE_NUMBER}.")
        return value
    if kind == FieldType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise fail("Must be true or false.")
    if kind == FieldType.DATE:
        if isinstance(value, str):
            try:
                parsed_date = parse_date(value.strip())
            except ValueError:
                parsed_date = None
            if parsed_date is not None:
                return parsed_date.isoformat()
        raise fail("Must be a date as YYYY-MM-DD.")
    if kind == FieldType.DATETIME:
        if isinstance(value, str):
            try:
                parsed_dt = parse_datetime(value.strip())
            except ValueError:
                parsed_dt = None
            if parsed_dt is not None:
                if parsed_dt.tzinfo is None:
                    parsed_dt = parsed_dt.replace(tzinfo=UTC)
                return parsed_dt.astimezone(UTC).isoformat()
        raise fail("Must be an ISO 8601 date and time, e.g. 2026-01-31T09:30:00Z.")
    if kind == FieldType.CHOICE:
        allowed = [str(choice) for choice in definition.choices or []]
        if isinstance(value, str) and value in allowed:
            return value
        raise fail(f"Must be one of: {', '.join(allowed)}.")
    raise fail(f"Unsupported field type {kind!r}.")  # pragma: no cover - FieldType is closed


def attributes_clean(
    *,
    attributes: Any,
    definitions: Mapping[str, FieldDefinition],
    field: str = "attributes",
    allow_null: bool = True,
) -> dict[str, Any]:
    """Check `attributes` against the workspace's field definitions; values come back normalized.

    Every key must be a defined field (an unknown one fails naming `attributes.KEY`). A null value
    means "remove this attribute" and is kept as None for the caller to apply.
    """
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise ValidationFailed.for_field(field, "Must be an object mapping field keys to values.")
    cleaned: dict[str, Any] = {}
    for key, value in attributes.items():
        name = f"{field}.{key}"
        definition = definitions.get(key) if isinstance(key, str) else None
        if definition is None:
            raise ValidationFailed.for_field(
                name, f"Unknown attribute '{key}': define it under /api/v1/fields first.", code="unknown_attribute"
            )
        if value is None:
            if not allow_null:
                raise ValidationFailed.for_field(name, "May not be null.", code="invalid_attribute")
            cleaned[key] = None
            continue
        cleaned[key] = attribute_coerce(definition, value, name)
    return cleaned


def attributes_merge(*, current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply cleaned changes: a None removes the attribute, anything else sets it."""
    merged = dict(current or {})
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
