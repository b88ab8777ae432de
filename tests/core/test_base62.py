import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.base62 import b62_decode, b62_encode


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_every_id_round_trips(number):
    assert b62_decode(b62_encode(number)) == number


def test_known_values():
    assert [b62_encode(n) for n in (0, 61, 62, 3843)] == ["0", "Z", "10", "ZZ"]


@pytest.mark.parametrize("text", ["", "-1", "a b", "é", "0" * 17])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        b62_decode(text)
