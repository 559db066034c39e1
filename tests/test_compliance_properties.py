"""The compliance engine's promise, checked by brute force against an independent oracle.

`lawful(p, ctx)` restates every rule of the pack from the law's text (collections
reference, "Compliance rules, by jurisdiction"), naively, on one instant: it reads the
pack's parameters but never calls the engine's rule functions, and it computes local
clocks, local days, holidays, business days and limitation dates itself. Over random
packs (with policy overrides), zones (DST changes included), standings, recipients
(debtor, guarantor, third parties) and histories:

1. `violations(p, ctx)` is empty exactly when the oracle finds `p` lawful - and, rule by
   rule, names the very rules the oracle finds broken;
2. Allowed: lawful at `p.at` and at every probed instant of [p.at, valid_until);
3. Deferred(until): `until > p.at`, lawful at `until`, unlawful at every probed instant of
   [p.at, until) - every minute (every 7 minutes after two days), every instant at which
   some rule can change its mind, and the instant just before `until`;
4. Blocked: unlawful at `p.at` and at every probed instant of the next 14 days.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache, partial
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holiday_tables
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from duecourse.domain import compliance
from duecourse.domain.compliance import (
    AttemptResult,
    ProposedContact,
    Purpose,
    RecipientKind,
    decide,
    pack_for,
    violations,
)
from duecourse.domain.compliance.engine import Context
from duecourse.domain.compliance.packs import CallWindow
from duecourse.domain.policy import Channel, ContactHours
from tests.support.compliance import (
    DEBTOR_PHONE,
    GUARANTOR_PHONE,
    NEW_YORK,
    context,
    guarantor_call,
    to_guarantor,
    voice_call,
)
from tests.support.compliance import local as wall_clock

R = AttemptResult
DEBTOR, GUARANTOR, THIRD = (RecipientKind.DEBTOR, RecipientKind.GUARANTOR,
                            RecipientKind.THIRD_PARTY)
MINUTE, DAY, EPS = timedelta(minutes=1), timedelta(days=1), timedelta(microseconds=1)

DEBTOR_MOBILE = "+12125550101"
DEBTOR_EMAIL, WORK_EMAIL = "debtor@example.com", "debtor@employer.example"
GUARANTOR_MOBILE, GUARANTOR_NAME = "+12125550198", "guarantor"
AUNT_PHONE, AUNT_MOBILE, NEIGHBOUR = "+12125550142", "+12125550143", "+12125550177"

ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "America/St_Johns",
         "Asia/Shanghai", "America/Los_Angeles"]
NEAR = [date(2026, 3, 8), date(2026, 3, 29), date(2026, 10, 25), date(2026, 11, 1),
        date(2026, 4, 5), date(2026, 10, 4),  # Lord Howe's half-hour changes
        date(2026, 12, 25), date(2026, 7, 3), date(2026, 1, 1), date(2026, 10, 1),
        date(2026, 5, 25), date(2026, 11, 26)]
"""DST changes of the sampled zones and public holidays of the sampled regions."""


# ====================================================================== the oracle
def _local(t: datetime, tz: str) -> datetime:
    return t.astimezone(ZoneInfo(tz))


@lru_cache(maxsize=65536)
def _day(t: datetime, tz: str) -> date:
    """The borrower-local calendar day of instant `t`."""
    return t.astimezone(ZoneInfo(tz)).date()


@lru_cache(maxsize=256)
def _holiday_set(region: str, year: int) -> frozenset[date]:
    country, _, sub = region.partition("-")
    return frozenset(holiday_tables.country_holidays(country, subdiv=sub or None,
                                                     years=year))


def _within(clock: time, hours: ContactHours) -> bool:
    """`clock` lies in the contact hours: from `start`, and before `end` - or at `end`
    itself when the law only forbids what comes after it (Reg F: "after 9:00 p.m.")."""
    if hours.end_inclusive and clock == hours.end:
        return True
    if hours.start < hours.end:
        return hours.start <= clock < hours.end
    return clock >= hours.start or clock < hours.end


def _inconvenient(local: datetime, w: compliance.InconvenientTime) -> bool:
    """The borrower's wall clock shows a time inside a window they named (a window past
    midnight belongs to the weekday it starts on)."""
    clock, weekday = local.time(), local.weekday()
    if w.start < w.end:
        return weekday in w.weekdays and w.start <= clock < w.end
    yesterday = (weekday - 1) % 7
    return (weekday in w.weekdays and clock >= w.start) or (
        yesterday in w.weekdays and clock < w.end)


def _debtor_unreachable(ctx: Context) -> bool:
    """The latest N calls and texts to the debtor all failed or went unanswered."""
    n = ctx.pack.unreachable_after_failed_attempts
    tries = sorted((e for e in ctx.history if e.recipient_kind is DEBTOR
                    and e.channel in (Channel.VOICE, Channel.SMS)), key=lambda e: e.at)
    return len(tries) >= n and all(e.result in (R.FAILED, R.UNANSWERED) for e in tries[-n:])


def _validation_period_last_day(ctx: Context) -> date | None:
    """1006.34(b)(5): receipt is assumed 5 business days (no weekends, no US federal
    holidays) after sending; the period runs 30 days after receipt, to the end of that
    day. None: the notice has not been sent, the period has not even begun."""
    s, pack = ctx.standing, ctx.pack
    if s.validation_notice_at is None or pack.validation_period is None:
        return None
    country = ctx.region.partition("-")[0]
    day, left = _day(s.validation_notice_at, ctx.timezone), pack.validation_receipt_business_days
    while left:
        day += DAY
        if day.weekday() < 5 and day not in _holiday_set(country, day.year):
            left -= 1
    return day + pack.validation_period


def _dispute_freezes(ctx: Context) -> bool:
    s, pack = ctx.standing, ctx.pack
    if not pack.dispute_freezes_collection or s.dispute_opened_at is None:
        return False
    if s.dispute_verified_at is not None and s.dispute_verified_at >= s.dispute_opened_at:
        return False  # verification was sent for this dispute
    if not pack.dispute_freezes_only_written_in_validation_period:
        return True
    if not s.dispute_written:
        return False  # 1006.38(d)(2): only a written dispute
    last = _validation_period_last_day(ctx)
    return last is None or _day(s.dispute_opened_at, ctx.timezone) <= last


def _time_barred(ctx: Context, t: datetime) -> bool:
    period = ctx.pack.limitation_for(ctx.region)
    if period is None or ctx.due_date is None:
        return False
    return _day(t, ctx.timezone) >= ctx.due_date + period


def _at_or_before(moment: datetime | None, t: datetime) -> bool:
    return moment is not None and moment <= t


def breaches(p: ProposedContact, ctx: Context) -> Iterator[str]:
    """The law's rules `p` breaks at `p.at`, as the oracle reads them (lazily)."""
    pack, s, t, tz = ctx.pack, ctx.standing, p.at, ctx.timezone
    third = p.recipient_kind is THIRD
    # ---- facts that stop contact whatever the time
    if _at_or_before(s.deceased_at, t):
        yield "deceased"
    if _at_or_before(s.bankruptcy_at, t):
        yield "bankruptcy"
    if p.purpose is not Purpose.VALIDATION_NOTICE and _dispute_freezes(ctx):
        yield "dispute"
    if pack.cease_communication_stops_contact and _at_or_before(s.cease_communication_at, t):
        yield "cease"
    if pack.attorney_stops_contact and _at_or_before(s.attorney_at, t):
        yield "attorney"
    if _at_or_before(s.opted_out.get(p.channel), t):
        yield "opted_out"
    if third:
        if p.address in s.refused_third_parties or any(
                _same(e, p) and e.result is R.REFUSED and e.at <= t for e in ctx.history):
            yield "third_party_refused"  # "stop when they refuse": the person refused
        if p.discloses_debt:
            yield "disclosure"
        if pack.third_party_purposes is not None and p.purpose not in pack.third_party_purposes:
            yield "third_party"  # 1006.10(b): location only
        if pack.third_party_only_when_unreachable and not _debtor_unreachable(ctx):
            yield "third_party"  # only when the debtor is unreachable
        cap = pack.third_party_contacts_per_person
        if cap is not None and p.who not in s.recontact_invited and sum(
                _same(e, p) and e.at <= t and not e.inbound
                and e.result in (R.SENT, R.ANSWERED, R.REFUSED) for e in ctx.history) >= cap:
            yield "third_party_once"
    if p.channel is Channel.VISIT and pack.min_visit_collectors and \
            p.collectors < pack.min_visit_collectors:
        yield "visit_collectors"
    if pack.honour_workplace_prohibition and p.at_workplace and \
            _at_or_before(s.workplace_contact_prohibited_at, t):
        yield "workplace"
    if pack.no_email_to_employer_address and p.channel is Channel.EMAIL and \
            p.address in s.employer_provided:
        yield "employer_email"
    if pack.electronic_notice_needs_consent and p.purpose is Purpose.VALIDATION_NOTICE and \
            p.channel in (Channel.EMAIL, Channel.SMS):
        if not _at_or_before(s.esign_consent_at, t):
            yield "esign_consent"
        if any(e.channel is p.channel and e.address == p.address and e.result is R.FAILED
               and e.at <= t for e in ctx.history):
            yield "undeliverable"
    if pack.collection_waits_for_validation_notice and \
            p.purpose in (Purpose.COLLECTION, Purpose.DEMAND) and \
            p.recipient_kind is DEBTOR and not _at_or_before(s.validation_notice_at, t):
        yield "validation_notice"
    if p.purpose is Purpose.DEMAND and _time_barred(ctx, t):
        yield "time_barred"
    # ---- holds
    if any(h.start <= t and (h.end is None or t < h.end) for h in s.holds):
        yield "hold"
    # ---- the clock (a letter is not delivered at a time of day)
    if p.channel is not Channel.LETTER:
        zones = [tz, *ctx.other_zones] if pack.hours_in_every_possible_zone else [tz]
        for name, hours in (("hours", pack.contact_hours), ("policy_hours", ctx.policy_hours)):
            if hours is not None and not all(_within(_local(t, z).time(), hours)
                                             for z in zones):
                yield name
        local = _local(t, tz)
        if pack.honour_inconvenient_times and any(_inconvenient(local, w)
                                                  for w in s.inconvenient):
            yield "inconvenient"
        if pack.no_contact_on_public_holidays and \
                local.date() in _holiday_set(ctx.region, local.year):
            yield "holiday"
    # ---- how often a person (or a number) may be called
    if p.channel is Channel.VOICE:
        yield from _call_limits(p, ctx)


