"""The compliance engine.

Two entry points over the same rules:
- `violations(contact, ctx)`: every rule one concrete contact breaks (used by `decide`'s
  final check and by the independent ledger audit);
- `decide(contact, ctx)`: Allowed, Blocked (a rule no amount of waiting satisfies), or
  Deferred to the earliest instant every time-based rule allows, found by iterating each
  rule's own "earliest allowed at or after t" to a fixpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import holidays as holiday_tables

from duecourse.domain.calendar import local_date, next_time_within, wall_clock, zone
from duecourse.domain.compliance.model import (
    AttemptResult,
    ContactEvent,
    Decision,
    Hold,
    ProposedContact,
    Purpose,
    RecipientKind,
    Standing,
    Verdict,
    Violation,
)
from duecourse.domain.compliance.packs import RulePack
from duecourse.domain.policy import Channel, ContactHours

HORIZON = timedelta(days=400)
"""Deferring further than this means the rules leave no lawful time: Blocked instead."""

DECISION_VALIDITY = timedelta(hours=1)
"""An Allowed decision holds for at most this long (and never past the end of the lawful
window it was made in): a send delayed beyond it is decided again, never sent late."""


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


# --------------------------------------------------------------------------- blockers
def _blocker(p: ProposedContact, ctx: Context) -> Violation | None:
    """Rules that waiting cannot satisfy: only a change of standing lifts them."""
    s, pack = ctx.standing, ctx.pack

    def v(code: str, detail: str) -> Violation:
        return Violation(code=code, rule=pack.ref(code), detail=detail)

    if s.deceased_at is not None and s.deceased_at <= p.at:
        return v("deceased", "the borrower is deceased; all contact stops")
    if s.bankruptcy_at is not None and s.bankruptcy_at <= p.at:
        return v("bankruptcy", "the borrower is in bankruptcy; all contact stops")
    if pack.dispute_freezes_collection and s.dispute_open and p.purpose is not \
            Purpose.VALIDATION_NOTICE:
        return v("dispute", "the debt is disputed and verification has not been sent")
    if pack.cease_communication_stops_contact and s.cease_communication_at is not None:
        return v("cease", "the borrower asked us to cease communication")
    if pack.attorney_stops_contact and s.attorney_at is not None:
        return v("attorney", "an attorney represents the borrower; contact them instead")
    opted = s.opted_out.get(p.channel)
    if opted is not None and opted <= p.at:
        return v("opted_out", f"the borrower opted out of {p.channel} on {opted.date()}")
    hold = s.hold_at(p.at)
    if hold is not None and hold.end is None:
        return v("hold", f"a {hold.kind.value.replace('_', ' ')} hold is in place")
    if p.recipient_kind is RecipientKind.THIRD_PARTY:
        if p.address in s.refused_third_parties:
            return v("third_party_refused", "this contact refused further contact")
        if p.discloses_debt:
            return v("disclosure", "a message to a third party must not disclose the debt")
        if pack.third_party_location_only and p.purpose is not Purpose.LOCATION:
            return v("third_party", "third parties may only be asked for location "
                                    "information")
        if pack.third_party_only_when_unreachable and not _debtor_unreachable(ctx):
            return v("third_party", "the debtor is reachable; third parties may not be "
                                    "contacted")
    if pack.min_visit_collectors and p.channel is Channel.VISIT and \
            p.collectors < pack.min_visit_collectors:
        return v("visit_collectors", f"a visit needs at least {pack.min_visit_collectors} "
                                     f"collectors, {p.collectors} planned")
    first = _first_debtor_contact(ctx.history)
    if pack.validation_notice_within and p.purpose is Purpose.COLLECTION and \
            s.validation_notice_at is None and first is not None and \
            p.at > first + pack.validation_notice_within:
        return v("validation_notice", "the validation notice was not sent within "
                                      f"{pack.validation_notice_within.days} days of the "
                                      "first communication")
    return None


def _debtor_unreachable(ctx: Context) -> bool:
    debtor = [e for e in ctx.history if e.recipient_kind is RecipientKind.DEBTOR
              and e.channel in (Channel.VOICE, Channel.SMS)]
    needed = ctx.pack.unreachable_after_failed_attempts
    if any(e.result is AttemptResult.FAILED and e.channel is Channel.VOICE for e in debtor) \
            and all(e.result is not AttemptResult.ANSWERED for e in debtor):
        return True  # an invalid number and never a conversation
    latest = debtor[-needed:]
    return len(latest) == needed and all(
        e.result in (AttemptResult.FAILED, AttemptResult.UNANSWERED) for e in latest)


def _first_debtor_contact(history: Sequence[ContactEvent]) -> datetime | None:
    return min((e.at for e in history if e.recipient_kind is RecipientKind.DEBTOR),
               default=None)


# --------------------------------------------------------------------------- time rules
# Each rule maps (contact, ctx, t) to the earliest instant >= t it allows, or None when it
# never will; it allows t exactly when it returns t.
TimeRule = Callable[[ProposedContact, Context, datetime], datetime | None]


def _hours(hours: ContactHours | None) -> TimeRule:
    def rule(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
        if hours is None or p.channel is Channel.LETTER:
            return t
        return next_time_within(t, ctx.timezone, hours.start, hours.end)
    return rule


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


def _is_holiday(ctx: Context, day: date) -> bool:
    """A public holiday in the loan's region: from the loan's snapshot when it covers the
    year (so an upgraded `holidays` package never changes a running loan's past)."""
    years = ctx.holiday_years
    if ctx.holidays is not None and years is not None and years[0] <= day.year <= years[1]:
        return day in ctx.holidays
    return day in _holidays(ctx.region, day.year)


def _public_holiday(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    if not ctx.pack.no_contact_on_public_holidays or p.channel is Channel.LETTER:
        return t
    day = local_date(t, ctx.timezone)
    if not _is_holiday(ctx, day):
        return t
    while _is_holiday(ctx, day):
        day += timedelta(days=1)
    return wall_clock(day, timedelta(0), ctx.timezone)


def _held(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    hold: Hold | None = ctx.standing.hold_at(t)
    if hold is None:
        return t
    return hold.end  # None: an open-ended hold (reported as a blocker first)


def _debtor_calls(ctx: Context) -> list[ContactEvent]:
    return [e for e in ctx.history if e.channel is Channel.VOICE
            and e.recipient_kind is RecipientKind.DEBTOR]


def _next_local_day(t: datetime, tz: str) -> datetime:
    return wall_clock(local_date(t, tz) + timedelta(days=1), timedelta(0), tz)


def _answered_per_day(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    cap = ctx.pack.max_answered_calls_per_day
    if cap is None or p.channel is not Channel.VOICE:
        return t
    day = local_date(t, ctx.timezone)
    answered = sum(e.result is AttemptResult.ANSWERED and local_date(e.at, ctx.timezone) == day
                   for e in _debtor_calls(ctx))
    return t if answered < cap else _next_local_day(t, ctx.timezone)


def _unanswered_per_number(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    cap = ctx.pack.max_unanswered_attempts_per_number_per_day
    if cap is None or p.channel is not Channel.VOICE:
        return t
    day = local_date(t, ctx.timezone)
    attempts = sum(e.channel is Channel.VOICE and e.address == p.address
                   and e.result is not AttemptResult.ANSWERED
                   and local_date(e.at, ctx.timezone) == day for e in ctx.history)
    return t if attempts < cap else _next_local_day(t, ctx.timezone)


def _call_frequency(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    cap, period = ctx.pack.max_call_attempts, ctx.pack.call_attempt_period
    if cap is None or p.channel is not Channel.VOICE:
        return t
    calls = sorted(e.at for e in _debtor_calls(ctx) if e.at <= t)
    recent = [at for at in calls if at > t - period]
    return t if len(recent) < cap else calls[-cap] + period


def _after_conversation(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
    quiet = ctx.pack.quiet_after_conversation
    if quiet is None or p.channel is not Channel.VOICE:
        return t
    talks = [e.at for e in _debtor_calls(ctx) if e.result is AttemptResult.ANSWERED
             and e.at <= t]
    if not talks:
        return t
    return max(t, max(talks) + quiet)


def _time_rules(ctx: Context) -> list[tuple[str, TimeRule]]:
    rules: list[tuple[str, TimeRule]] = [("hours", _hours(ctx.pack.contact_hours))]
    if ctx.policy_hours is not None:
        rules.append(("policy_hours", _hours(ctx.policy_hours)))
    rules += [("inconvenient", _inconvenient), ("holiday", _public_holiday),
              ("hold", _held), ("answered_calls", _answered_per_day),
              ("unanswered_attempts", _unanswered_per_number),
              ("call_frequency", _call_frequency), ("after_conversation", _after_conversation)]
    return rules


_DETAILS = {
    "hours": "outside lawful contact hours",
    "policy_hours": "outside the policy's contact hours",
    "inconvenient": "inside a time the borrower named as inconvenient",
    "holiday": "on a public holiday",
    "hold": "during a hold",
    "answered_calls": "daily limit of answered calls reached",
    "unanswered_attempts": "daily limit of unanswered attempts to this number reached",
    "call_frequency": "call attempt limit for the period reached",
    "after_conversation": "too soon after a conversation",
}


def _ref(ctx: Context, code: str) -> str:
    return "policy contact hours" if code == "policy_hours" else ctx.pack.ref(code)


# --------------------------------------------------------------------------- public API
def violations(p: ProposedContact, ctx: Context) -> list[Violation]:
    """Every rule the contact `p` breaks at `p.at` (empty: lawful)."""
    found: list[Violation] = []
    blocker = _blocker(p, ctx)
    if blocker is not None:
        found.append(blocker)
    for code, rule in _time_rules(ctx):
        if rule(p, ctx, p.at) != p.at:
            found.append(Violation(code=code, rule=_ref(ctx, code),
                                   detail=_DETAILS[code]))
    return found


def _window_close(moment: datetime, tz: str, start: time, end: time) -> datetime:
    """The end of the daily local window [start, end) that contains `moment`."""
    local = moment.astimezone(zone(tz))
    for day_offset in (-1, 0, 1):
        day = local.date() + timedelta(days=day_offset)
        closes = wall_clock(day if start < end else day + timedelta(days=1), end, tz)
        if moment < closes:
            return closes
    raise AssertionError("a daily window always closes within two days")  # pragma: no cover


def lawful_until(p: ProposedContact, ctx: Context) -> datetime:
    """How long a contact allowed at `p.at` stays allowed by the clock-based rules: the
    first of the contact hours closing, an inconvenient time opening, a public holiday
    beginning, a hold starting - and at most DECISION_VALIDITY. (Counts only ever loosen
    with time, so they cannot end the window.)"""
    t, tz = p.at, ctx.timezone
    ends = [t + DECISION_VALIDITY]
    if p.channel is not Channel.LETTER:
        for hours in (ctx.pack.contact_hours, ctx.policy_hours):
            if hours is not None:
                ends.append(_window_close(t, tz, hours.start, hours.end))
        if ctx.pack.honour_inconvenient_times:
            local_day = local_date(t, tz)
            for window in ctx.standing.inconvenient:
                for day in (local_day, local_day + timedelta(days=1)):
                    opens = wall_clock(day, window.start, tz)
                    if day.weekday() in window.weekdays and opens > t:
                        ends.append(opens)
        if ctx.pack.no_contact_on_public_holidays:
            tomorrow = local_date(t, tz) + timedelta(days=1)
            if _is_holiday(ctx, tomorrow):
                ends.append(wall_clock(tomorrow, timedelta(0), tz))
    ends += [h.start for h in ctx.standing.holds if h.start > t]
    return min(ends)


def blocker(p: ProposedContact, ctx: Context) -> Violation | None:
    """The rule, if any, that forbids `p` whatever the time: checked again by a send in
    flight just before it goes out, so a stop fact that arrived meanwhile fences it."""
    return freeze_reason(ctx, p.at) or _blocker(p, ctx)


def decide(p: ProposedContact, ctx: Context) -> Decision:
    """Allowed now, Deferred to the earliest lawful instant, or Blocked with the rule."""
    blocker = _blocker(p, ctx)
    if blocker is not None:
        return Decision(verdict=Verdict.BLOCKED, at=p.at, code=blocker.code,
                        rule=blocker.rule, detail=blocker.detail)
    t, binding = p.at, ""
    moved = True
    while moved:
        moved = False
        for code, rule in _time_rules(ctx):
            earliest = rule(p, ctx, t)
            if earliest is None or earliest > p.at + HORIZON:
                return Decision(verdict=Verdict.BLOCKED, at=p.at, code=code,
                                rule=_ref(ctx, code),
                                detail=f"{_DETAILS[code]}: no lawful time within "
                                       f"{HORIZON.days} days")
            if earliest > t:
                t, binding, moved = earliest, code, True
    if t == p.at:
        return Decision(verdict=Verdict.ALLOWED, at=p.at, valid_until=lawful_until(p, ctx))
    first = next(v for v in violations(p, ctx))  # why it cannot happen now
    return Decision(verdict=Verdict.DEFERRED, at=p.at, until=t, code=first.code,
                    rule=first.rule, detail=f"{first.detail}; earliest lawful time "
                                            f"{t.astimezone(zone(ctx.timezone)).isoformat()}"
                                            + (f" (last bound by {binding})" if binding
                                               else ""))


def freeze_reason(ctx: Context, now: datetime) -> Violation | None:
    """Why collection as a whole (contact and escalation) is frozen at `now`, if it is."""
    s, pack = ctx.standing, ctx.pack

    def v(code: str, detail: str) -> Violation:
        return Violation(code=code, rule=pack.ref(code), detail=detail)

    if s.deceased_at is not None:
        return v("deceased", "the borrower is deceased")
    if s.bankruptcy_at is not None:
        return v("bankruptcy", "the borrower is in bankruptcy: enforcement is stayed")
    if pack.dispute_freezes_collection and s.dispute_open:
        return v("dispute", "the debt is disputed and not yet verified")
    hold = s.hold_at(now)
    if hold is not None:
        return v("hold", f"{hold.kind.value.replace('_', ' ')} hold"
                         + (f" until {hold.end.isoformat()}" if hold.end else ""))
    return None


def legal_action_problem(ctx: Context, now: datetime) -> Violation | None:
    """Why the loan may not enter (or proceed in) the legal stage now, if it may not."""
    frozen = freeze_reason(ctx, now)
    if frozen is not None:
        return frozen
    pack = ctx.pack
    if pack.statute_of_limitations is not None and ctx.due_date is not None and \
            local_date(now, ctx.timezone) >= ctx.due_date + pack.statute_of_limitations:
        return Violation(code="time_barred", rule=pack.ref("time_barred"),
                         detail="the debt is time-barred; it is never taken to court")
    if pack.forbearance_before_legal and ctx.standing.forbearance_offered_at is None:
        return Violation(code="forbearance", rule=pack.ref("forbearance"),
                         detail="forbearance has not been offered yet")
    return None
