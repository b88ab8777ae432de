"""The public subscribe link of a mailing list: a signed, non-expiring token of the list id.

It lives in this layer so the list API and admin can show the link; the form behind it
(`/subscribe/<token>`) is served by the sequences app, which reads the token with
`mailing_list_id_from_subscribe_token`. The salt is this purpose's own, so the token is worthless
for any other public endpoint (and theirs for this one).
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing

from core.base62 import b62_decode, b62_encode

SUBSCRIBE_PATH = "subscribe"
_SALT = "email-sequence.tracking.subscribe"


def mailing_list_subscribe_token(*, list_id: int) -> str:
    return signing.Signer(salt=_SALT).sign(b62_encode(list_id))


def mailing_list_id_from_subscribe_token(*, token: str) -> int | None:
    """The list id a subscribe token carries, or None for anything forged or malformed."""
    try:
        payload = signing.Signer(salt=_SALT).unsign(token)
        return b62_decode(payload)
    except (signing.BadSignature, ValueError):
        return None


def mailing_list_subscribe_url(*, list_id: int) -> str:
    """The absolute URL (under PUBLIC_BASE_URL) of the list's public subscribe form."""
    return f"{settings.PUBLIC_BASE_URL}/{SUBSCRIBE_PATH}/{mailing_list_subscribe_token(list_id=list_id)}"