def _same(e: compliance.ContactEvent, p: ProposedContact) -> bool:
    """One person: the debtor always; anyone else by the name both carry, else (one
    of them unnamed) by the number they were reached on."""
    if e.recipient_kind != p.recipient_kind:
        return False
    if p.recipient_kind is DEBTOR:
        return True
    return e.person == p.person if e.person and p.person else e.address == p.address


def _call_limits(p: ProposedContact, ctx: Context) -> Iterator[str]:
    pack, t, tz = ctx.pack, p.at, ctx.timezone
    today = _day(t, tz)
    talks = [e for e in ctx.history if e.channel is Channel.VOICE and _same(e, p)
             and e.at <= t]  # a conversation is one whoever called
    calls = [e for e in talks if not e.inbound]  # only the calls we placed count
    consecutive = pack.call_window is CallWindow.CONSECUTIVE_DAYS
    if pack.max_answered_calls_per_day is not None and sum(
            e.result is R.ANSWERED and _day(e.at, tz) == today for e in calls) >= \
            pack.max_answered_calls_per_day:
        yield "answered_calls"  # GB/T 45251: 3 effective calls a day per person
    if pack.max_unanswered_attempts_per_number_per_day is not None and sum(
            e.channel is Channel.VOICE and e.address == p.address and e.at <= t
            and not e.inbound and e.result is not R.ANSWERED and _day(e.at, tz) == today
            for e in ctx.history) >= pack.max_unanswered_attempts_per_number_per_day:
        yield "unanswered_attempts"  # 6 unanswered attempts a day per number
    if pack.max_call_attempts is not None:
        period = pack.call_attempt_period
        counted = [e for e in calls if pack.count_unconnected_calls or e.result is not R.FAILED]
        if consecutive:  # this local day and the N-1 before it
            n = sum((today - _day(e.at, tz)).days < period.days for e in counted)
        else:
            n = sum(e.at > t - period for e in counted)
        if n >= pack.max_call_attempts:  # this call would be one more than the limit
            yield "call_frequency"
    quiet = pack.quiet_after_conversation
    if quiet is not None:
        for e in talks:
            if e.result is R.ANSWERED and (
                    (today - _day(e.at, tz)).days < quiet.days if consecutive
                    else t < e.at + quiet):
                yield "after_conversation"  # within 7 consecutive days after it
                break


