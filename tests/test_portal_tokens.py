"""Borrower page links: signed tokens bound to a loan and its case that expire and name
no one; the link line every borrower message gets (before the required wording, which
stays whole); the plan and settlement options the page computes inside the policy; and
the in-process rate limits."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from pydantic import SecretStr

from duecourse.domain.actor import SYSTEM
from duecourse.domain.entries import ComplianceDecided
from duecourse.domain.policy import Channel, PlanRules, SettlementRules
from duecourse.portal.guard import PortalGuard, RateLimiter
from duecourse.portal.i18n import texts
from duecourse.portal.links import PortalLinks
from duecourse.portal.plans import plan_options, settlement_options
from duecourse.portal.tokens import (
    PortalKeyError,
    PortalSigner,
    ensure_secret_file,
    signer_from_settings,
)
from duecourse.settings import Settings
from duecourse.templates import render
from duecourse.temporal.contracts import SendMessage

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
DAYS30 = timedelta(days=30)
SIGNER = PortalSigner(b"portal-test-secret-0123456789")


def _payload(token: str) -> dict[str, object]:
    encoded = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))


def test_a_token_binds_loan_case_and_expiry_and_names_no_one() -> None:
    token = SIGNER.mint("L-1", "case-1", NOW, DAYS30)
    found = SIGNER.verify(token, NOW + timedelta(days=29))
    assert found is not None
    assert (found.loan_id, found.case_id, found.expires_at) == ("L-1", "case-1", NOW + DAYS30)
    assert set(_payload(token)) == {"k", "l", "c", "e"}, "no name, phone or amount"


def test_an_expired_token_opens_nothing() -> None:
    token = SIGNER.mint("L-1", "case-1", NOW, DAYS30)
    assert SIGNER.verify(token, NOW + DAYS30) is None
    assert SIGNER.verify(token, NOW + DAYS30 - timedelta(seconds=1)) is not None


def test_tampered_forged_or_malformed_tokens_open_nothing() -> None:
    token = SIGNER.mint("L-1", "case-1", NOW, DAYS30)
    encoded, signature = token.split(".")
    other = dict(_payload(token), l="L-2")
    swapped = base64.urlsafe_b64encode(json.dumps(other).encode()).rstrip(b"=").decode()
    longer = dict(_payload(token), e=int((NOW + timedelta(days=900)).timestamp()))
    extended = base64.urlsafe_b64encode(json.dumps(longer).encode()).rstrip(b"=").decode()
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    forged = PortalSigner(b"someone-elses-secret-0123").mint("L-1", "case-1", NOW, DAYS30)
    for bad in (f"{swapped}.{signature}", f"{extended}.{signature}", f"{encoded}.{flipped}",
                forged, "", "abc", "a.b.c", f"{encoded}.", "!!!.???", "x" * 5000):
        assert SIGNER.verify(bad, NOW) is None, bad


def test_csrf_values_are_per_token_and_checked() -> None:
    one = SIGNER.mint("L-1", "case-1", NOW, DAYS30)
    two = SIGNER.mint("L-1", "case-2", NOW, DAYS30)
    assert SIGNER.csrf_for(one) != SIGNER.csrf_for(two)
    assert SIGNER.csrf_ok(one, SIGNER.csrf_for(one))
    assert not SIGNER.csrf_ok(one, SIGNER.csrf_for(two))
    assert not SIGNER.csrf_ok(one, None) and not SIGNER.csrf_ok(one, "")


def test_the_key_comes_from_the_setting_or_the_data_dir_file(tmp_path: Path) -> None:
    assert signer_from_settings(Settings(data_dir=tmp_path)) is None, "no key: no links"
    ensure_secret_file(tmp_path / "portal-secret")
    from_file = signer_from_settings(Settings(data_dir=tmp_path))
    assert from_file is not None
    token = from_file.mint("L-1", "c", NOW, DAYS30)
    again = signer_from_settings(Settings(data_dir=tmp_path))
    assert again is not None and again.verify(token, NOW) is not None, "the file is kept"
    inline = signer_from_settings(Settings(data_dir=tmp_path,
                                           portal_secret=SecretStr("x" * 32)))
    assert inline is not None and inline.verify(token, NOW) is None
    with pytest.raises(PortalKeyError, match="does not exist"):
        signer_from_settings(Settings(portal_secret_file=tmp_path / "missing"))
    with pytest.raises(PortalKeyError, match="at least 16 bytes"):
        PortalSigner(b"short")


def test_every_language_has_every_word() -> None:
    words = texts()
    assert set(words) == {"en", "zh-CN"}
    assert set(words["en"]) == set(words["zh-CN"])


# ------------------------------------------------------------------ the link in messages
def send(channel: Channel, template: str, jurisdiction: str = "US",
         recipient_kind: str = "debtor", language: str = "en") -> SendMessage:
    return SendMessage(
        idempotency_key="case-1:contact:1:s", case_id="case-1", workflow_id="collection-L-1",
        loan_id="L-1", stage="REMINDER", step="s", channel=channel, template=template,
        language=language, recipient="+12025550143", recipient_kind=recipient_kind,
        jurisdiction=jurisdiction, scheduled_for=NOW, not_after=NOW + timedelta(hours=1),
        decision=ComplianceDecided(
            key="d", occurred_at=NOW, actor=SYSTEM, step="s", channel=str(channel),
            recipient="+12025550143", recipient_kind=recipient_kind, purpose="collection",
            proposed_at=NOW, verdict="allowed"),
        context={"borrower_name": "Sam Lee", "loan_id": "L-1", "amount": "100.00 USD",
                 "due_date": "2026-11-29", "days_past_due": "2", "cure_days": "14",
                 "lender_name": "Acme", "lender_contact": "1-800-555-0100"})


LINKS = PortalLinks(SIGNER, "https://collect.example/", DAYS30)


@pytest.mark.parametrize(("channel", "template"), [
    (Channel.SMS, "overdue_notice"), (Channel.EMAIL, "overdue_notice"),
    (Channel.LETTER, "validation_notice")])
def test_the_link_goes_before_the_required_wording_which_stays_whole(
        channel: Channel, template: str) -> None:
    req = send(channel, template)
    plain = render(template, "en", req.context, jurisdiction="US", channel=channel)
    linked = LINKS.add_link(plain, req, req.context)
    own = render(template, "en", req.context, channel=channel).body
    suffix = plain.body[len(own):]
    assert plain.required, "the US wording is there to keep"
    assert linked.body.startswith(own) and linked.body.endswith(suffix), "nothing replaced"
    line = linked.body[len(own):len(linked.body) - len(suffix)].strip()
    assert line.startswith("See your account and choose what suits you: "
                           "https://collect.example/b/")
    token = line.rsplit("/b/", 1)[1]
    found = SIGNER.verify(token, NOW)
    assert found is not None and (found.loan_id, found.case_id) == ("L-1", "case-1")
    assert found.expires_at == NOW + DAYS30, "counted from the send's scheduled time"
    assert LINKS.add_link(plain, req, req.context) == linked, "every retry renders the same"


def test_no_link_on_a_call_or_to_someone_else() -> None:
    call = send(Channel.VOICE, "courtesy_call")
    script = render("courtesy_call", "en", call.context, jurisdiction="US", channel="voice")
    assert LINKS.add_link(script, call, call.context) == script
    other = send(Channel.SMS, "overdue_notice", recipient_kind="guarantor")
    text = render("overdue_notice", "en", other.context, jurisdiction="US", channel="sms")
    assert LINKS.add_link(text, other, other.context) == text


def test_the_link_line_speaks_the_messages_language() -> None:
    req = send(Channel.SMS, "overdue_notice", jurisdiction="CN", language="zh-CN")
    plain = render("overdue_notice", "zh-CN", req.context, jurisdiction="CN", channel="sms")
    assert "查看您的账户" in LINKS.add_link(plain, req, req.context).body


# ------------------------------------------------------------------ options and limits
def test_plan_options_stay_inside_the_policy() -> None:
    rules = PlanRules(max_instalments=6, min_instalment_ratio=Decimal("0.10"),
                      max_days_to_first_payment=5, max_interval_days=14)
    today = date(2026, 12, 1)
    options = plan_options(Decimal("1000.00"), rules, 6, today)
    assert [o.count for o in options] == [2, 3, 4, 6]
    for o in options:
        assert sum(a for _, a in o.instalments) == Decimal("1000.00")
        assert (o.instalments[0][0] - today).days <= 5
        days = [d for d, _ in o.instalments]
        assert all((b - a).days <= 14 for a, b in pairwise(days))
        assert all(a >= Decimal("100.00") for _, a in o.instalments[:-1])
    three = next(o for o in options if o.count == 3)
    assert (three.each, three.last) == (Decimal("333.33"), Decimal("333.34"))
    strict = rules.model_copy(update={"min_instalment_ratio": Decimal("0.30")})
    assert [o.count for o in plan_options(Decimal("1000.00"), strict, 6, today)] == [2, 3]


def test_settlement_options_are_the_agent_limit_and_a_supervisor_request() -> None:
    rules = SettlementRules(agent_max_discount=Decimal("0.20"), floor_ratio=Decimal("0.40"),
                            max_days_to_pay=14)
    agent, supervisor = settlement_options(Decimal("1000.01"), rules, date(2026, 12, 1))
    assert (agent.kind, agent.amount) == ("agent", Decimal("800.01")), "rounded up: within"
    assert (supervisor.kind, supervisor.amount) == ("supervisor", Decimal("400.00"))
    assert agent.pay_by == date(2026, 12, 15)


def test_rate_limits_count_per_key_within_the_window() -> None:
    clock = [0.0]
    limiter = RateLimiter(2, window=60, clock=lambda: clock[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b"), "another key has its own count"
    clock[0] = 61
    assert limiter.allow("a"), "the window slides"
    guard = PortalGuard(per_token=100, per_ip=2)
    assert guard.allow("t1", "1.2.3.4") and guard.allow("t2", "1.2.3.4")
    assert not guard.allow("t3", "1.2.3.4"), "one IP trying many links is stopped"
