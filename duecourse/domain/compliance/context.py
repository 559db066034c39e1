"""What a compliance decision depends on besides the proposed contact: the pack, the
borrower's standing and contact history, where they may be, and the calendar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

import holidays as holiday_tables

from duecourse.domain.calendar import local_date, wall_clock
from duecourse.domain.compliance.model import ContactEvent, Standing
from duecourse.domain.compliance.packs import LimitationStart, RulePack
from duecourse.domain.policy import ContactHours


@dataclass(frozen=True)
class Context:
    """Everything a decision depends on besides the proposed contact itself."""

    pack: RulePack
    standing: Standing
    history: Sequence[ContactEvent]
    timezone: str
    region: str  # the loan's jurisdiction, e.g. US-NY (for public holidays)
    policy_hours: ContactHours | None = None  # a policy may restrict further, never widen
    due_date: date | None = None
    extra: dict[str, object] = field(default_factory=dict)
    holidays: frozenset[date] | None = None  # the loan's snapshot of public holidays...
    holiday_years: tuple[int, int] | None = None  # ...for these years (else: installed)
    business_holidays: frozenset[date] | None = None  # the snapshot's national holidays
    business_holiday_years: tuple[int, int] | None = None  # ...for these years
    other_zones: tuple[str, ...] = ()  # zones the borrower may also be in (area codes...)
    last_payment_on: date | None = None  # borrower-local date of the latest payment

    @property
    def zones(self) -> tuple[str, ...]:
        """The zones whose clocks a contact must suit: the borrower's, and every other
        zone they may be in where the pack asks for that."""
        if not self.pack.hours_in_every_possible_zone:
            return (self.timezone,)
        return (self.timezone, *(z for z in self.other_zones if z != self.timezone))


@lru_cache(maxsize=64)
def _holidays(region: str, year: int) -> frozenset[date]:
    """The installed `holidays` package's public holidays of `region` in `year`."""
    return public_holidays(region, year)


def public_holidays(region: str, year: int) -> frozenset[date]:
    """Public holidays of `region` (ISO 3166, subdivision-aware) in `year`."""
    country, _, subdivision = region.partition("-")
    try:
        table = holiday_tables.country_holidays(country, subdiv=subdivision or None,
                                                years=year)
    except NotImplementedError:
        return frozenset()
    return frozenset(table)


def is_holiday(ctx: Context, day: date) -> bool:
    """A public holiday in the loan's region: from the loan's snapshot when it covers the
    year (so an upgraded `holidays` package never changes a running loan's past)."""
    years = ctx.holiday_years
    if ctx.holidays is not None and years is not None and years[0] <= day.year <= years[1]:
        return day in ctx.holidays
    return day in _holidays(ctx.region, day.year)


def is_national_holiday(ctx: Context, day: date) -> bool:
    """A national public holiday of the loan's country: from the loan's snapshot when it
    covers the year (so an upgraded `holidays` package never moves a deadline)."""
    years = ctx.business_holiday_years
    if ctx.business_holidays is not None and years is not None and \
            years[0] <= day.year <= years[1]:
        return day in ctx.business_holidays
    return day in _holidays(ctx.region.split("-")[0], day.year)


def business_days_after(ctx: Context, start: date, days: int) -> date:
    """The date `days` business days after `start`: Saturdays, Sundays and the country's
    national public holidays excluded (Reg F 1006.34(b)(5): assumed receipt)."""
    day, left = start, days
    while left:
        day += timedelta(days=1)
        if day.weekday() < 5 and not is_national_holiday(ctx, day):
            left -= 1
    return day


def validation_period_end(ctx: Context) -> datetime | None:
    """When the validation period ends: the end of the last of the pack's days after the
    notice's assumed receipt; None before the notice is sent (it has not begun)."""
    sent, pack = ctx.standing.validation_notice_at, ctx.pack
    if sent is None or pack.validation_period is None:
        return None
    receipt = business_days_after(ctx, local_date(sent, ctx.timezone),
                                  pack.validation_receipt_business_days)
    return wall_clock(receipt + pack.validation_period + timedelta(days=1), timedelta(0),
                      ctx.timezone)


def time_barred_from(ctx: Context) -> date | None:
    """The first borrower-local day on which the debt is time-barred, if it can be."""
    period = ctx.pack.limitation_for(ctx.region)
    if period is None or ctx.due_date is None:
        return None
    start = ctx.due_date
    if ctx.pack.limitation_starts is LimitationStart.LAST_PAYMENT and \
            ctx.last_payment_on is not None:
        start = max(start, ctx.last_payment_on)
    return start + period