def lawful(p: ProposedContact, ctx: Context) -> bool:
    return next(breaches(p, ctx), None) is None


def _at(p: ProposedContact, t: datetime) -> ProposedContact:
    return p.model_copy(update={"at": t})


def _lawful_at(p: ProposedContact, ctx: Context, t: datetime) -> bool:
    return lawful(_at(p, t), ctx)


def _why(p: ProposedContact, ctx: Context, t: datetime) -> str:
    at = _at(p, t)
    return (f"at {_local(t, ctx.timezone).isoformat()} ({t.isoformat()}): oracle "
            f"{list(breaches(at, ctx)) or 'lawful'}, engine "
            f"{[v.code for v in violations(at, ctx)] or 'lawful'}")


# ====================================================================== probing
def _edges(p: ProposedContact, ctx: Context, lo: datetime, hi: datetime) -> set[datetime]:
    """Every instant in [lo, hi) at which some rule may change its mind: the wall-clock
    times the rules name (both readings of a repeated hour), local midnights, hold bounds,
    and the ends of rolling windows. A lawful stretch always begins at one of them."""
    pack, s = ctx.pack, ctx.standing
    clocks = {time(0)}
    for hours in (pack.contact_hours, ctx.policy_hours):
        if hours is not None:
            clocks |= {hours.start, hours.end}
    for w in s.inconvenient:
        clocks |= {w.start, w.end}
    out: set[datetime] = set()
    for tz in {ctx.timezone, *ctx.other_zones}:
        zi = ZoneInfo(tz)
        day, last = lo.astimezone(zi).date() - DAY, hi.astimezone(zi).date() + DAY
        while day <= last:
            for clock in clocks:
                for fold in (0, 1):
                    out.add(datetime.combine(day, clock, tzinfo=zi).replace(
                        fold=fold).astimezone(UTC))
            day += DAY
        out.update(_transitions(zi, lo, hi))
    out.update(b for h in s.holds for b in (h.start, h.end) if b is not None)
    for e in ctx.history:
        out.update((e.at + pack.call_attempt_period, e.at + (
            pack.quiet_after_conversation or DAY)))
    return {x for x in out if lo <= x < hi}


