"""Send windows: when, on a subscriber's local clock, an email may go out (DST-correct, with zoneinfo)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache

# An opening is at most a week away when the window is not empty; a DST gap can swallow the only open
# hour of a week, so look two weeks ahead (plus slack) before calling the window empty.
_MAX_HOURS_AHEAD = 24 * 15


def quiet_hours(*, quiet_start: int | None, quiet_end: int | None) -> frozenset[int]:
    """The local hours in which nothing is sent: [start, end), wrapping past midnight when start > end
    (21 -> 8 is 21:00 to 08:00). No quiet hours when either end is unset or both are equal."""
    if quiet_start is None or quiet_end is None or quiet_start == quiet_end:
        return frozenset()
    if quiet_start < quiet_end:
        return frozenset(range(quiet_start, quiet_end))
    return frozenset(range(quiet_start, 24)) | frozenset(range(0, quiet_end))


def open_hours(
    *, days: Iterable[int], start_hour: int, end_hour: int, quiet_start: int | None, quiet_end: int | None
) -> frozenset[tuple[int, int]]:
    """The (local weekday, local hour) pairs in which sending is allowed: the sequence's days and
    [start_hour, end_hour), minus the workspace's quiet hours. Monday is day 0."""
    return _open_hours(tuple(sorted(set(days))), start_hour, end_hour, quiet_start, quiet_end)


@lru_cache(maxsize=1024)  # a scheduler batch asks for the same few windows thousands of times
def _open_hours(
    days: tuple[int, ...], start_hour: int, end_hour: int, quiet_start: int | None, quiet_end: int | None
) -> frozenset[tuple[int, int]]:
    quiet = quiet_hours(quiet_start=quiet_start, quiet_end=quiet_end)
    hours = [hour for hour in range(max(start_hour, 0), min(end_hour, 24)) if hour not in quiet]
    return frozenset((day, hour) for day in days if 0 <= day <= 6 for hour in hours)


def zone_or_utc(*names: str | None) -> zoneinfo.ZoneInfo:
    """The first of `names` that is a known IANA zone; UTC when none is."""
    for name in names:
        if not name:
            continue
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return zoneinfo.ZoneInfo("UTC")


def _next_hour_change(moment: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant after `moment` at which the local hour may differ from `moment`'s.

    Wall-clock arithmetic: the next local hh:00, turned back into an instant. A wall time that does
    not exist (spring forward) resolves, with fold=0, to the transition itself, which is exactly when
    the local hour changes; a repeated hour (fall back) keeps its hour number, so skipping its second
    occurrence changes nothing about which hours are open.
    """
    local = moment.astimezone(zone)
    wall = local.replace(tzinfo=None, minute=0, second=0, microsecond=0, fold=0) + timedelta(hours=1)
    candidate = wall.replace(tzinfo=zone).astimezone(UTC)
    if candidate <= moment:  # never expected; step a minute rather than loop or skip an hour change
        candidate = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return candidate


def next_send_opening(
    *,
    moment: datetime,
    time_zone: str | zoneinfo.ZoneInfo,
    days: Iterable[int],
    start_hour: int,
    end_hour: int,
    quiet_start: int | None = None,
    quiet_end: int | None = None,
) -> datetime | None:
    """The earliest instant at or after `moment` (aware) that is inside the window, in UTC; `moment`
    itself when it is inside. None when the window is empty (no day, or quiet hours cover every hour)."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    zone = time_zone if isinstance(time_zone, zoneinfo.ZoneInfo) else zoneinfo.ZoneInfo(time_zone)
    allowed = open_hours(
        days=days, start_hour=start_hour, end_hour=end_hour, quiet_start=quiet_start, quiet_end=quiet_end
    )
    if not allowed:
        return None
    candidate = moment.astimezone(UTC)
    for _ in range(_MAX_HOURS_AHEAD):
        local = candidate.astimezone(zone)
        if (local.weekday(), local.hour) in allowed:
            return candidate
        candidate = _next_hour_change(candidate, zone)
    return None


def in_send_window(
    *,
    moment: datetime,
    time_zone: str | zoneinfo.ZoneInfo,
    days: Iterable[int],
    start_hour: int,
    end_hour: int,
    quiet_start: int | None = None,
    quiet_end: int | None = None,
) -> bool:
    zone = time_zone if isinstance(time_zone, zoneinfo.ZoneInfo) else zoneinfo.ZoneInfo(time_zone)
    local = moment.astimezone(zone)
    allowed = open_hours(
        days=days, start_hour=start_hour, end_hour=end_hour, quiet_start=quiet_start, quiet_end=quiet_end
    )
    return (local.weekday(), local.hour) in allowed
