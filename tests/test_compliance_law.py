"""The packs say what the law says: one test per finding of the independent audit
(issue 9), each stated in the regulation's own unit. Pure: no Temporal, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta

import pytest

from duecourse.domain.compliance import (
    AttemptResult,
    ContactEvent,
    InconvenientTime,
    ProposedContact,
    Purpose,
    RecipientKind,
    Verdict,
    decide,
    legal_action_problem,
    pack_for,
    violations,
)
from duecourse.domain.compliance.engine import Context
from duecourse.domain.compliance.packs import PACKS
from duecourse.domain.policy import Channel
from duecourse.templates import TemplateError, lint_templates, render
from tests.support.compliance import (
    DEBTOR_PHONE,
    GUARANTOR_PHONE,
    NEW_YORK,
    SHANGHAI,
    context,
    guarantor_call,
    local,
    to_guarantor,
    voice_call,
)

NEIGHBOUR = "+12125550142"


def us(history: list[ContactEvent] | None = None, overrides: dict | None = None,
       region: str = "US-NY", **standing: object) -> Context:
    standing.setdefault("validation_notice_at", local(NEW_YORK, 2026, 11, 1, 9, 0))
    return context(region, "America/New_York", history or [],
                   overrides={"US": overrides} if overrides else None,
                   due_date=date(2026, 10, 1), **standing)


def to_debtor(at: datetime, channel: Channel = Channel.VOICE, **fields: object
              ) -> ProposedContact:
    return ProposedContact(channel=channel, at=at, address=fields.pop(  # type: ignore[arg-type]
        "address", DEBTOR_PHONE), **fields)


# ------------------------------------------------------------------ per person (Reg F)
def test_us_guarantor_calls_count_per_person_after_a_conversation() -> None:
    """1006.14(b)(2)(i)(B): after the guarantor answered on Monday 21:04, Tuesday 18:09 is
    too soon; the first lawful moment is the Monday seven days later at 08:00."""
    talked = local(NEW_YORK, 2026, 11, 2, 21, 4)  # a Monday
    decision = decide(to_guarantor(local(NEW_YORK, 2026, 11, 3, 18, 9)),
                      us([guarantor_call(talked, AttemptResult.ANSWERED)]))
    assert decision.verdict is Verdict.DEFERRED and decision.code == "after_conversation"
    assert decision.until == local(NEW_YORK, 2026, 11, 9, 8, 0)
    assert decide(to_debtor(local(NEW_YORK, 2026, 11, 3, 18, 9)),
                  us([guarantor_call(talked, AttemptResult.ANSWERED)])).allowed, \
        "the guarantor's conversation does not limit calls to the debtor"


def test_us_eighth_call_to_a_guarantor_within_seven_days_is_not_allowed() -> None:
    start = local(NEW_YORK, 2026, 11, 2, 10, 0)
    calls = [guarantor_call(start + timedelta(days=d // 2, hours=3 * (d % 2)))
             for d in range(7)]
    decision = decide(to_guarantor(local(NEW_YORK, 2026, 11, 6, 12, 0)), us(calls))
    assert decision.verdict is Verdict.DEFERRED and decision.code == "call_frequency"
    # the 7th-latest call was on Monday 2nd: seven consecutive days later, Monday 9th
    assert decision.until == local(NEW_YORK, 2026, 11, 9, 8, 0)


def test_us_calls_that_never_connected_do_not_count_towards_seven_in_seven() -> None:
    """Comment 14(b)(3)(ii)-1: a call not connected to the dialled number is not placed."""
    start = local(NEW_YORK, 2026, 11, 2, 10, 0)
    failed = [voice_call(start + timedelta(hours=h), AttemptResult.FAILED) for h in range(7)]
    at = local(NEW_YORK, 2026, 11, 3, 10, 0)
    assert decide(to_debtor(at), us(failed)).allowed
    strict = decide(to_debtor(at), us(failed, {"count_unconnected_calls": True}))
    assert strict.code == "call_frequency", "a policy may count every dial, explicitly"


def test_us_days_are_consecutive_local_days_not_rolling_hours() -> None:
    """A conversation on Sunday 19:12 bars calls until the next Sunday from 08:00, not
    until 19:12 that day; a policy may choose the rolling window, explicitly."""
    sunday = local(NEW_YORK, 2026, 11, 1, 19, 12)
    talk = [voice_call(sunday, AttemptResult.ANSWERED)]
    at = local(NEW_YORK, 2026, 11, 3, 10, 0)
    assert decide(to_debtor(at), us(talk)).until == local(NEW_YORK, 2026, 11, 8, 8, 0)
    rolling = decide(to_debtor(at), us(talk, {"call_window": "rolling"}))
    assert rolling.until == sunday + timedelta(days=7)


def test_us_nine_pm_itself_is_lawful_after_it_is_not() -> None:
    """1006.6(b)(1)(i): inconvenient is 'before 8:00 a.m. and after 9:00 p.m.'."""
    sms = to_debtor(local(NEW_YORK, 2026, 11, 3, 21, 0), Channel.SMS)
    at_nine = decide(sms, us())
    assert at_nine.allowed and at_nine.valid_until is not None
    assert at_nine.valid_until - sms.at < timedelta(seconds=1), "and only that instant"
    late = decide(sms.model_copy(update={"at": local(NEW_YORK, 2026, 11, 3, 21, 0, 30)}),
                  us())
    assert late.verdict is Verdict.DEFERRED and late.code == "hours"


# ------------------------------------------------------------------ third parties
def location_call(at: datetime) -> ProposedContact:
    return ProposedContact(channel=Channel.VOICE, at=at, address=NEIGHBOUR,
                           recipient_kind=RecipientKind.THIRD_PARTY,
                           purpose=Purpose.LOCATION, discloses_debt=False)


def unreachable_debtor(before: datetime) -> list[ContactEvent]:
    return [voice_call(before - timedelta(days=12, hours=h), AttemptResult.FAILED)
            for h in (3, 2, 1)]


def test_us_a_third_party_is_contacted_at_most_once() -> None:
    """15 USC 1692b(3) / 1006.10(c): a second location call nine days later is refused,
    unless the person asked for it or their earlier answer was wrong."""
    first = local(NEW_YORK, 2026, 11, 2, 11, 0)
    history = [*unreachable_debtor(first),
               voice_call(first, AttemptResult.ANSWERED, NEIGHBOUR,
                          RecipientKind.THIRD_PARTY, purpose=Purpose.LOCATION)]
    again = location_call(first + timedelta(days=9))
    decision = decide(again, us(history))
    assert decision.verdict is Verdict.BLOCKED and decision.code == "third_party_once"
    assert "1692b(3)" in decision.rule
    invited = us(history, recontact_invited=[again.who])
    assert decide(again, invited).allowed


def test_cn_third_parties_only_when_unreachable_and_never_for_collection() -> None:
    """GB/T 45251-2025: only when the debtor cannot be reached (one failed call is not
    that), and only to obtain contact details or pass on a message."""
    at = local(SHANGHAI, 2026, 11, 3, 10, 0)

    def cn(history: list[ContactEvent]) -> Context:
        return context("CN", "Asia/Shanghai", history)

    sms = ProposedContact(channel=Channel.SMS, at=at, address="+8613700000000",
                          recipient_kind=RecipientKind.THIRD_PARTY, discloses_debt=False,
                          purpose=Purpose.LOCATION)
    debtor = "+8613800138000"
    one_failed = [voice_call(at - timedelta(hours=2), AttemptResult.FAILED, debtor)]
    assert decide(sms, cn(one_failed)).code == "third_party"
    three = [voice_call(at - timedelta(hours=h), AttemptResult.FAILED, debtor)
             for h in (4, 3, 2)]
    assert decide(sms, cn(three)).allowed
    assert decide(sms.model_copy(update={"purpose": Purpose.MESSAGE}), cn(three)).allowed
    collection = decide(sms.model_copy(update={"purpose": Purpose.COLLECTION}), cn(three))
    assert collection.verdict is Verdict.BLOCKED and collection.code == "third_party"


# ------------------------------------------------------------------ deferrals
def test_a_deferral_never_lands_on_a_moment_another_rule_forbids() -> None:
    """The validation-notice deadline used to be a bar that only `violations()` saw at the
    deferred time; now it is no bar in law, and the deferral is lawful there."""
    first = local(NEW_YORK, 2026, 11, 2, 20, 30)
    history = [ContactEvent(at=first, channel=Channel.SMS, address=DEBTOR_PHONE)]
    evening = InconvenientTime(start=time(19), end=time(23, 59))
    ctx = us(history, validation_notice_at=None, inconvenient=[evening])
    decision = decide(to_debtor(local(NEW_YORK, 2026, 11, 7, 20, 0), Channel.SMS), ctx)
    assert decision.verdict is Verdict.DEFERRED and decision.until is not None
    assert violations(to_debtor(decision.until, Channel.SMS), ctx) == []


def test_a_guarantor_deferral_respects_the_guarantor_own_limits() -> None:
    """Out of hours for the debtor's zone and too soon after the guarantor's own
    conversation: the deferral is to the moment both allow."""
    talked = local(NEW_YORK, 2026, 11, 2, 10, 0)
    decision = decide(to_guarantor(local(NEW_YORK, 2026, 11, 5, 22, 0)),
                      us([guarantor_call(talked, AttemptResult.ANSWERED)]))
    assert decision.until == local(NEW_YORK, 2026, 11, 9, 8, 0)


# ------------------------------------------------------------------ disputes
def test_us_only_a_written_dispute_within_the_validation_period_freezes() -> None:
    """1006.38(d)(2): the validation period ends 30 days after receipt, receipt assumed 5
    business days after sending (weekends and federal holidays excluded)."""
    sent = local(NEW_YORK, 2026, 11, 2, 9, 0)  # Monday; receipt Mon 9th; period to Dec 9
    sms = to_debtor(local(NEW_YORK, 2026, 12, 12, 10, 0), Channel.SMS)

    def disputed(opened: datetime, written: bool, **over: object) -> Context:
        return us(validation_notice_at=sent, dispute_opened_at=opened,
                  dispute_written=written, overrides=over or None)

    assert decide(sms, disputed(local(NEW_YORK, 2026, 11, 20, 9, 0), False)).allowed, \
        "an oral dispute creates no duty to stop under Reg F"
    frozen = decide(sms, disputed(local(NEW_YORK, 2026, 12, 9, 20, 0), True))
    assert frozen.verdict is Verdict.BLOCKED and frozen.code == "dispute"
    assert decide(sms, disputed(local(NEW_YORK, 2026, 12, 10, 9, 0), True)).allowed, \
        "a written dispute after the validation period ends does not force a stop"
    ours = disputed(local(NEW_YORK, 2026, 11, 20, 9, 0), False,
                    dispute_freezes_only_written_in_validation_period=False)
    assert decide(sms, ours).code == "dispute", "a policy may freeze on any dispute"


def test_the_standard_policy_freezes_on_any_us_dispute_and_says_so() -> None:
    from duecourse.domain.compliance.packs import departures
    from duecourse.policies import load_policy

    policy = load_policy("standard")
    found = {d["parameter"]: d for d in departures("US-NY", policy.compliance)}
    assert found["dispute_freezes_only_written_in_validation_period"]["direction"] == \
        "stricter"


# ------------------------------------------------------------------ where and how
def test_us_hours_suit_every_zone_the_consumer_may_be_in() -> None:
    """Comment 6(b)(1)(i)-1: a New York address with a Los Angeles phone: 08:30 in New
    York is 05:30 in Los Angeles."""
    ctx = context("US-NY", "America/New_York", other_zones=("America/Los_Angeles",),
                  validation_notice_at=local(NEW_YORK, 2026, 11, 1, 9, 0))
    decision = decide(to_debtor(local(NEW_YORK, 2026, 11, 3, 8, 30)), ctx)
    assert decision.code == "hours" and decision.until == local(NEW_YORK, 2026, 11, 3, 11, 0)
    late = decide(to_debtor(local(NEW_YORK, 2026, 11, 3, 21, 30)), ctx)
    assert late.until == local(NEW_YORK, 2026, 11, 4, 11, 0)


def test_us_workplace_and_employer_email() -> None:
    at = local(NEW_YORK, 2026, 11, 3, 10, 0)
    ctx = us(workplace_contact_prohibited_at=at - timedelta(days=1),
             employer_provided=["jo@employer.example"])
    work = decide(to_debtor(at, at_workplace=True), ctx)
    assert work.verdict is Verdict.BLOCKED and "1006.6(b)(3)" in work.rule
    assert decide(to_debtor(at), ctx).allowed, "a call to a personal number is fine"
    email = decide(to_debtor(at, Channel.EMAIL, address="jo@employer.example"), ctx)
    assert email.code == "employer_email" and "1006.22(f)(3)" in email.rule


def test_us_electronic_validation_notice_needs_consent_and_a_working_address() -> None:
    """1006.42: E-SIGN consent before an electronic notice; a bounced address goes
    another way."""
    at = local(NEW_YORK, 2026, 11, 3, 10, 0)
    notice = to_debtor(at, Channel.EMAIL, address="jo@home.example",
                       purpose=Purpose.VALIDATION_NOTICE)
    assert decide(notice, us(validation_notice_at=None)).code == "esign_consent"
    assert decide(notice.model_copy(update={"channel": Channel.LETTER, "address": "1 Rd"}),
                  us(validation_notice_at=None)).allowed
    consented = us(validation_notice_at=None, esign_consent_at=at - timedelta(days=1))
    assert decide(notice, consented).allowed
    bounced = [ContactEvent(at=at - timedelta(days=1), channel=Channel.EMAIL,
                            address="jo@home.example", result=AttemptResult.FAILED)]
    assert decide(notice, us(bounced, validation_notice_at=None,
                             esign_consent_at=at - timedelta(days=2))).code == "undeliverable"


# ------------------------------------------------------------------ time-barred debts
def test_a_demand_on_a_time_barred_debt_is_blocked() -> None:
    """1006.26(b): no threat of suit; `decide` used to allow the demand letter."""
    at = local(NEW_YORK, 2026, 11, 3, 10, 0)
    old = context("US-NC", "America/New_York", due_date=date(2023, 10, 1),
                  validation_notice_at=at)
    demand = ProposedContact(channel=Channel.LETTER, at=at, address="1 Road",
                             purpose=Purpose.DEMAND)
    decision = decide(demand, old)
    assert decision.verdict is Verdict.BLOCKED and decision.code == "time_barred"
    assert decide(demand.model_copy(update={"purpose": Purpose.COLLECTION}), old).allowed, \
        "collecting a time-barred debt without threatening suit is lawful"


@pytest.mark.parametrize(("region", "due", "barred"), [
    ("US-NC", date(2023, 10, 1), True),   # 3 years
    ("US-CA", date(2023, 10, 1), False),  # 4 years: a flat 3 was wrong
    ("US-IL", date(2018, 10, 1), False),  # 10 years
    ("GB", date(2020, 10, 1), True),      # Limitation Act 1980: 6 years
    ("GB", date(2021, 1, 1), False),
    ("CN", date(2023, 10, 1), True),      # Civil Code art. 188: 3 years
])
def test_limitation_periods_per_jurisdiction_and_state(region: str, due: date,
                                                       barred: bool) -> None:
    ctx = context(region, "Europe/London", due_date=due,
                  forbearance_offered_at=local(NEW_YORK, 2026, 1, 1, 9, 0))
    problem = legal_action_problem(ctx, local(NEW_YORK, 2026, 11, 3, 10, 0))
    assert (problem is not None and problem.code == "time_barred") is barred


def test_a_payment_restarts_the_limitation_period_where_the_pack_says_so() -> None:
    at = local(NEW_YORK, 2026, 11, 3, 10, 0)

    def ctx(starts: str) -> Context:
        return context("US-NC", "America/New_York",
                       overrides={"US": {"limitation_starts": starts}},
                       due_date=date(2023, 1, 1), last_payment_on=date(2025, 6, 1))

    assert legal_action_problem(ctx("due_date"), at) is not None
    assert legal_action_problem(ctx("last_payment"), at) is None


def test_no_legal_action_wording_on_a_time_barred_debt() -> None:
    values = {"borrower_name": "Jo", "loan_id": "L-1", "amount": "USD 10.00",
              "due_date": "2023-01-01", "cure_days": "14", "lender_contact": "x",
              "lender_name": "L"}
    with pytest.raises(TemplateError, match="time-barred"):
        render("demand_letter", "en", values, time_barred=True)
    assert "legal partner" in render("demand_letter", "en", values).body
    assert not any("legal action" in p.rule for p in lint_templates()), \
        "every template that speaks of legal action declares it"


# ------------------------------------------------------------------ citations
def test_citations_name_the_exact_paragraph() -> None:
    pack = pack_for("US")
    assert "1006.14(b)(2)(i)(B)" in pack.ref("after_conversation")
    assert "1006.14(b)(2)(i)(A)" in pack.ref("call_frequency")
    assert "1006.14(h)(1)" in pack.ref("opted_out")


def test_a_policy_changes_one_state_period_and_keeps_the_others() -> None:
    pack = pack_for("US-NY", {"US": {"statute_of_limitations_by_region": {"us-ny": "P2190D"}}})
    assert pack.limitation_for("US-NY") == timedelta(days=2190)
    assert pack.limitation_for("US-CA") == timedelta(days=4 * 365), "the law's table stays"


def test_the_validation_period_counts_business_days_from_the_loan_snapshot() -> None:
    """Assumed receipt is 5 business days after sending, federal holidays excluded; the
    holidays come from the loan's snapshot, so an upgraded `holidays` package never moves
    a running loan's deadline."""
    from duecourse.snapshots import take_snapshot

    snapshot = take_snapshot("US-NY", "America/New_York", {}, local(NEW_YORK, 2026, 11, 1))
    assert date(2026, 11, 26) in snapshot.business_holidays  # Thanksgiving
    sent = local(NEW_YORK, 2026, 11, 2, 9, 0)  # receipt Mon 9th; the period ends Dec 9
    opened = local(NEW_YORK, 2026, 12, 10, 9, 0)
    sms = to_debtor(local(NEW_YORK, 2026, 12, 12, 10, 0), Channel.SMS)

    def ctx(holidays: frozenset[date]) -> Context:
        disputed = context("US-NY", "America/New_York", validation_notice_at=sent,
                           dispute_opened_at=opened, dispute_written=True)
        return replace(disputed, business_holidays=holidays, business_holiday_years=(2026, 2031))

    assert decide(sms, ctx(frozenset())).allowed, "after the period: no duty to stop"
    # a national holiday on Wed 4th in the snapshot: receipt Tue 10th, period to Dec 10
    assert decide(sms, ctx(frozenset({date(2026, 11, 4)}))).code == "dispute"