def _transitions(zi: ZoneInfo, lo: datetime, hi: datetime) -> Iterator[datetime]:
    """The instants in [lo, hi] at which `zi` changes its offset (a wall-clock time in
    the skipped hour is first shown at the change itself), to the second."""
    step, t = timedelta(hours=6), lo
    while t < hi:
        a, b = t, min(t + step, hi)
        if a.astimezone(zi).utcoffset() != b.astimezone(zi).utcoffset():
            while b - a > timedelta(seconds=1):
                mid = a + (b - a) / 2
                if mid.astimezone(zi).utcoffset() == a.astimezone(zi).utcoffset():
                    a = mid
                else:
                    b = mid
            whole = b.replace(microsecond=0)  # b is in (change, change + 1 s]
            yield from (whole - timedelta(seconds=1), whole)
        t += step


def _probes(p: ProposedContact, ctx: Context, lo: datetime, hi: datetime,
            fine: timedelta) -> list[datetime]:
    """[lo, hi): every minute up to lo + fine, every 7 minutes after, and the edges."""
    out, t = _edges(p, ctx, lo, hi), lo
    while t < hi:
        out.add(t)
        t += MINUTE if t - lo < fine else 7 * MINUTE
    return sorted(out)


# ====================================================================== the promise
def check_promise(p: ProposedContact, ctx: Context) -> compliance.Decision:
    """Properties 2-4 for one proposal; returns the decision."""
    decision = decide(p, ctx)
    now_lawful = lawful(p, ctx)
    if decision.verdict is compliance.Verdict.ALLOWED:
        assert now_lawful, f"Allowed but unlawful: {_why(p, ctx, p.at)}"
        end = decision.valid_until
        assert end is not None and end > p.at, decision
        end = min(end, p.at + timedelta(minutes=60))
        for t in [*_probes(p, ctx, p.at, end, fine=end - p.at), end - EPS]:
            assert _lawful_at(p, ctx, t), (
                f"Allowed until {decision.valid_until}, but {_why(p, ctx, t)}")
    elif decision.verdict is compliance.Verdict.DEFERRED:
        until = decision.until
        assert until is not None and until > p.at, decision
        assert not now_lawful, f"Deferred to {until} but lawful now: {_why(p, ctx, p.at)}"
        assert _lawful_at(p, ctx, until), f"Deferred to {until}, {_why(p, ctx, until)}"
        assert decide(_at(p, until), ctx).allowed, "deciding again at `until` must allow"
        for t in [*_probes(p, ctx, p.at, until, fine=2 * DAY), until - EPS]:
            assert not _lawful_at(p, ctx, t), (
                f"Deferred to {_local(until, ctx.timezone).isoformat()}, but lawful "
                f"earlier {_why(p, ctx, t)}")
    else:
        assert decision.verdict is compliance.Verdict.BLOCKED
        assert not now_lawful, f"Blocked ({decision.code}) but {_why(p, ctx, p.at)}"
        for t in _probes(p, ctx, p.at, p.at + 14 * DAY, fine=timedelta(0)):
            assert not _lawful_at(p, ctx, t), (
                f"Blocked ({decision.code}: {decision.detail}), but {_why(p, ctx, t)}")
    return decision


# ====================================================================== scenarios
class Scenario:
    """(proposal, context), shown compactly when Hypothesis reports a failing case."""

    def __init__(self, p: ProposedContact, ctx: Context) -> None:
        self.p, self.ctx = p, ctx

    def __iter__(self) -> Iterator[Any]:
        return iter((self.p, self.ctx))

    def __repr__(self) -> str:
        return describe(self.p, self.ctx)


def describe(p: ProposedContact, ctx: Context) -> str:
    tz, pack = ctx.timezone, ctx.pack

    def at(t: datetime | None) -> str:
        return "None" if t is None else _local(t, tz).strftime("%a %Y-%m-%d %H:%M:%S.%f%z")

    law = pack_for(ctx.region).model_dump()
    overrides = {k: v for k, v in pack.model_dump().items() if v != law[k]}
    lines = [f"pack {ctx.region} overrides={overrides} tz={tz} other_zones={ctx.other_zones}"
             f" policy_hours={ctx.policy_hours} due_date={ctx.due_date}",
             f"proposal {p.channel} to {p.recipient_kind} {p.who!r} at {p.address} "
             f"{p.purpose} at={at(p.at)} discloses={p.discloses_debt} "
             f"collectors={p.collectors} workplace={p.at_workplace}"]
    for name, value in ctx.standing:
        if value not in (None, [], {}, False):
            shown = at(value) if isinstance(value, datetime) else value
            if isinstance(value, dict):
                shown = {k: at(v) for k, v in value.items()}
            if isinstance(value, list) and value and isinstance(value[0], compliance.Hold):
                shown = [f"{h.kind} {at(h.start)} .. {at(h.end)}" for h in value]
            lines.append(f"standing.{name} = {shown}")
    lines += [f"  {at(e.at)} {e.channel} {e.recipient_kind} {e.who!r} {e.address} "
              f"{e.purpose} {e.result}" for e in ctx.history]
    return "Scenario:\n    " + "\n    ".join(lines)


