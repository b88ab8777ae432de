"""Tracking tokens: round trip, purpose-bound, and forged or malformed ones read as nothing."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sequences.tokens import TokenClaims, TokenPurpose, token_make, token_read, tracking_url


@given(message_id=st.integers(min_value=1, max_value=2**63 - 1), link=st.integers(min_value=0, max_value=10_000))
def test_tokens_round_trip(message_id, link):
    click = token_make(purpose=TokenPurpose.CLICK, message_id=message_id, link_index=link)
    assert token_read(purpose=TokenPurpose.CLICK, token=click) == TokenClaims(message_id, link)
    opened = token_make(purpose=TokenPurpose.OPEN, message_id=message_id)
    assert token_read(purpose=TokenPurpose.OPEN, token=opened) == TokenClaims(message_id)


def test_a_token_is_valid_for_its_own_purpose_only():
    token = token_make(purpose=TokenPurpose.OPEN, message_id=42)
    assert token_read(purpose=TokenPurpose.UNSUBSCRIBE, token=token) is None
    assert token_read(purpose=TokenPurpose.CLICK, token=token) is None


@pytest.mark.parametrize("forged", ["", "1:abc", "g:", "-", "1-2", "x" * 500, "ü:ü", "1:" + "A" * 27])
def test_forged_or_malformed_tokens_read_as_none(forged):
    for purpose in TokenPurpose:
        assert token_read(purpose=purpose, token=forged) is None


def test_changing_the_message_id_breaks_the_signature():
    token = token_make(purpose=TokenPurpose.UNSUBSCRIBE, message_id=7)
    _, signature = token.split(":", 1)
    assert token_read(purpose=TokenPurpose.UNSUBSCRIBE, token=f"8:{signature}") is None


def test_tokens_are_url_safe():
    token = token_make(purpose=TokenPurpose.CLICK, message_id=123456789, link_index=3)
    assert all(c.isalnum() or c in "-_:" for c in token)


def test_tracking_urls_start_with_the_public_base_url_and_carry_a_readable_token(settings):
    settings.PUBLIC_BASE_URL = "https://mail.acme.test"
    url = tracking_url(purpose=TokenPurpose.CLICK, message_id=99, link_index=2)
    assert url.startswith("https://mail.acme.test/t/c/")
    assert token_read(purpose=TokenPurpose.CLICK, token=url.rsplit("/", 1)[1]) == TokenClaims(99, 2)
