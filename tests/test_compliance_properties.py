"""Property tests of the compliance engine against an independent, naive oracle.

The oracle restates each rule as a plain predicate on one instant. Over random histories,
time zones (DST included), standings and times:
- an Allowed decision never breaks a rule of the pack;
- a Deferred time is lawful and is the earliest: every minute before it is unlawful
  (brute-force, minute by minute);
- `violations()` agrees with the oracle.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duecourse.domain.calendar import local_date, zone
from duecourse.domain.compliance import (
    AttemptResult,
    ContactEvent,
    Hold,
    HoldKind,
    InconvenientTime,
    ProposedContact,
    Standing,
    Verdict,
    decide,
    violations,
)
from duecourse.domain.compliance.engine import Context, _holidays
from duecourse.domain.compliance.packs import CN, GB, US, RulePack
from duecourse.domain.policy import Channel

NUMBER = "+8613800138000"
ZONES = ["Asia/Shanghai", "America/New_York", "America/Los_Angeles", "Europe/London",
         "Australia/Lord_Howe", "America/St_Johns"]


def lawful(p: ProposedContact, ctx: Context) -> bool:
    """A deliberately naive restatement of the time rules, independent of the engine."""
    pack, tz, t = ctx.pack, ctx.timezone, p.at
    local = t.astimezone(zone(tz))
    clock = local.time()
    if p.channel is not Channel.LETTER:
        hours = pack.contact_hours
        if hours is not None and not hours.start <= clock < hours.end:
            return False
        for w in ctx.standing.inconvenient:
            wraps = w.end <= w.start
            today_in = local.weekday() in w.weekdays and (
                (w.start <= clock < w.end) if not wraps else clock >= w.start)
            yesterday = (local.date() - timedelta(days=1)).weekday()
            carried = wraps and yesterday in w.weekdays and clock < w.end
            if today_in or carried:
                return False
        if pack.no_contact_on_public_holidays and local.date() in _holidays(
                ctx.region, local.date().year):
            return False
    for h in ctx.standing.holds:
        if h.start <= t and (h.end is None or t < h.end):
            return False
    if p.channel is Channel.VOICE:
        calls = [e for e in ctx.history if e.channel is Channel.VOICE]
        day = local.date()
        same_day = [e for e in calls if local_date(e.at, tz) == day]
        if pack.max_answered_calls_per_day is not None and sum(
                e.result is AttemptResult.ANSWERED for e in same_day) >= \
                pack.max_answered_calls_per_day:
            return False
        if pack.max_unanswered_attempts_per_number_per_day is not None and sum(
                e.result is not AttemptResult.ANSWERED and e.address == p.address
                for e in same_day) >= pack.max_unanswered_attempts_per_number_per_day:
            return False
        if pack.max_call_attempts is not None and sum(
                t - pack.call_attempt_period < e.at <= t for e in calls) >= \
                pack.max_call_attempts:
            return False
        if pack.quiet_after_conversation is not None and any(
                e.result is AttemptResult.ANSWERED and e.at <= t <
                e.at + pack.quiet_after_conversation for e in calls):
            return False
    return True


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ProposedContact, Context]:
    pack: RulePack = draw(st.sampled_from([CN, US, GB]))
    if draw(st.booleans()):
        pack = pack.model_copy(update={"no_contact_on_public_holidays": True})
    tz = draw(st.sampled_from(ZONES))
    now = draw(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1),
                            timezones=st.just(UTC)))
    offsets = draw(st.lists(st.integers(min_value=1, max_value=9 * 24 * 60), max_size=12))
    results = st.sampled_from([AttemptResult.SENT, AttemptResult.ANSWERED,
                               AttemptResult.UNANSWERED, AttemptResult.FAILED])
    history = sorted(
        (ContactEvent(at=now - timedelta(minutes=m), channel=draw(st.sampled_from(
            [Channel.VOICE, Channel.VOICE, Channel.SMS])), address=NUMBER,
            result=draw(results)) for m in offsets), key=lambda e: e.at)
    windows = draw(st.lists(st.builds(
        InconvenientTime, start=st.sampled_from([time(12), time(18), time(20, 30), time(7)]),
        end=st.sampled_from([time(13, 30), time(19), time(9), time(6)]),
        weekdays=st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True)),
        max_size=2).filter(lambda ws: all(w.start != w.end for w in ws)))
    holds = []
    if draw(st.booleans()):
        start = now - timedelta(hours=draw(st.integers(0, 48)))
        holds.append(Hold(kind=HoldKind.HARDSHIP, start=start,
                          end=start + timedelta(hours=draw(st.integers(1, 72)))))
    # a validation notice went out before the first contact (US), as the workflow ensures
    standing = Standing(inconvenient=windows, holds=holds,
                        validation_notice_at=now - timedelta(days=10))
    channel = draw(st.sampled_from([Channel.VOICE, Channel.VOICE, Channel.SMS,
                                    Channel.EMAIL, Channel.LETTER]))
    proposal = ProposedContact(channel=channel, at=now, address=NUMBER)
    region = {"CN": "CN", "US": "US-NY", "GB": "GB"}[pack.jurisdiction]
    return proposal, Context(pack=pack, standing=standing, history=history, timezone=tz,
                             region=region, due_date=date(2025, 12, 1))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_decisions_are_lawful_and_deferrals_are_earliest(
        scenario: tuple[ProposedContact, Context]) -> None:
    proposal, ctx = scenario
    decision = decide(proposal, ctx)
    assert (violations(proposal, ctx) == []) == lawful(proposal, ctx)
    if decision.verdict is Verdict.ALLOWED:
        assert lawful(proposal, ctx)
        return
    if decision.verdict is Verdict.BLOCKED:  # e.g. inconvenient times cover the whole day
        assert not lawful(proposal, ctx)
        for minute in range(0, 2 * 24 * 60, 7):
            at = proposal.at + timedelta(minutes=minute)
            assert not lawful(proposal.model_copy(update={"at": at}), ctx), at
        return
    assert decision.verdict is Verdict.DEFERRED, decision
    assert decision.until is not None and decision.until > proposal.at
    assert not lawful(proposal, ctx)
    at_until = proposal.model_copy(update={"at": decision.until})
    assert lawful(at_until, ctx), (decision, violations(at_until, ctx))
    probe = proposal.at
    while probe < decision.until:
        assert not lawful(proposal.model_copy(update={"at": probe}), ctx), (
            f"{probe} was lawful before the deferral to {decision.until}")
        probe += timedelta(minutes=1)