RESULTS = st.sampled_from(list(AttemptResult))
CLOCKS = st.one_of(
    st.sampled_from([time(8), time(21), time(21), time(21), time(21, 0, 30), time(20, 59, 59),
                     time(7, 59), time(22), time(21, 59), time(18, 9), time(21, 4), time(12)]),
    st.times())
WINDOW_BOUNDS = [time(7), time(9), time(12), time(13, 30), time(18), time(19), time(20, 30),
                 time(21), time(22), time(6), time(1, 30), time(8, 30)]
POLICY_HOURS = [ContactHours(start=time(9), end=time(20)),
                ContactHours(start=time(8, 30), end=time(21), end_inclusive=True),
                ContactHours(start=time(10), end=time(18)),
                ContactHours(start=time(20), end=time(9))]  # wraps midnight


@st.composite
def _local_instant(draw: st.DrawFn, tz: str) -> datetime:
    day = draw(st.one_of(
        st.builds(lambda d, k: d + timedelta(days=k), st.sampled_from(NEAR),
                  st.integers(-3, 3)),
        st.dates(date(2026, 1, 1), date(2027, 11, 30))))
    moment = datetime.combine(day, draw(CLOCKS), tzinfo=ZoneInfo(tz))
    return moment.replace(fold=draw(st.integers(0, 1))).astimezone(UTC)