def test_naming_a_guarantor_on_one_call_and_not_the_next_keeps_one_person() -> None:
    """The guarantor answered as "Sam" on Monday; a call to the same number on Tuesday
    without a name is still a call to Sam, too soon after the conversation."""
    talked = local(NEW_YORK, 2026, 11, 2, 11, 0)
    named = guarantor_call(talked, AttemptResult.ANSWERED, person="Sam")
    decision = decide(to_guarantor(local(NEW_YORK, 2026, 11, 3, 11, 0)), us([named]))
    assert decision.code == "after_conversation"
    other = ProposedContact(channel=Channel.VOICE, at=local(NEW_YORK, 2026, 11, 3, 11, 0),
                            address=GUARANTOR_PHONE, recipient_kind=RecipientKind.GUARANTOR,
                            person="Alex")
    assert decide(other, us([named])).allowed, "a different named person on a shared line"


DEMO_ONLY = {"contact_hours", "validation_period", "validation_receipt_business_days",
             "quiet_after_conversation", "forbearance_response", "min_default_notice",
             "breathing_space", "crisis_moratorium_after_treatment"}
"""What the demo may change beyond the standard policy: hours and waiting periods only."""


def test_the_demo_policy_makes_the_standard_policy_choices() -> None:
    """The demo is the standard strategy compressed in time, never looser in its choices: a
    demo that froze only written US disputes would contact a borrower the standard would
    not. It may compress hours and waiting periods only, and never changes the packs."""
    from duecourse.policies import load_policy

    demo, standard = load_policy("demo").compliance, load_policy("standard").compliance
    for country, choices in standard.items():
        assert {k: v for k, v in demo[country].items() if k in choices} == choices
    extra = {k for country, v in demo.items() for k in v
             if k not in standard.get(country, {})}
    assert extra <= DEMO_ONLY, extra - DEMO_ONLY
    assert PACKS["GB"].forbearance_response == timedelta(days=14)  # the law is untouched
