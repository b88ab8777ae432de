"""Base62 numbers for short, URL-safe tokens (ids in signed public links)."""

from __future__ import annotations

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUES = {char: value for value, char in enumerate(ALPHABET)}
MAX_DIGITS = 16  # far above any id; refuses absurd input before any arithmetic


def b62_encode(number: int) -> str:
    if number < 0:
        raise ValueError("base62 numbers are not negative")
    digits = ""
    while True:
        number, remainder = divmod(number, 62)
        digits = ALPHABET[remainder] + digits
        if number == 0:
            return digits


def b62_decode(text: str) -> int:
    """The number `text` spells; ValueError for an empty, overlong or non-base62 text."""
    if not text or len(text) > MAX_DIGITS:
        raise ValueError("bad base62 number")
    value = 0
    for char in text:
        digit = _VALUES.get(char)
        if digit is None:
            raise ValueError("bad base62 number")
        value = value * 62 + digit
    return value