def _overrides(draw: st.DrawFn, country: str) -> dict[str, Any]:
    rng = draw(st.randoms(use_true_random=False))
    pick = lambda p: rng.random() * 100 >= 100 - p  # noqa: E731
    out: dict[str, Any] = {}
    if pick(15):
        out["call_window"] = "rolling"
    if pick(15):
        out["count_unconnected_calls"] = True
    if pick(25):
        out["no_contact_on_public_holidays"] = True
    if pick(15):
        out["collection_waits_for_validation_notice"] = True
    if pick(10):
        out["unreachable_after_failed_attempts"] = draw(st.sampled_from([2, 4]))
    if country == "US":
        if pick(15):
            out["dispute_freezes_only_written_in_validation_period"] = False
        if pick(10):
            out["max_call_attempts"] = 5
    else:
        if pick(10):
            out["hours_in_every_possible_zone"] = True
        if country == "GB" and pick(15):
            out["max_call_attempts"] = 7
            out["quiet_after_conversation"] = timedelta(days=draw(st.sampled_from([2, 7])))
        if country == "GB" and pick(10):
            out["third_party_contacts_per_person"] = 1
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    country = draw(st.sampled_from(["CN", "US", "US", "GB"]))
    region = draw(st.sampled_from(["US-NY", "US-CA", "US-TX", "US-FL", "US-IL"])) \
        if country == "US" else country
    pack = pack_for(region, {country: _overrides(draw, country)})
    tz = draw(st.sampled_from(ZONES))
    other_zones = tuple(draw(st.lists(st.sampled_from(ZONES), max_size=2, unique=True))) \
        if draw(st.integers(0, 9)) < 3 else ()
    now = draw(_local_instant(tz))
    rng = draw(st.randoms(use_true_random=False))
    chance = lambda p: rng.random() * 100 >= 100 - p  # noqa: E731

    # ---- who is who (a guarantor and the aunt have two numbers, one person)
    named_guarantor = draw(st.booleans())
    g_person = "guarantor" if named_guarantor else ""
    g_numbers = [GUARANTOR_PHONE, GUARANTOR_MOBILE] if named_guarantor else [GUARANTOR_PHONE]
    people: dict[str, tuple[RecipientKind, list[str], str]] = {
        "debtor": (DEBTOR, [DEBTOR_PHONE, DEBTOR_MOBILE], ""),
        "guarantor": (GUARANTOR, g_numbers, g_person),
        "aunt": (THIRD, [AUNT_PHONE, AUNT_MOBILE], "aunt"),
        "neighbour": (THIRD, [NEIGHBOUR], ""),
    }
    target = draw(st.sampled_from(["debtor", "debtor", "debtor", "guarantor", "guarantor",
                                   "aunt", "neighbour"]))
    kind, numbers, person = people[target]

    # ---- the proposal
    channels = [Channel.VOICE] * 5 + [Channel.SMS, Channel.EMAIL, Channel.LETTER,
                                      Channel.VISIT]
    channel = draw(st.sampled_from(channels))
    if channel is Channel.EMAIL:
        address = draw(st.sampled_from([DEBTOR_EMAIL, WORK_EMAIL])) if kind is DEBTOR \
            else f"{target}@example.com"
    else:
        address = draw(st.sampled_from(numbers))
    if kind is THIRD:
        purpose = draw(st.sampled_from([Purpose.LOCATION, Purpose.LOCATION, Purpose.MESSAGE,
                                        Purpose.COLLECTION]))
    elif kind is GUARANTOR:
        purpose = draw(st.sampled_from([Purpose.COLLECTION, Purpose.DEMAND]))
    else:
        purpose = draw(st.sampled_from([Purpose.COLLECTION, Purpose.COLLECTION,
                                        Purpose.VALIDATION_NOTICE, Purpose.DEMAND,
                                        Purpose.FORBEARANCE_OFFER]))
    proposal = ProposedContact(
        channel=channel, at=now, address=address, recipient_kind=kind, purpose=purpose,
        person=person, collectors=draw(st.integers(1, 3)),
        discloses_debt=chance(10) if kind is THIRD else True, at_workplace=chance(20))

    # ---- the history
    events: list[compliance.ContactEvent] = []

    def add(ago: timedelta, who: str, result: AttemptResult, ch: Channel = Channel.VOICE,
            addr: str | None = None, why: Purpose = Purpose.COLLECTION) -> None:
        k, nums, pers = people[who]
        pers = "" if chance(20) else pers  # an agent who did not name them this time
        inbound = ch is Channel.VOICE and result is R.ANSWERED and chance(30)  # they called
        events.append(compliance.ContactEvent(
            at=now - ago, channel=ch, address=addr or draw(st.sampled_from(nums)),
            recipient_kind=k, purpose=Purpose.LOCATION if k is THIRD else why,
            result=result, person=pers, inbound=inbound))

    ago = st.builds(lambda s: timedelta(seconds=s), st.integers(0, 12 * 86400))
    for _ in range(draw(st.integers(0, 8))):  # background noise
        add(draw(ago), draw(st.sampled_from(list(people))), draw(RESULTS),
            draw(st.sampled_from([Channel.VOICE, Channel.VOICE, Channel.SMS, Channel.EMAIL])))
    if chance(50):  # a burst of calls to the person proposed: near the 7-in-7 limit
        for _ in range(draw(st.integers(6, 10))):
            add(timedelta(seconds=draw(st.integers(0, 7 * 86400))), target,
                draw(st.sampled_from([R.UNANSWERED, R.UNANSWERED, R.UNANSWERED, R.SENT,
                                      R.SENT, R.FAILED])))
    if chance(45):  # a conversation with them 0-9 days ago, often late in the evening
        days, clock = draw(st.integers(0, 9)), draw(CLOCKS)
        talked = datetime.combine(_local(now, tz).date() - timedelta(days=days), clock,
                                  tzinfo=ZoneInfo(tz)).astimezone(UTC)
        if talked <= now:
            add(now - talked, target, R.ANSWERED)
    if country == "CN" and chance(40):  # today's calls: near 3 answered / 6 unanswered
        midnight = datetime.combine(_local(now, tz).date(), time(0), tzinfo=ZoneInfo(tz))
        since = max(0, int((now - midnight.astimezone(UTC)).total_seconds()))
        for _ in range(draw(st.integers(2, 7))):
            add(timedelta(seconds=draw(st.integers(0, since))), target,
                draw(st.sampled_from([R.ANSWERED, R.UNANSWERED, R.FAILED, R.SENT])),
                addr=address if channel is Channel.VOICE else None)
    if kind is THIRD and chance(40):  # an earlier location contact with this third party
        add(timedelta(days=draw(st.integers(0, 20)), seconds=draw(st.integers(0, 86399))),
            target, draw(st.sampled_from([R.SENT, R.ANSWERED, R.UNANSWERED, R.REFUSED,
                                          R.REFUSED])),
            draw(st.sampled_from([Channel.VOICE, Channel.SMS])))
    if chance(15):  # a notice to this address bounced
        add(draw(ago), "debtor", R.FAILED, draw(st.sampled_from([Channel.EMAIL, Channel.SMS])),
            addr=address)
    events.sort(key=lambda e: e.at)
    if chance(70 if kind is THIRD else 30):  # the debtor cannot be reached
        attempts = [i for i, e in enumerate(events) if e.recipient_kind is DEBTOR
                    and e.channel in (Channel.VOICE, Channel.SMS)]
        for i in attempts[-pack.unreachable_after_failed_attempts:]:
            events[i] = events[i].model_copy(update={
                "result": draw(st.sampled_from([R.FAILED, R.UNANSWERED]))})
        for i in range(pack.unreachable_after_failed_attempts - len(attempts)):
            add(timedelta(days=13, minutes=i), "debtor", R.FAILED)
        events.sort(key=lambda e: e.at)

    # ---- the standing
    def past(max_days: int) -> datetime:
        return now - timedelta(seconds=draw(st.integers(0, max_days * 86400)))

    holds = []
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        start = now + timedelta(minutes=draw(st.integers(-3 * 1440, 2 * 1440)) if chance(70)
                                else draw(st.integers(1, 90)))
        end = None if chance(10) else start + timedelta(minutes=draw(st.integers(30, 14400)))
        hold_kind = draw(st.sampled_from(list(compliance.HoldKind)))
        holds.append(compliance.Hold(kind=hold_kind, start=start, end=end))
    windows = []
    for _ in range(draw(st.integers(1, 2)) if chance(40) else 0):
        start = draw(st.sampled_from(WINDOW_BOUNDS))
        windows.append(compliance.InconvenientTime(
            start=start, end=draw(st.sampled_from([b for b in WINDOW_BOUNDS if b != start])),
            weekdays=draw(st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True))))
    notice = past(60) if chance(70) else None
    if notice is not None and chance(30):  # the validation period ends about now
        notice = min(now, now - timedelta(days=draw(st.integers(35, 42)), hours=draw(
            st.integers(0, 23))))
    dispute = verified = None
    if chance(25):
        dispute = past(70)
        last = _validation_period_last_day(Context(pack=pack, standing=compliance.Standing(
            validation_notice_at=notice), history=[], timezone=tz, region=region))
        if last is not None and chance(70):  # around the end of the validation period
            dispute = min(now, datetime.combine(last + DAY, time(0), tzinfo=ZoneInfo(
                tz)).astimezone(UTC) + timedelta(minutes=draw(st.integers(-2880, 2880))))
        if chance(30):
            verified = dispute + timedelta(hours=draw(st.integers(-240, 240)))
    refused = [e.address for e in events if e.recipient_kind is THIRD
               and e.result is R.REFUSED]
    if kind is THIRD and chance(10):
        refused.append(address)
    standing = compliance.Standing(
        opted_out={c: past(30) for c in draw(st.lists(st.sampled_from(
            [Channel.SMS, Channel.EMAIL, Channel.VOICE]), max_size=2, unique=True))}
        if chance(20) else {},
        inconvenient=windows, holds=holds,
        cease_communication_at=past(30) if chance(1) else None,
        attorney_at=past(30) if chance(1) else None,
        bankruptcy_at=past(30) if chance(1) else None,
        deceased_at=past(30) if chance(1) else None,
        dispute_opened_at=dispute, dispute_written=draw(st.booleans()),
        dispute_verified_at=min(verified, now) if verified is not None else None,
        refused_third_parties=refused,
        recontact_invited=[proposal.who] if kind is THIRD and chance(15) else [],
        validation_notice_at=notice,
        esign_consent_at=past(90) if chance(50) else None,
        workplace_contact_prohibited_at=past(90) if chance(20) else None,
        employer_provided=[WORK_EMAIL] if chance(40) else [])

    period = pack.limitation_for(region)
    due = None
    if period is not None and chance(50):  # sometimes a debt about to be time-barred
        due = _local(now, tz).date() - period + timedelta(days=draw(st.integers(-3, 3)))
    elif chance(50):
        due = draw(st.dates(date(2019, 1, 1), date(2026, 6, 1)))
    return Scenario(proposal, Context(
        pack=pack, standing=standing, history=events, timezone=tz, region=region,
        policy_hours=draw(st.sampled_from(POLICY_HOURS)) if chance(20) else None,
        due_date=due, other_zones=other_zones))


