"""Rules that time satisfies: contact hours, inconvenient times, holidays, holds, and how
often a person may be called. Each gives the exact earliest instant it allows, so their
fixpoint is the earliest instant all of them allow.

Call limits count per person (all of one person's numbers together) in the law's unit:
consecutive local days by default, calls that never connected left out (Reg F comment
14(b)(3)(ii)-1); a policy may choose a rolling window or count every dial.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from duecourse.domain.calendar import local_date, next_time_within, wall_clock, zone
from duecourse.domain.compliance.context import Context, is_holiday
from duecourse.domain.compliance.model import (
    AttemptResult,
    ContactEvent,
    ProposedContact,
    same_person,
)
from duecourse.domain.compliance.packs import CallWindow
from duecourse.domain.compliance.rule import Earliest, Rule
from duecourse.domain.policy import Channel, ContactHours

_NO_COMMON_HOURS = timedelta(days=400)
"""Zones whose lawful hours have not met within this long never will. (Hours that do not
meet now may meet weeks later, once one zone's clocks change: search the whole horizon.)"""


def _hours(pick: str) -> Earliest:
    def earliest(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
        hours: ContactHours | None = ctx.pack.contact_hours if pick == "pack" \
            else ctx.policy_hours
        if hours is None or p.channel is Channel.LETTER:
            return t
        start, moved = t, True
        while moved:  # every zone the borrower may be in, at once
            moved = False
            for tz in ctx.zones:
                nxt = next_time_within(t, tz, hours.start, hours.end, hours.end_inclusive)
                if nxt > t:
                    if nxt - start > _NO_COMMON_HOURS:
                        return None  # the zones' hours never meet
                    t, moved = nxt, True
        return t
    return earliest


def _inconvenient(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    if not ctx.pack.honour_inconvenient_times or p.channel is Channel.LETTER:
        return t
    for window in ctx.standing.inconvenient:
        local = t.astimezone(zone(ctx.timezone))
        for day in (local.date() - timedelta(days=1), local.date()):
            if day.weekday() not in window.weekdays:
                continue
            opens = wall_clock(day, window.start, ctx.timezone)
            wraps = window.end <= window.start
            closes = wall_clock(day + timedelta(days=1) if wraps else day, window.end,
                                ctx.timezone)
            if opens <= t < closes:
                return closes
    return t


def _public_holiday(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    if not ctx.pack.no_contact_on_public_holidays or p.channel is Channel.LETTER:
        return t
    day = local_date(t, ctx.timezone)
    if not is_holiday(ctx, day):
        return t
    while is_holiday(ctx, day):
        day += timedelta(days=1)
    return wall_clock(day, timedelta(0), ctx.timezone)


def _held(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    hold = ctx.standing.hold_at(t)
    if hold is None:
        return t
    return hold.end  # None: open-ended, until a person lifts it


def calls_to(ctx: Context, p: ProposedContact, t: datetime, *, counted_only: bool = False,
             inbound: bool = False) -> list[ContactEvent]:
    """Calls placed to the person `p` is for, up to `t` (with `inbound`, their calls to
    us too); `counted_only` leaves out the calls that never connected, unless the pack
    counts them."""
    return [e for e in ctx.history if e.channel is Channel.VOICE and same_person(e, p)
            and e.at <= t and (inbound or not e.inbound)
            and not (counted_only and not ctx.pack.count_unconnected_calls
                     and e.result is AttemptResult.FAILED)]


def _day_after(day: date, days: int, tz: str) -> datetime:
    return wall_clock(day + timedelta(days=days), timedelta(0), tz)


def _consecutive(ctx: Context, period: timedelta) -> bool:
    return ctx.pack.call_window is CallWindow.CONSECUTIVE_DAYS and not period.seconds


def _answered_per_day(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    cap = ctx.pack.max_answered_calls_per_day
    if cap is None or p.channel is not Channel.VOICE:
        return t
    day = local_date(t, ctx.timezone)
    answered = sum(e.result is AttemptResult.ANSWERED and local_date(e.at, ctx.timezone) == day
                   for e in calls_to(ctx, p, t))
    return t if answered < cap else _day_after(day, 1, ctx.timezone)


def _unanswered_per_number(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    cap = ctx.pack.max_unanswered_attempts_per_number_per_day
    if cap is None or p.channel is not Channel.VOICE:
        return t
    day = local_date(t, ctx.timezone)
    attempts = sum(e.channel is Channel.VOICE and e.address == p.address and e.at <= t
                   and not e.inbound and e.result is not AttemptResult.ANSWERED
                   and local_date(e.at, ctx.timezone) == day for e in ctx.history)
    return t if attempts < cap else _day_after(day, 1, ctx.timezone)


def _call_frequency(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    """More than N calls within N consecutive days to one person (1006.14(b)(2)(i)(A))."""
    cap, period = ctx.pack.max_call_attempts, ctx.pack.call_attempt_period
    if cap is None or p.channel is not Channel.VOICE:
        return t
    calls = sorted(e.at for e in calls_to(ctx, p, t, counted_only=True))
    if _consecutive(ctx, period):
        tz, days = ctx.timezone, period.days
        first_day = local_date(t, tz) - timedelta(days=days - 1)
        recent = [at for at in calls if local_date(at, tz) >= first_day]
        return t if len(recent) < cap else _day_after(local_date(recent[-cap], tz), days, tz)
    recent = [at for at in calls if at > t - period]
    return t if len(recent) < cap else recent[-cap] + period


def _after_conversation(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    """No call within N consecutive days after a conversation (1006.14(b)(2)(i)(B))."""
    quiet = ctx.pack.quiet_after_conversation
    if quiet is None or p.channel is not Channel.VOICE:
        return t
    talks = [e.at for e in calls_to(ctx, p, t, inbound=True)  # whoever called
             if e.result is AttemptResult.ANSWERED]
    if not talks:
        return t
    if _consecutive(ctx, quiet):
        return max(t, _day_after(local_date(max(talks), ctx.timezone), quiet.days,
                                 ctx.timezone))
    return max(t, max(talks) + quiet)


CLOCK_RULES: list[Rule] = [
    Rule("hours", _hours("pack"), "outside lawful contact hours"),
    Rule("policy_hours", _hours("policy"), "outside the policy's contact hours"),
    Rule("inconvenient", _inconvenient, "inside a time the borrower named as inconvenient"),
    Rule("holiday", _public_holiday, "on a public holiday"),
    Rule("hold", _held, lambda p, c, t: "during a " + (
        h.kind.value.replace("_", " ") if (h := c.standing.hold_at(t)) else "") + " hold"),
    Rule("answered_calls", _answered_per_day, "daily limit of answered calls reached"),
    Rule("unanswered_attempts", _unanswered_per_number,
         "daily limit of unanswered attempts to this number reached"),
    Rule("call_frequency", _call_frequency, "call limit for consecutive days reached"),
    Rule("after_conversation", _after_conversation, "too soon after a conversation"),
]
