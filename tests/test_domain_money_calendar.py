"""Money and borrower-local calendars: exact, timezone-aware, DST-proof."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from duecourse.domain.calendar import (
    TimeZoneError,
    days_past_due,
    is_within,
    local_date,
    next_time_within,
    wall_clock,
    zone,
)
from duecourse.domain.money import CurrencyError, Money, minor_units


def test_money_is_exact_and_scaled_to_the_currency() -> None:
    assert Money.of("10.1", "usd") == Money(amount=Decimal("10.10"), currency="USD")
    assert Money.of("0.1", "USD") + Money.of("0.2", "USD") == Money.of("0.3", "USD")
    assert Money.of(500, "JPY").amount == Decimal("500")
    assert str(Money.of("1234.5", "CNY")) == "1,234.50 CNY"
    assert minor_units("KWD") == 3


@pytest.mark.parametrize(("amount", "currency", "message"), [
    ("1.234", "USD", "more decimal places than USD allows"),
    ("1.5", "JPY", "more decimal places than JPY allows"),
    ("10", "ABC", "unknown currency 'ABC'"),
    ("NaN", "USD", "finite"),
])
def test_money_rejects_what_it_cannot_represent(amount: str, currency: str,
                                                message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Money.of(amount, currency)


def test_money_never_mixes_currencies() -> None:
    with pytest.raises(CurrencyError, match="cannot combine USD with EUR"):
        _ = Money.of(1, "USD") + Money.of(1, "EUR")
    with pytest.raises(CurrencyError):
        _ = Money.of(1, "USD") < Money.of(1, "EUR")


def test_days_past_due_uses_the_borrowers_date() -> None:
    due = date(2026, 11, 20)
    moment = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)  # 01:00 on the 21st in Shanghai
    assert days_past_due(due, moment, "Asia/Shanghai") == 1
    assert days_past_due(due, moment, "America/Los_Angeles") == 0  # still the 20th there
    assert days_past_due(due, moment - timedelta(days=3), "Asia/Shanghai") == 0


def test_wall_clock_keeps_local_time_across_dst() -> None:
    before = wall_clock(date(2026, 3, 7), time(10), "America/New_York")
    after = wall_clock(date(2026, 3, 9), time(10), "America/New_York")
    new_york = ZoneInfo("America/New_York")
    assert before.astimezone(new_york).hour == after.astimezone(new_york).hour == 10
    assert after - before == timedelta(days=2) - timedelta(hours=1)  # one hour was skipped
    # a wall time inside the spring-forward gap resolves after the gap
    gap = wall_clock(date(2026, 3, 8), time(2, 30), "America/New_York").astimezone(new_york)
    assert gap.hour == 3 and gap.utcoffset() == timedelta(hours=-4)


def test_contact_window_moves_late_night_to_morning() -> None:
    late = datetime(2026, 11, 28, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    moved = next_time_within(late, "Asia/Shanghai", time(8), time(22))
    assert moved.astimezone(ZoneInfo("Asia/Shanghai")) == datetime(
        2026, 11, 29, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert next_time_within(moved, "Asia/Shanghai", time(8), time(22)) == moved


def test_unknown_time_zone_is_a_clear_error() -> None:
    with pytest.raises(TimeZoneError, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")
    with pytest.raises(ValueError, match="timezone-aware"):
        local_date(datetime(2026, 1, 1), "UTC")


ZONES = st.sampled_from(["Asia/Shanghai", "America/New_York", "Europe/London",
                         "America/Los_Angeles", "Australia/Lord_Howe", "Asia/Kolkata",
                         "America/St_Johns", "Pacific/Chatham"])
HOURS = st.sampled_from([(time(8), time(21)), (time(8), time(22)), (time(9, 30), time(17)),
                         (time(22), time(6))])
MOMENTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31),
                       timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(moment=MOMENTS, tz=ZONES, hours=HOURS)
def test_next_time_within_is_the_earliest_allowed_minute(moment: datetime, tz: str,
                                                         hours: tuple[time, time]) -> None:
    """Brute force: no earlier whole minute at or after `moment` is inside the window."""
    start, end = hours
    found = next_time_within(moment, tz, start, end)
    assert found >= moment
    local = found.astimezone(zone(tz)).time()
    inside = start <= local < end if start < end else (local >= start or local < end)
    assert inside, (found, local)
    probe = moment
    while probe < found - timedelta(minutes=1):
        probe_local = probe.astimezone(zone(tz)).time()
        allowed = (start <= probe_local < end if start < end
                   else probe_local >= start or probe_local < end)
        assert not allowed, f"{probe} was already allowed before {found}"
        probe += timedelta(minutes=1)
    assert is_within(found, tz, start, end)