# ====================================================================== properties
def _us(history: list[compliance.ContactEvent], **standing: Any) -> Context:
    standing.setdefault("validation_notice_at", _ny(2026, 10, 1, 9, 0))
    return context("US-NY", "America/New_York", history, due_date=date(2026, 9, 1),
                   **standing)


_ny = partial(wall_clock, NEW_YORK)
_UNREACHABLE = [voice_call(_ny(2026, 11, 1, 10, h), R.FAILED) for h in (1, 2, 3)]
_LOCATION_CALL = ProposedContact(channel=Channel.VOICE, at=_ny(2026, 11, 11, 10, 0),
                                 address=NEIGHBOUR, recipient_kind=THIRD,
                                 purpose=Purpose.LOCATION, discloses_debt=False)
EXAMPLES = [
    # the guarantor answered on Monday 21:04; Tuesday 18:09 waits for next Monday 08:00
    (to_guarantor(_ny(2026, 11, 3, 18, 9), person=GUARANTOR_NAME),
     _us([guarantor_call(_ny(2026, 11, 2, 21, 4), R.ANSWERED, person=GUARANTOR_NAME)])),
    # the 8th call to a guarantor within 7 consecutive days, on their other number
    (to_guarantor(_ny(2026, 11, 9, 10, 0), GUARANTOR_MOBILE, GUARANTOR_NAME),
     _us([guarantor_call(_ny(2026, 11, 3 + d, 9 + d % 2, 0), person=GUARANTOR_NAME)
          for d in range(7)])),
    # a second location call to the same US third party, 9 days after the first
    (_LOCATION_CALL, _us([*_UNREACHABLE, voice_call(_ny(2026, 11, 2, 10, 0), R.SENT,
                                                    NEIGHBOUR, THIRD, purpose=Purpose.LOCATION)])),
    # US: 21:00:00 itself is not "after 9:00 p.m."; 21:00:30 is
    (ProposedContact(channel=Channel.SMS, at=_ny(2026, 11, 10, 21, 0),
                     address=DEBTOR_PHONE), _us([])),
    (ProposedContact(channel=Channel.SMS, at=_ny(2026, 11, 10, 21, 0, 30),
                     address=DEBTOR_PHONE), _us([])),
]
"""The cases named in the brief, also run as explicit examples of both properties."""

