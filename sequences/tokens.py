"""Signed tokens for the public endpoints (open pixel, click, unsubscribe, opt-in confirmation):
unguessable, never raw ids.

A token is the message id (and for clicks the link's index) signed with the SECRET_KEY under a salt
per purpose, so a token made for one purpose is worthless for another. `token_read` answers None
for anything forged, truncated or malformed; callers turn that into a 404 that tells nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.conf import settings
from django.core import signing

from core.base62 import b62_decode, b62_encode


class TokenPurpose(StrEnum):
    OPEN = "open"
    CLICK = "click"
    UNSUBSCRIBE = "unsubscribe"
    CONFIRM = "confirm"


@dataclass(frozen=True)
class TokenClaims:
    message_id: int
    link_index: int | None = None


def _signer(purpose: TokenPurpose) -> signing.Signer:
    return signing.Signer(salt=f"email-sequence.tracking.{purpose.value}")


def token_make(*, purpose: TokenPurpose, message_id: int, link_index: int | None = None) -> str:
    """A short URL-safe token: `<message>[-<link>]:<signature>` (base62 numbers)."""
    if (purpose is TokenPurpose.CLICK) != (link_index is not None):
        raise ValueError("click tokens, and only they, carry a link index")
    payload = b62_encode(message_id) + (f"-{b62_encode(link_index)}" if link_index is not None else "")
    return _signer(purpose).sign(payload)


def token_read(*, purpose: TokenPurpose, token: str) -> TokenClaims | None:
    try:
        payload = _signer(purpose).unsign(token)
        message_part, _, link_part = payload.partition("-")
        message_id = b62_decode(message_part)
        link_index = b62_decode(link_part) if link_part else None
    except (signing.BadSignature, ValueError):
        return None
    if (purpose is TokenPurpose.CLICK) != (link_index is not None):
        return None
    return TokenClaims(message_id=message_id, link_index=link_index)


# The public paths of the tracking endpoints; sequences/urls.py routes them.
TRACKING_PATHS = {TokenPurpose.OPEN: "t/o", TokenPurpose.CLICK: "t/c", TokenPurpose.UNSUBSCRIBE: "u"}


def tracking_url(*, purpose: TokenPurpose, message_id: int, link_index: int | None = None) -> str:
    """The absolute URL (under PUBLIC_BASE_URL) of a message's open pixel, link or unsubscribe page."""
    token = token_make(purpose=purpose, message_id=message_id, link_index=link_index)
    return f"{settings.PUBLIC_BASE_URL}/{TRACKING_PATHS[purpose]}/{token}"


@dataclass(frozen=True)
class ConfirmClaims:
    subscriber_id: int
    list_id: int | None = None


def _confirm_signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=f"email-sequence.tracking.{TokenPurpose.CONFIRM.value}")


def confirm_token_make(*, subscriber_id: int, list_id: int | None = None) -> str:
    """A double opt-in confirmation token: `<subscriber>[-<list>]:<time>:<signature>`; it expires
    (`confirm_token_read`'s max_age), unlike the message tokens."""
    payload = b62_encode(subscriber_id) + (f"-{b62_encode(list_id)}" if list_id is not None else "")
    return _confirm_signer().sign(payload)


def confirm_token_read(*, token: str, max_age: timedelta) -> ConfirmClaims | None:
    """The claims of a confirmation token, or None when forged, malformed or older than `max_age`."""
    try:
        payload = _confirm_signer().unsign(token, max_age=max_age)
        subscriber_part, _, list_part = payload.partition("-")
        return ConfirmClaims(
            subscriber_id=b62_decode(subscriber_part), list_id=b62_decode(list_part) if list_part else None
        )
    except (signing.BadSignature, ValueError):  # SignatureExpired is a BadSignature
        return None
