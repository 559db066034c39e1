"""The compliance engine: one set of rules, two questions.

- `violations(contact, ctx)`: every rule one concrete contact breaks (the ledger audit);
- `decide(contact, ctx)`: Allowed (no rule is broken), Deferred(until) (every rule allows
  the contact at `until` and none earlier), or Blocked (no lawful moment exists while the
  facts stay as they are). Both ask the same rules, so they cannot disagree: `decide`
  iterates each rule's exact "earliest allowed at or after t" to a fixpoint.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from duecourse.domain.calendar import local_date, wall_clock, zone
from duecourse.domain.compliance.clock_rules import CLOCK_RULES
from duecourse.domain.compliance.context import (
    Context,
    _holidays,
    is_holiday,
    public_holidays,
    time_barred_from,
)
from duecourse.domain.compliance.model import (
    Decision,
    ProposedContact,
    Purpose,
    Verdict,
    Violation,
)
from duecourse.domain.compliance.rule import Rule
from duecourse.domain.compliance.standing_rules import STANDING_RULES, freezing_dispute
from duecourse.domain.policy import Channel, ContactHours

__all__ = [
    "DECISION_VALIDITY",
    "HORIZON",
    "Context",
    "_holidays",
    "blocker",
    "decide",
    "freeze_reason",
    "lawful_until",
    "legal_action_problem",
    "public_holidays",
    "violations",
]

HORIZON = timedelta(days=400)
"""Deferring further than this means the rules leave no lawful time: Blocked instead."""

DECISION_VALIDITY = timedelta(hours=1)
"""An Allowed decision holds for at most this long (and never past the end of the lawful
window it was made in): a send delayed beyond it is decided again, never sent late."""

RULES: list[Rule] = [*STANDING_RULES, *CLOCK_RULES]


def _ref(ctx: Context, code: str, p: ProposedContact | None = None,
         t: datetime | None = None) -> str:
    if code == "policy_hours":
        return "policy contact hours"
    if code == "hold" and t is not None and (hold := ctx.standing.hold_at(t)) is not None:
        return ctx.pack.references.get(f"hold.{hold.kind.value}", ctx.pack.ref("hold"))
    return ctx.pack.ref(code)


def _violation(rule: Rule, p: ProposedContact, ctx: Context, t: datetime) -> Violation:
    return Violation(code=rule.code, rule=_ref(ctx, rule.code, p, t),
                     detail=rule.describe(p, ctx, t))


def violations(p: ProposedContact, ctx: Context) -> list[Violation]:
    """Every rule the contact `p` breaks at `p.at` (empty: lawful)."""
    return [_violation(r, p, ctx, p.at) for r in RULES if not r.allows(p, ctx, p.at)]


def decide(p: ProposedContact, ctx: Context) -> Decision:
    """Allowed now, Deferred to the earliest lawful instant, or Blocked with the rule."""
    t, binding, moved = p.at, "", True
    while moved:
        moved = False
        for rule in RULES:
            earliest = rule.earliest(p, ctx, t)
            if earliest is None or earliest > p.at + HORIZON:
                why = _violation(rule, p, ctx, t)
                detail = why.detail if earliest is None and t == p.at else (
                    f"{why.detail}: no lawful time within {HORIZON.days} days")
                return Decision(verdict=Verdict.BLOCKED, at=p.at, code=why.code,
                                rule=why.rule, detail=detail)
            if earliest > t:
                t, binding, moved = earliest, rule.code, True
    if t == p.at:
        return Decision(verdict=Verdict.ALLOWED, at=p.at, valid_until=lawful_until(p, ctx))
    first = violations(p, ctx)[0]  # why it cannot happen now
    local = t.astimezone(zone(ctx.timezone)).isoformat()
    return Decision(verdict=Verdict.DEFERRED, at=p.at, until=t, code=first.code,
                    rule=first.rule, detail=f"{first.detail}; earliest lawful time {local}"
                    + (f" (last bound by {binding})" if binding else ""))


def _window_close(moment: datetime, tz: str, hours: ContactHours) -> datetime:
    """The first instant after the daily local window that contains `moment` (with an
    inclusive end, just after its last instant)."""
    local, start, end = moment.astimezone(zone(tz)), hours.start, hours.end
    for day_offset in (-1, 0, 1):
        day = local.date() + timedelta(days=day_offset)
        closes = wall_clock(day if start < end else day + timedelta(days=1), end, tz)
        if hours.end_inclusive and moment == closes:
            return closes + timedelta(microseconds=1)
        if moment < closes:
            return closes
    raise AssertionError("a daily window always closes within two days")  # pragma: no cover


def lawful_until(p: ProposedContact, ctx: Context) -> datetime:
    """How long a contact allowed at `p.at` stays allowed: the first of the contact hours
    closing in any zone, an inconvenient time opening, a public holiday beginning, a hold
    starting, the debt becoming time-barred (for a demand) - and at most DECISION_VALIDITY.
    (Counts only ever loosen with time, so they cannot end the window.)"""
    t, tz = p.at, ctx.timezone
    ends = [t + DECISION_VALIDITY]
    if p.channel is not Channel.LETTER:
        for hours in (ctx.pack.contact_hours, ctx.policy_hours):
            if hours is not None:
                ends += [_window_close(t, z, hours) for z in ctx.zones]
        if ctx.pack.honour_inconvenient_times:
            local_day = local_date(t, tz)
            for window in ctx.standing.inconvenient:
                for day in (local_day, local_day + timedelta(days=1)):
                    opens = wall_clock(day, window.start, tz)
                    if day.weekday() in window.weekdays and opens > t:
                        ends.append(opens)
        if ctx.pack.no_contact_on_public_holidays:
            tomorrow = local_date(t, tz) + timedelta(days=1)
            if is_holiday(ctx, tomorrow):
                ends.append(wall_clock(tomorrow, timedelta(0), tz))
    ends += [h.start for h in ctx.standing.holds if h.start > t]
    barred = time_barred_from(ctx)
    if p.purpose is Purpose.DEMAND and barred is not None:
        ends.append(wall_clock(barred, timedelta(0), tz))
    return min(ends)


def blocker(p: ProposedContact, ctx: Context) -> Violation | None:
    """The rule, if any, that forbids `p` whatever the time: checked again by a send in
    flight just before it goes out, so a stop fact that arrived meanwhile fences it."""
    frozen = freeze_reason(ctx, p.at)
    if frozen is not None:
        return frozen
    return next((_violation(r, p, ctx, p.at) for r in STANDING_RULES
                 if not r.allows(p, ctx, p.at)), None)


def freeze_reason(ctx: Context, now: datetime) -> Violation | None:
    """Why collection as a whole (contact and escalation) is frozen at `now`, if it is."""
    s, pack = ctx.standing, ctx.pack

    def v(code: str, detail: str, rule: str = "") -> Violation:
        return Violation(code=code, rule=rule or pack.ref(code), detail=detail)

    if s.deceased_at is not None:
        return v("deceased", "the borrower is deceased")
    if s.bankruptcy_at is not None:
        return v("bankruptcy", "the borrower is in bankruptcy: enforcement is stayed")
    if freezing_dispute(ctx):
        return v("dispute", "the debt is disputed and not yet verified")
    hold = s.hold_at(now)
    if hold is not None:
        return v("hold", f"{hold.kind.value.replace('_', ' ')} hold"
                         + (f" until {hold.end.isoformat()}" if hold.end else ""),
                 _ref(ctx, "hold", t=now))
    return None


def legal_action_problem(ctx: Context, now: datetime) -> Violation | None:
    """Why the loan may not enter (or proceed in) the legal stage now, if it may not."""
    frozen = freeze_reason(ctx, now)
    if frozen is not None:
        return frozen
    pack = ctx.pack
    barred = time_barred_from(ctx)
    if barred is not None and local_date(now, ctx.timezone) >= barred:
        return Violation(code="time_barred", rule=pack.ref("time_barred"),
                         detail="the debt is time-barred; it is never taken to court")
    if pack.forbearance_before_legal and ctx.standing.forbearance_offered_at is None:
        return Violation(code="forbearance", rule=pack.ref("forbearance"),
                         detail="forbearance has not been offered yet")
    return None
