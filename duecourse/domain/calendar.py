"""Borrower-local calendars: days past due, local wall-clock times and contact hours.

Every borrower-facing time is computed in the borrower's own time zone; instants are
timezone-aware UTC-comparable datetimes. Pure functions of their arguments (no clock).
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class TimeZoneError(ValueError):
    """Raised for a time zone name the IANA database does not know."""


_PINNED: dict[str, ZoneInfo] = {}
"""Zones pinned to the rules a loan started with, by `<name>@<digest>` (content-addressed,
so registering the same rules twice is harmless and every process agrees)."""


def pin_zone(name: str, rules: bytes) -> str:
    """Register the compiled zone `rules` (TZif) for `name`; returns the key that makes
    every function here use exactly those rules, whatever tz database is installed."""
    key = f"{name}@{hashlib.sha256(rules).hexdigest()[:16]}"
    if key not in _PINNED:
        _PINNED[key] = ZoneInfo.from_file(io.BytesIO(rules), key=name)
    return key


def zone(name: str) -> ZoneInfo:
    """The zone `name`: a pinned one (see pin_zone), else the IANA zone of that name."""
    pinned = _PINNED.get(name)
    return pinned if pinned is not None else _installed_zone(name.partition("@")[0])


@lru_cache(maxsize=512)
def _installed_zone(name: str) -> ZoneInfo:
    """The installed IANA zone `name`; cached so workflows never re-read the tz database."""
    if not name or name != name.strip():
        raise TimeZoneError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeZoneError(
            f"unknown time zone {name!r}: expected an IANA name such as 'Asia/Shanghai'"
        ) from None


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone; instants must be timezone-aware")


def local_date(moment: datetime, tz: str) -> date:
    """The calendar date at `moment` in zone `tz`."""
    _require_aware(moment)
    return moment.astimezone(zone(tz)).date()


def days_past_due(due_date: date, moment: datetime, tz: str) -> int:
    """Whole days since the due date in the borrower's zone; 0 on or before the due date."""
    return max(0, (local_date(moment, tz) - due_date).days)


def wall_clock(day: date, at: time | timedelta, tz: str) -> datetime:
    """The instant showing `day` + `at` on a wall clock in `tz`.

    `at` may be a time of day or an offset from local midnight (days count as calendar
    days, so "day 3 at 10:00" stays 10:00 across a DST change). A wall time that does
    not exist (spring-forward gap) resolves to the same offset shifted past the gap.
    The result is a UTC instant.
    """
    base = datetime.combine(day, time(0))
    naive = base + (at if isinstance(at, timedelta) else timedelta(hours=at.hour,
                                                                   minutes=at.minute,
                                                                   seconds=at.second))
    # Returned in UTC: Python subtracts and compares same-zone datetimes as naive wall
    # times, which is wrong across DST; UTC instants never are.
    return naive.replace(tzinfo=zone(tz)).astimezone(UTC)


def local_midnight(day: date, tz: str) -> datetime:
    """Start of `day` in zone `tz`."""
    return wall_clock(day, time(0), tz)


def next_time_within(moment: datetime, tz: str, start: time, end: time,
                     end_inclusive: bool = False) -> datetime:
    """Earliest instant at or after `moment` whose local time lies in [start, end) - or
    [start, end] with `end_inclusive`.

    `start < end` is a daytime window (08:00-21:00); `start > end` wraps midnight.
    """
    _require_aware(moment)
    if start == end:
        return moment
    local = moment.astimezone(zone(tz))
    for day_offset in range(-1, 3):  # a wrapping window may have opened yesterday
        day = local.date() + timedelta(days=day_offset)
        opens = wall_clock(day, start, tz)
        closes = wall_clock(day if start < end else day + timedelta(days=1), end, tz)
        if moment < closes or (end_inclusive and moment == closes):
            return max(moment, opens)
    raise AssertionError("a daily window always opens within two days")  # pragma: no cover


def is_within(moment: datetime, tz: str, start: time, end: time) -> bool:
    """Whether `moment` falls inside the local daily window [start, end)."""
    return next_time_within(moment, tz, start, end) == moment
