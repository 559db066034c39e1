"""Each rule of each pack, one scenario at a time (pure: no Temporal, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.state import Stage
from duecourse.domain.compliance import (
    AttemptResult,
    ContactEvent,
    HoldKind,
    ProposedContact,
    Purpose,
    RecipientKind,
    Verdict,
    decide,
    pack_for,
)
from duecourse.domain.compliance.requests import HoldRequest
from duecourse.domain.contact.protections import change_hold, hold_problem
from duecourse.domain.policy import Channel, Policy
from duecourse.policies import load_policy
from duecourse.templates import lint_templates, render
from tests.factories import AGENT, make_loan
from tests.support.compliance import NEW_YORK, SHANGHAI, context, local, voice_call

PHONE = "+8613800138000"


def call(at: datetime, result: AttemptResult = AttemptResult.UNANSWERED) -> ContactEvent:
    return voice_call(at, result, PHONE)


def test_cn_three_answered_calls_a_day() -> None:
    at = local(SHANGHAI, 2026, 11, 30, 15, 0)
    history = [call(at - timedelta(hours=h), AttemptResult.ANSWERED) for h in (1, 2, 3)]
    decision = decide(ProposedContact(channel=Channel.VOICE, at=at, address=PHONE),
                      context("CN", "Asia/Shanghai", history))
    assert decision.verdict is Verdict.DEFERRED and decision.code == "answered_calls"
    assert decision.until == local(SHANGHAI, 2026, 12, 1, 8, 0)
    sms = decide(ProposedContact(channel=Channel.SMS, at=at, address=PHONE),
                 context("CN", "Asia/Shanghai", history))
    assert sms.allowed, "the call limit does not stop messages"


def test_cn_six_unanswered_attempts_per_number() -> None:
    at = local(SHANGHAI, 2026, 11, 30, 20, 0)
    history = [call(at - timedelta(minutes=10 * i)) for i in range(1, 7)]
    assert decide(ProposedContact(channel=Channel.VOICE, at=at, address=PHONE),
                  context("CN", "Asia/Shanghai", history)).code == "unanswered_attempts"
    other = decide(ProposedContact(channel=Channel.VOICE, at=at, address="+8613900000000"),
                   context("CN", "Asia/Shanghai", history))
    assert other.allowed, "the cap is per number"


def test_cn_third_parties_only_when_debtor_unreachable() -> None:
    at = local(SHANGHAI, 2026, 11, 30, 10, 0)
    proposal = ProposedContact(channel=Channel.VOICE, at=at, address="+8613700000000",
                               recipient_kind=RecipientKind.THIRD_PARTY, discloses_debt=False,
                               purpose=Purpose.LOCATION)  # never for collection itself
    reachable = [call(at - timedelta(days=1), AttemptResult.ANSWERED)]
    assert decide(proposal, context("CN", "Asia/Shanghai", reachable)).code == "third_party"
    failed = [call(at - timedelta(hours=h), AttemptResult.UNANSWERED) for h in (5, 4, 3)]
    assert decide(proposal, context("CN", "Asia/Shanghai", reachable + failed)).allowed
    disclosing = proposal.model_copy(update={"discloses_debt": True})
    assert decide(disclosing, context("CN", "Asia/Shanghai", failed)).code == "disclosure"
    refused = decide(proposal, context("CN", "Asia/Shanghai", failed,
                                   refused_third_parties=["+8613700000000"]))
    assert refused.code == "third_party_refused"


def test_cn_home_visits_need_two_collectors() -> None:
    at = local(SHANGHAI, 2026, 11, 30, 10, 0)
    visit = ProposedContact(channel=Channel.VISIT, at=at, address="1 Road", collectors=1)
    cn = context("CN", "Asia/Shanghai")
    assert decide(visit, cn).code == "visit_collectors"
    assert decide(visit.model_copy(update={"collectors": 2}), cn).allowed


def test_us_no_call_within_seven_days_of_a_conversation() -> None:
    at = local(NEW_YORK, 2026, 11, 30, 10, 0)
    talked = at - timedelta(days=2)
    decision = decide(ProposedContact(channel=Channel.VOICE, at=at, address=PHONE),
                      context("US", "America/New_York", [call(talked, AttemptResult.ANSWERED)],
                          validation_notice_at=talked))
    assert decision.code == "after_conversation"
    # seven consecutive days after Saturday's conversation: the next Saturday from 08:00
    assert decision.until == local(NEW_YORK, 2026, 12, 5, 8, 0)


def test_us_inconvenient_times_and_opt_out_and_cease_and_attorney() -> None:
    from duecourse.domain.compliance import InconvenientTime

    at = local(NEW_YORK, 2026, 11, 30, 12, 15)
    busy = context("US", "America/New_York", validation_notice_at=at,
               inconvenient=[InconvenientTime(start=time(12), end=time(14))])
    lunch = decide(ProposedContact(channel=Channel.SMS, at=at, address=PHONE), busy)
    assert lunch.code == "inconvenient" and lunch.until == local(NEW_YORK, 2026, 11, 30, 14, 0)
    for field, code in (("cease_communication_at", "cease"), ("attorney_at", "attorney")):
        blocked = decide(ProposedContact(channel=Channel.EMAIL, at=at, address="a@b.c"),
                         context("US", "America/New_York", **{field: at - timedelta(days=1)}))
        assert blocked.verdict is Verdict.BLOCKED and blocked.code == code
    opted = decide(ProposedContact(channel=Channel.SMS, at=at, address=PHONE),
                   context("US", "America/New_York",
                       opted_out={Channel.SMS: at - timedelta(hours=1)}))
    assert opted.code == "opted_out" and "1006.6" in opted.rule


def test_us_validation_notice_is_a_duty_not_a_bar_unless_the_policy_says_so() -> None:
    first = local(NEW_YORK, 2026, 11, 20, 10, 0)
    history = [ContactEvent(at=first, channel=Channel.SMS, address=PHONE)]
    later = ProposedContact(channel=Channel.SMS, at=first + timedelta(days=6), address=PHONE)
    assert decide(later, context("US", "America/New_York", history)).allowed, \
        "1006.34 is a duty to send the notice, not a bar on other contact"
    ours = context("US-NY", "America/New_York", history,
                   overrides={"US": {"collection_waits_for_validation_notice": True}})
    assert decide(later, ours).code == "validation_notice"
    notice = later.model_copy(update={"purpose": Purpose.VALIDATION_NOTICE,
                                      "channel": Channel.LETTER})
    assert decide(notice, ours).allowed


def test_us_third_parties_only_for_location() -> None:
    at = local(NEW_YORK, 2026, 11, 30, 10, 0)
    failed = [call(at - timedelta(hours=h), AttemptResult.FAILED) for h in (3, 2, 1)]
    base = ProposedContact(channel=Channel.VOICE, at=at, address="+12125550000",
                           recipient_kind=RecipientKind.THIRD_PARTY, discloses_debt=False)
    us = context("US", "America/New_York", failed, validation_notice_at=at)
    assert decide(base, us).code == "third_party"
    assert decide(base.model_copy(update={"purpose": Purpose.LOCATION}), us).allowed


def test_public_holidays_are_optional_per_policy() -> None:
    policy = load_policy("standard").model_dump(mode="json")
    policy["compliance"] = {"CN": {"no_contact_on_public_holidays": True}}
    overrides = Policy.model_validate(policy).compliance
    at = local(SHANGHAI, 2026, 10, 1, 10, 0)  # National Day
    holidays_off = context("CN", "Asia/Shanghai", overrides=overrides)
    decision = decide(ProposedContact(channel=Channel.SMS, at=at, address=PHONE), holidays_off)
    assert decision.code == "holiday"
    assert decision.until is not None and decision.until.astimezone(SHANGHAI).date() > \
        date(2026, 10, 1)
    assert decide(ProposedContact(channel=Channel.SMS, at=at, address=PHONE),
                  context("CN", "Asia/Shanghai")).allowed, "off by default"


def test_pack_overrides_are_validated() -> None:
    data = load_policy("standard").model_dump(mode="json")
    data["compliance"] = {"US": {"max_call_attempts": 5}}
    assert pack_for("US-CA", Policy.model_validate(data).compliance).max_call_attempts == 5
    data["compliance"] = {"US": {"max_calls": 5}}
    with pytest.raises(ValueError, match="compliance overrides for US"):
        Policy.model_validate(data)


def collection(jurisdiction: str, tz: str, dpd: int = 10, **kwargs: object) -> Collection:
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    loan = make_loan(now, dpd=dpd, tz=tz, jurisdiction=jurisdiction, **kwargs)  # type: ignore[arg-type]
    c, _ = Collection.begin(loan, load_policy("standard"), now, case_id="c1")
    return c


def test_time_barred_us_debt_never_reaches_legal() -> None:
    c = collection("US", "America/New_York", dpd=4 * 365, currency="USD")
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    c.end_reminder(now)
    entries = c.end_negotiation(now)
    assert c.state.stage is Stage.NEGOTIATION and c.state.legal.barred == "time_barred"
    assert any(getattr(e, "event", "") == "legal_action_blocked" for e in entries)


def test_breathing_space_sixty_days_honoured_even_within_twelve_months_and_only_in_gb(
        ) -> None:
    # a second breathing space within 12 months is the debt adviser's eligibility check:
    # once registered the creditor complies (and may ask for a review), never refuses -
    # tests/test_compliance_facts.py checks the warning it raises
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    gb = collection("GB", "Europe/London", currency="GBP")
    start = HoldRequest(action="start", kind=HoldKind.BREATHING_SPACE, actor=AGENT)
    change_hold(gb, start, now)
    hold = gb.state.contacting.standing.holds[0]
    assert hold.end == now + timedelta(days=60)
    assert hold_problem(gb, start, now + timedelta(days=30)) == \
        "a breathing space hold is already active"
    assert hold_problem(gb, start, now + timedelta(days=200)) is None
    assert hold_problem(gb, start, now + timedelta(days=366)) is None
    cn = collection("CN", "Asia/Shanghai")
    assert "does not apply in CN" in (hold_problem(cn, start, now) or "")


def test_us_messages_carry_disclosure_and_opt_out() -> None:
    values = {"borrower_name": "Maria", "loan_id": "L-1", "amount": "812.40 USD",
              "due_date": "2026-11-01", "days_past_due": "12", "cure_days": "14",
              "lender_name": "Acme", "lender_contact": "800-555-0100"}
    sms = render("overdue_reminder", "en", values, jurisdiction="US-CA", channel="sms")
    assert "debt collector" in sms.body and "Reply STOP" in sms.body
    email = render("overdue_notice", "zh-CN", values, jurisdiction="US", channel="email")
    assert "债务催收方" in email.body and "UNSUBSCRIBE" in email.body
    cn = render("overdue_notice", "zh-CN", values, jurisdiction="CN", channel="sms")
    assert "debt collector" not in cn.body and "投诉" in cn.body


def test_template_lint_rejects_banned_wording(tmp_path: Path) -> None:
    assert lint_templates() == []
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "threat:\n  en: {body: 'Pay today or the police will arrest you.'}\n"
        "  zh-CN: {body: '不还款将被列入黑名单并通知你的单位。'}\n", encoding="utf-8")
    empty = tmp_path / "jur.yaml"
    empty.write_text("{}\n", encoding="utf-8")
    problems = lint_templates(bad, empty)
    rules = " | ".join(p.rule for p in problems)
    assert "1692e(4)" in rules and "impersonating" in rules
    assert "黑名单" in rules and "泄露" in rules
    assert {p.where.split(".")[0] for p in problems} == {"threat[en]", "threat[zh-CN]"}


def test_readme_documents_every_rule_parameter() -> None:
    from duecourse.domain.compliance.packs import RulePack

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    undocumented = [name for name in RulePack.model_fields
                    if name not in ("jurisdiction", "title", "references")
                    and f"`{name}`" not in readme and f"{name}`" not in readme]
    assert undocumented == []
