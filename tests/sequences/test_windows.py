"""next_send_opening: the sequence's days and hours, the workspace's quiet hours, DST-correct."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequences.windows import in_send_window, next_send_opening, open_hours, quiet_hours, zone_or_utc

ALL_DAYS = [0, 1, 2, 3, 4, 5, 6]
WEEKDAYS = [0, 1, 2, 3, 4]
NY = "America/New_York"
BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def opening(moment, time_zone="UTC", days=ALL_DAYS, start=0, end=24, quiet_start=None, quiet_end=None):
    return next_send_opening(
        moment=moment, time_zone=time_zone, days=days, start_hour=start, end_hour=end,
        quiet_start=quiet_start, quiet_end=quiet_end,
    )  # fmt: skip


def test_a_moment_inside_the_window_is_its_own_opening():
    moment = utc(2026, 6, 3, 10, 17, 23)
    assert opening(moment, start=9, end=17) == moment


def test_before_the_window_opens_the_opening_is_the_start_hour_the_same_day():
    assert opening(utc(2026, 6, 3, 6, 45), start=9, end=17) == utc(2026, 6, 3, 9)


def test_after_the_window_closes_the_opening_is_the_next_day():
    assert opening(utc(2026, 6, 3, 17, 0), start=9, end=17) == utc(2026, 6, 4, 9)


def test_the_end_hour_is_exclusive_and_24_means_midnight():
    assert opening(utc(2026, 6, 3, 16, 59, 59), start=9, end=17) == utc(2026, 6, 3, 16, 59, 59)
    assert opening(utc(2026, 6, 3, 23, 59), start=20, end=24) == utc(2026, 6, 3, 23, 59)


def test_a_weekend_moment_waits_for_monday_in_the_local_zone():
    # Saturday 2026-06-06, 10:00 in New York.
    assert opening(utc(2026, 6, 6, 14), time_zone=NY, days=WEEKDAYS, start=9, end=17) == utc(2026, 6, 8, 13)


def test_days_are_local_days_not_utc_days():
    # Monday 2026-06-08 02:00 UTC is still Sunday evening in New York: wait for Monday 09:00 EDT.
    assert opening(utc(2026, 6, 8, 2), time_zone=NY, days=WEEKDAYS, start=0, end=24) == utc(2026, 6, 8, 4)


# Spring forward in New York, Sunday 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).


def test_spring_forward_a_nine_oclock_opening_uses_the_new_offset():
    # 00:00 EST on the 8th; 09:00 that day is EDT (UTC-4), so 13:00 UTC, not 14:00.
    assert opening(utc(2026, 3, 8, 5), time_zone=NY, start=9, end=17) == utc(2026, 3, 8, 13)
    # The day before is still EST.
    assert opening(utc(2026, 3, 7, 5), time_zone=NY, start=9, end=17) == utc(2026, 3, 7, 14)


def test_spring_forward_the_missing_hour_never_opens_and_the_next_real_one_does():
    # Only 02:00-03:00 is open: it does not exist on the 8th, so the opening is 02:00 EDT on the 9th.
    assert opening(utc(2026, 3, 8, 6, 30), time_zone=NY, start=2, end=3) == utc(2026, 3, 9, 6)


def test_spring_forward_a_window_from_three_opens_at_the_transition_itself():
    # 01:30 EST; a window [3, 24) opens when the clock jumps to 03:00 EDT, at 07:00 UTC.
    assert opening(utc(2026, 3, 8, 6, 30), time_zone=NY, start=3, end=24) == utc(2026, 3, 8, 7)


def test_spring_forward_quiet_hours_end_on_the_new_offset():
    # Quiet 21 -> 8: at 23:00 EST on the 7th the next opening is 08:00 EDT on the 8th (12:00 UTC).
    moment = utc(2026, 3, 8, 4)
    assert opening(moment, time_zone=NY, quiet_start=21, quiet_end=8) == utc(2026, 3, 8, 12)


# Fall back in Berlin, Sunday 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00 UTC).


def test_fall_back_a_nine_oclock_opening_uses_the_new_offset():
    # 22:00 CEST on the 24th; 09:00 on the 25th is CET (UTC+1), so 08:00 UTC, not 07:00.
    assert opening(utc(2026, 10, 24, 20), time_zone=BERLIN, start=9, end=17) == utc(2026, 10, 25, 8)


def test_fall_back_the_repeated_hour_opens_at_its_first_occurrence():
    # Only 02:00-03:00 is open; from 01:30 CEST the first 02:00 (CEST) is 00:00 UTC.
    assert opening(utc(2026, 10, 24, 23, 30), time_zone=BERLIN, start=2, end=3) == utc(2026, 10, 25, 0)


def test_fall_back_the_second_occurrence_of_the_repeated_hour_is_inside_the_window_too():
    # 02:30 CET (the second time round, 01:30 UTC) is inside [2, 3).
    moment = utc(2026, 10, 25, 1, 30)
    assert opening(moment, time_zone=BERLIN, start=2, end=3) == moment


def test_fall_back_after_the_repeated_hour_the_window_from_three_opens_at_three_cet():
    # 02:30 CET (second occurrence); [3, 24) opens at 03:00 CET = 02:00 UTC.
    assert opening(utc(2026, 10, 25, 1, 30), time_zone=BERLIN, start=3, end=24) == utc(2026, 10, 25, 2)
    # 02:30 CEST (first occurrence): the repeated hour still comes first, so again 03:00 CET.
    assert opening(utc(2026, 10, 25, 0, 30), time_zone=BERLIN, start=3, end=24) == utc(2026, 10, 25, 2)


def test_fall_back_quiet_hours_end_on_the_new_offset():
    # Quiet 21 -> 8 from 23:00 CEST on the 24th: 08:00 CET on the 25th is 07:00 UTC.
    moment = utc(2026, 10, 24, 21)
    assert opening(moment, time_zone=BERLIN, quiet_start=21, quiet_end=8) == utc(2026, 10, 25, 7)


# Quiet hours


def test_quiet_hours_crossing_midnight():
    assert opening(utc(2026, 6, 3, 22), quiet_start=21, quiet_end=8) == utc(2026, 6, 4, 8)
    assert opening(utc(2026, 6, 3, 2), quiet_start=21, quiet_end=8) == utc(2026, 6, 3, 8)
    assert opening(utc(2026, 6, 3, 7, 59), quiet_start=21, quiet_end=8) == utc(2026, 6, 3, 8)
    inside = utc(2026, 6, 3, 20, 59)
    assert opening(inside, quiet_start=21, quiet_end=8) == inside
    assert opening(utc(2026, 6, 3, 21), quiet_start=21, quiet_end=8) == utc(2026, 6, 4, 8)


def test_quiet_hours_within_a_day():
    assert opening(utc(2026, 6, 3, 12, 30), quiet_start=12, quiet_end=14) == utc(2026, 6, 3, 14)


def test_quiet_hours_narrow_the_sequence_window():
    # Sequence 06-22, quiet 21 -> 8: open 08-21.
    assert opening(utc(2026, 6, 3, 6, 30), start=6, end=22, quiet_start=21, quiet_end=8) == utc(2026, 6, 3, 8)
    assert opening(utc(2026, 6, 3, 21, 30), start=6, end=22, quiet_start=21, quiet_end=8) == utc(2026, 6, 4, 8)


def test_quiet_hours_push_the_opening_past_the_last_open_day():
    # Friday 20:00, weekdays only, quiet 19 -> 9: Monday 09:00.
    moment = utc(2026, 6, 5, 20)
    assert opening(moment, days=WEEKDAYS, quiet_start=19, quiet_end=9) == utc(2026, 6, 8, 9)


def test_equal_or_unset_quiet_hours_mean_none():
    assert quiet_hours(quiet_start=None, quiet_end=8) == frozenset()
    assert quiet_hours(quiet_start=5, quiet_end=5) == frozenset()
    assert quiet_hours(quiet_start=22, quiet_end=2) == {22, 23, 0, 1}


def test_half_hour_zones_open_on_their_own_hour():
    # 08:30 in Kolkata (UTC+5:30): 09:00 local is 03:30 UTC.
    assert opening(utc(2026, 6, 3, 3), time_zone="Asia/Kolkata", start=9, end=17) == utc(2026, 6, 3, 3, 30)


# Empty windows


def test_no_days_means_never():
    assert opening(utc(2026, 6, 3, 10), days=[]) is None


def test_quiet_hours_covering_the_whole_sequence_window_mean_never():
    assert opening(utc(2026, 6, 3, 10), start=9, end=17, quiet_start=8, quiet_end=18) is None


def test_a_naive_moment_is_refused():
    with pytest.raises(ValueError):
        opening(datetime(2026, 6, 3, 10))


def test_unknown_zones_fall_back_in_order():
    assert zone_or_utc("Mars/Olympus", BERLIN) == zoneinfo.ZoneInfo(BERLIN)
    assert zone_or_utc("", None, "nope") == zoneinfo.ZoneInfo("UTC")


# Properties

ZONES = [
    "UTC", NY, BERLIN, "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "America/Sao_Paulo",
    "Pacific/Chatham", "Europe/London", "Australia/Sydney",
]  # fmt: skip
# Around the DST transitions of 2026 (and anywhere in two years).
HOT_SPOTS = [utc(2026, 3, 8, 7), utc(2026, 10, 25, 1), utc(2026, 3, 29, 1), utc(2026, 4, 5, 16), utc(2026, 10, 4, 16)]

moments = st.one_of(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.builds(
        lambda spot, minutes, seconds: spot + timedelta(minutes=minutes, seconds=seconds),
        st.sampled_from(HOT_SPOTS), st.integers(-36 * 60, 36 * 60), st.integers(0, 59),
    ),
)  # fmt: skip


@st.composite
def windows(draw):
    start = draw(st.integers(0, 23))
    end = draw(st.integers(start + 1, 24))
    quiet = draw(st.one_of(st.none(), st.tuples(st.integers(0, 23), st.integers(0, 23))))
    return {
        "days": draw(st.lists(st.integers(0, 6), unique=True, max_size=7)),
        "start_hour": start,
        "end_hour": end,
        "quiet_start": quiet[0] if quiet else None,
        "quiet_end": quiet[1] if quiet else None,
    }


@settings(max_examples=300, deadline=None)
@given(moment=moments, time_zone=st.sampled_from(ZONES), window=windows())
def test_the_opening_is_the_first_open_instant_at_or_after_the_moment(moment, time_zone, window):
    result = next_send_opening(moment=moment, time_zone=time_zone, **window)
    if not open_hours(**{k: window[k] for k in ("days", "start_hour", "end_hour", "quiet_start", "quiet_end")}):
        assert result is None
        return
    assert result is not None
    assert result >= moment
    assert in_send_window(moment=result, time_zone=time_zone, **window)
    if result == moment:
        return
    assert not in_send_window(moment=moment, time_zone=time_zone, **window)
    # No earlier minute-aligned instant is open (zone offsets are whole minutes, so hours change on one).
    minute = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert result.second == 0 and result.microsecond == 0
    while minute < result:
        assert not in_send_window(moment=minute, time_zone=time_zone, **window), minute
        minute += timedelta(minutes=1)