ZONES_MEET_AFTER_DST, REFUSED_ON_OTHER_NUMBER = [
    # every zone the consumer may be in: Lord Howe's, New York's and London's hours first
    # meet on 2026-10-25 at 21:00 UTC, once London has left summer time
    (ProposedContact(channel=Channel.SMS, at=datetime(2026, 10, 12, 10, 0, tzinfo=UTC),
                     address=DEBTOR_PHONE),
     context("US-NY", "Australia/Lord_Howe", other_zones=("America/New_York", "Europe/London"),
             validation_notice_at=datetime(2026, 10, 1, tzinfo=UTC))),
    # CN: the aunt refused on her mobile; she is not called again on her other number
    (ProposedContact(channel=Channel.VOICE, at=datetime(2026, 11, 3, 2, 0, tzinfo=UTC),
                     address=AUNT_PHONE, recipient_kind=THIRD, person="aunt",
                     purpose=Purpose.LOCATION, discloses_debt=False),
     context("CN", "Asia/Shanghai",
             [*(voice_call(datetime(2026, 11, 2, h, tzinfo=UTC), R.FAILED) for h in (2, 3, 4)),
              voice_call(datetime(2026, 11, 2, 6, tzinfo=UTC), R.REFUSED, AUNT_MOBILE, THIRD,
                         purpose=Purpose.LOCATION, person="aunt")],
             refused_third_parties=[AUNT_MOBILE])),
]

PROPERTY_SETTINGS = settings(max_examples=500, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])


def over_scenarios(test: Any) -> Any:
    """A property over random scenarios, the named EXAMPLES always among them."""
    test = given(scenarios())(test)
    for scenario in EXAMPLES:
        test = example(scenario)(test)
    return PROPERTY_SETTINGS(test)


@over_scenarios
def test_violations_agree_with_the_oracle(scenario: Scenario) -> None:
    p, ctx = scenario
    note(describe(p, ctx))
    assert (violations(p, ctx) == []) == lawful(p, ctx), _why(p, ctx, p.at)
    # rule by rule, too: each rule's verdict shows even where another rule also forbids
    assert {v.code for v in violations(p, ctx)} == set(breaches(p, ctx)), _why(p, ctx, p.at)


@over_scenarios
def test_decisions_keep_the_engine_promise(scenario: Scenario) -> None:
    p, ctx = scenario
    note(describe(p, ctx))
    decision = check_promise(p, ctx)
    event(f"{decision.verdict}: {'+'.join(sorted(set(breaches(p, ctx)))) or 'lawful'}")


# ====================================================================== the cases by name
def test_guarantor_conversation_defers_a_call_to_the_eighth_local_day() -> None:
    p, ctx = EXAMPLES[0]
    decision = check_promise(p, ctx)
    assert decision.verdict is compliance.Verdict.DEFERRED, decision
    assert decision.until == _ny(2026, 11, 9, 8, 0), decision


def test_eighth_call_to_a_guarantor_within_seven_days_is_not_allowed() -> None:
    p, ctx = EXAMPLES[1]
    assert not lawful(p, ctx)
    decision = check_promise(p, ctx)
    assert not decision.allowed, decision
    assert "call_frequency" in [v.code for v in violations(p, ctx)]


def test_second_location_call_to_the_same_us_third_party_is_blocked() -> None:
    p, ctx = EXAMPLES[2]
    decision = check_promise(p, ctx)
    assert decision.verdict is compliance.Verdict.BLOCKED, decision
    assert lawful(p, _us(_UNREACHABLE)), "the first location call is lawful"


def test_us_nine_pm_exactly_is_allowed_half_a_minute_later_is_not() -> None:
    on_the_hour, later = EXAMPLES[3][0], EXAMPLES[4][0]
    ctx = EXAMPLES[3][1]
    assert lawful(on_the_hour, ctx) and not lawful(later, ctx)
    assert check_promise(on_the_hour, ctx).allowed
    deferred = check_promise(later, ctx)
    assert deferred.verdict is compliance.Verdict.DEFERRED
    assert deferred.until == _ny(2026, 11, 11, 8, 0)


def test_zones_whose_hours_meet_only_after_a_dst_change_defer_rather_than_block() -> None:
    """"No lawful moment exists" must hold for as long as the facts stay: the zones' hours
    may first meet weeks later, when one of them changes its clocks."""
    p, ctx = ZONES_MEET_AFTER_DST
    first = datetime(2026, 10, 25, 21, 0, tzinfo=UTC)
    assert lawful(_at(p, first), ctx) and not lawful(_at(p, first - EPS), ctx)
    decision = check_promise(p, ctx)
    assert decision.verdict is compliance.Verdict.DEFERRED and decision.until == first, decision


def test_a_third_party_who_refused_is_not_called_on_another_number() -> None:
    """"Stop when they refuse" (GB/T 45251): the person refused, not just the number."""
    p, ctx = REFUSED_ON_OTHER_NUMBER
    assert not lawful(p, ctx)
    decision = check_promise(p, ctx)
    assert decision.verdict is compliance.Verdict.BLOCKED, decision
