"""The borrower page's hardening (issue 15 items 2 and 4): amounts in every currency's
minor unit and absurd amounts refused with a sentence; breathing space asked for on the
page opens a request, never a moratorium, and nothing the page does not offer is done;
one neutral answer for every link that cannot be shown, the engine away included; the
per-IP limit by /64 and behind trusted proxies only; a call back's compliance decision
in the ledger; the engine's refusals in the borrower's language."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.domain.policy import PlanRules, SettlementRules
from duecourse.portal.actions import BadInput, parse_amount
from duecourse.portal.guard import PortalGuard, client_ip, ip_key
from duecourse.portal.i18n import Words
from duecourse.portal.plans import plan_options, settlement_options
from duecourse.portal.reasons import REFUSALS, explain, known
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient
from tests.test_portal_page import Portal, _alert, _field, _promise_max, _rig, settings
from tests.test_portal_page import portal as portal  # the page's rig, as a fixture here
from tests.test_workflow_negotiation import STANDARD

TODAY = date(2026, 12, 1)
NEUTRAL = "This link is not valid"
ZH_REFUSED = "无法完成此操作："  # noqa: RUF001 - the page's own punctuation
ZH_UNKNOWN = "无法完成此操作。请选择其他选项，或联系我们。"  # noqa: RUF001
ZH_COLON, ZH_SEMI = "：", "；"  # noqa: RUF001


@pytest.fixture
async def behind_proxy(ts_env: WorkflowEnvironment, ledger: Ledger) -> AsyncIterator[Portal]:
    cfg = settings(portal_requests_per_ip=2, portal_trusted_proxies=["127.0.0.0/8"])
    async for p in _rig(ts_env, ledger, cfg):
        yield p


@pytest.fixture
async def direct(ts_env: WorkflowEnvironment, ledger: Ledger) -> AsyncIterator[Portal]:
    async for p in _rig(ts_env, ledger, settings(portal_requests_per_ip=2)):
        yield p


def _decimals(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(-exponent, 0)


# ------------------------------------------------------------------ 1. amounts
@pytest.mark.parametrize(("currency", "outstanding", "digits"), [
    ("JPY", "100000", 0), ("KWD", "1000.001", 3), ("USD", "1000.01", 2)])
def test_options_are_in_the_currencys_minor_unit(currency: str, outstanding: str,
                                                 digits: int) -> None:
    rules = PlanRules(max_instalments=12, min_instalment_ratio=Decimal("0.05"),
                      max_days_to_first_payment=7, max_interval_days=30)
    balance = Decimal(outstanding)
    plans = plan_options(balance, rules, 12, TODAY, currency)
    assert [p.count for p in plans] == [2, 3, 4, 6, 9, 12]
    for p in plans:
        assert sum(a for _, a in p.instalments) == balance
        assert all(_decimals(a) <= digits for _, a in p.instalments), p
    deals = settlement_options(balance, SettlementRules(
        agent_max_discount=Decimal("0.15"), floor_ratio=Decimal("0.333")), TODAY, currency)
    assert [s.kind for s in deals] == ["agent", "supervisor"]
    assert all(_decimals(s.amount) <= digits for s in deals), deals
    floor = (balance * Decimal("0.333")).quantize(Decimal("0.01"))
    assert deals[1].amount >= floor, "never below the engine's own floor"


@pytest.mark.parametrize(("typed", "key"), [
    ("1e20", "bad_amount"), ("1E5", "bad_amount_over"), ("NaN", "bad_amount"),
    ("Infinity", "bad_amount"), ("-5", "bad_amount"), ("0", "bad_amount"),
    ("9" * 40, "bad_amount"), ("1" + "0" * 15, "bad_amount"), ("lots", "bad_amount"),
    ("1000.01", "bad_amount_over"), ("12.345", "bad_amount_digits"),
    ("0." + "0" * 30 + "1", "bad_amount"), ("", "bad_amount")])
def test_an_absurd_amount_is_a_sentence_not_an_error(typed: str, key: str) -> None:
    with pytest.raises(BadInput) as refused:
        parse_amount(typed, "USD", Decimal("1000.00"))
    assert str(refused.value) == key
    for lang in ("en", "zh-CN"):
        assert Words(lang)(key)


def test_a_plain_amount_is_taken_at_the_currencys_scale() -> None:
    assert parse_amount("1,000", "USD", Decimal("1000.00")) == Decimal("1000.00")
    assert parse_amount("250", "JPY", Decimal("1000")) == Decimal("250")
    assert parse_amount("0.125", "KWD", Decimal("1")) == Decimal("0.125")
    with pytest.raises(BadInput, match="bad_amount_digits"):
        parse_amount("250.5", "JPY", Decimal("1000"))


async def test_a_yen_loan_offers_whole_yen_plans_and_refuses_1e20(portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="JPY", outstanding="100000",
                                         jurisdiction="US", language="en")
    page = await portal.page(token)
    assert page.status_code == 200, page.text
    due = _promise_max(page)
    absurd = await portal.post(token, "promise", {"amount": "1e20", "date": due.isoformat()})
    assert (absurd.status_code, _alert(absurd)) == (
        422, "Amount: enter a number such as 250.00.")
    done = await portal.post(token, "plan", {"option": "3"})
    assert done.status_code == 303, _alert(done)
    await portal.h.settle(loan.loan_id)
    plan = (await portal.h.client.status(loan.loan_id)).plan
    assert plan is not None
    assert [i.amount for i in plan.instalments] == [33333, 33333, 33334]


async def test_a_dinar_loan_settles_in_thousandths(portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="KWD", outstanding="1000.001",
                                         jurisdiction="US", language="en")
    assert 'value="agent"' in (await portal.page(token)).text
    done = await portal.post(token, "settle", {"option": "agent"})
    assert done.status_code == 303, _alert(done)
    await portal.h.settle(loan.loan_id)
    settlement = (await portal.h.client.status(loan.loan_id)).settlement
    assert settlement is not None and _decimals(settlement.amount) <= 3
    assert settlement.amount == Decimal("800.001"), "20% off, rounded up to the fils"


# ------------------------------------------------------------------ 2. breathing space
async def test_breathing_space_on_the_page_is_a_request_with_a_short_pause(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="GBP", jurisdiction="GB", language="en")
    page = await portal.page(token)
    assert "Ask for breathing space</button>" in page.text
    done = await portal.post(token, "breathing-space", {})
    assert done.status_code == 303 and done.headers["location"].endswith(
        "done=done_breathing"), done.text
    await portal.h.settle(loan.loan_id)
    status = await portal.h.client.status(loan.loan_id)
    kinds = {h.kind for h in status.standing.holds if h.covers(status.as_of)}
    assert kinds == {"hardship"}, "a pause, not a registered moratorium"
    [hold] = status.standing.holds
    assert hold.end is not None and hold.end - hold.start == timedelta(days=30)
    [task] = [t for t in status.open_tasks if t.kind == "review_moratorium"]
    assert task.subject == "breathing_space_request"
    assert task.assignee == STANDARD.tasks.supervisor_queue
    assert "Insolvency Service" in task.note
    events = await portal.h.rows(t.audit_events, loan_id=loan.loan_id)
    [asked] = [e for e in events if e["kind"] == "breathing_space_requested"]
    assert (asked["actor_kind"], asked["actor_id"]) == ("borrower", "portal")
    after = await portal.http.get(done.headers["location"])
    assert "A breathing space starts once a debt adviser registers it" in after.text
    assert "Ask for breathing space</button>" not in after.text, "asked once"
    again = await portal.post(token, "breathing-space", {})
    garbage = await portal.http.post("/b/garbage/breathing-space", data={})
    assert (again.status_code, again.text) == (404, garbage.text), "not offered: unknown"


async def test_an_action_the_page_does_not_offer_is_refused_like_an_unknown_one(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    unknown = await portal.post(token, "no-such-action", {})
    assert unknown.status_code == 404 and NEUTRAL in unknown.text
    not_offered = await portal.post(token, "breathing-space", {})  # a US loan
    assert (not_offered.status_code, not_offered.text) == (404, unknown.text)
    settle = await portal.post(token, "dispute", {"reason": "not_mine"})
    assert settle.status_code == 303
    again = await portal.post(token, "dispute", {"reason": "already_paid"})
    assert (again.status_code, again.text) == (404, unknown.text), "disputed already"
    await portal.h.settle(loan.loan_id)
    status = await portal.h.client.status(loan.loan_id)
    assert not [h for h in status.standing.holds if h.kind == "breathing_space"]


# ------------------------------------------------------------------ 3. neutral always
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_with_the_engine_away_a_live_link_answers_like_a_garbage_one(
        portal: Portal, ledger: Ledger) -> None:
    _, token = await portal.hand_over()
    assert (await portal.page(token)).status_code == 200
    away = await Client.connect(f"127.0.0.1:{_closed_port()}", lazy=True)
    cfg = settings()
    services = Services(client=CollectionClient(away, portal.h.task_queue), ledger=ledger,
                        keys=KeyStore(ledger.engine), settings=cfg)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(cfg, services)),
                                 base_url="http://api") as http:
        live, garbage = (await http.get(f"/b/{token}"), await http.get("/b/garbage"))
        assert (live.status_code, live.text) == (garbage.status_code, garbage.text)
        assert live.status_code == 404 and NEUTRAL in live.text and "1,000" not in live.text
        posted = await http.post(f"/b/{token}/promise", data={"amount": "1"})
        bad = await http.post("/b/garbage/promise", data={"amount": "1"})
        assert (posted.status_code, posted.text) == (bad.status_code, bad.text)
    assert (await portal.page(token)).status_code == 200, "back when the engine is"


# ------------------------------------------------------------------ 4. per-IP limits
def test_ipv6_is_counted_by_its_64() -> None:
    assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:ffff:1:2:3") == \
        "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("203.0.113.7") == "203.0.113.7"
    assert ip_key("::ffff:203.0.113.7") == "203.0.113.7"
    guard = PortalGuard(per_token=100, per_ip=2)
    assert guard.allow("t1", "2001:db8:1:2::1") and guard.allow("t2", "2001:db8:1:2::2")
    assert not guard.allow("t3", "2001:db8:1:2:ffff::9"), "another address, same /64"
    assert guard.allow("t4", "2001:db8:1:3::1"), "the next /64 has its own count"


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
    assert client_ip("198.51.100.9", ["203.0.113.5"], proxies) == "198.51.100.9", \
        "from the internet: the header is the client's own word"
    assert client_ip("10.0.0.2", ["203.0.113.5"], proxies) == "203.0.113.5"
    assert client_ip("10.0.0.2", ["1.1.1.1, 203.0.113.5, 10.9.9.9"], proxies) == \
        "203.0.113.5", "rightmost untrusted hop; what the client wrote to its left is not"
    assert client_ip("10.0.0.2", ["1.1.1.1", "203.0.113.5"], proxies) == "203.0.113.5"
    assert client_ip("fd00::1", ["2001:db8::5"], proxies) == "2001:db8::5"
    assert client_ip("10.0.0.2", ["10.0.0.3"], proxies) == "10.0.0.3", "all trusted"
    assert client_ip("10.0.0.2", ["not-an-address"], proxies) == "10.0.0.2"
    assert client_ip("10.0.0.2", ["203.0.113.5"], []) == "10.0.0.2", "default: none"


async def test_behind_a_trusted_proxy_each_client_has_its_own_count(
        behind_proxy: Portal) -> None:
    one, two = {"X-Forwarded-For": "203.0.113.5"}, {"X-Forwarded-For": "203.0.113.6"}
    assert [(await behind_proxy.page("garbage", **one)).status_code
            for _ in range(3)] == [404, 404, 429]
    assert (await behind_proxy.page("garbage", **two)).status_code == 404


async def test_without_trusted_proxies_a_forged_header_buys_nothing(direct: Portal) -> None:
    answers = [(await direct.page("garbage", **{"X-Forwarded-For": f"203.0.113.{n}"}))
               .status_code for n in range(3)]
    assert answers == [404, 404, 429]


# ------------------------------------------------------------------ 5. call back decision
async def test_a_call_back_records_the_engines_decision_and_an_unlawful_one_its_rule(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    zone = ZoneInfo(loan.borrower.timezone)
    tomorrow = (await portal.h.env.get_current_time()).astimezone(zone).date() + \
        timedelta(days=1)
    late = await portal.post(token, "callback", {"date": tomorrow.isoformat(),
                                                 "time": "23:30"})
    assert (late.status_code, _alert(late)) == (422, (
        f"We could not do that: we may not call at {tomorrow.isoformat()} 23:30: outside "
        "the hours the law allows for calls (12 CFR 1006.6(b)(1)(i))"))
    done = await portal.post(token, "callback", {"date": tomorrow.isoformat(),
                                                 "time": "10:15"})
    assert done.status_code == 303, _alert(done)
    await portal.h.settle(loan.loan_id)
    asked = datetime.combine(tomorrow, time(10, 15), tzinfo=zone)
    [row] = [d for d in await portal.h.rows(t.compliance_decisions, loan_id=loan.loan_id)
             if d["step"] == "callback"]
    assert row["verdict"] == "allowed" and row["channel"] == "voice"
    assert row["proposed_at"] == asked
    assert (row["actor_kind"], row["actor_id"]) == ("borrower", "portal")
    timeline = await portal.h.ledger.timeline(loan.loan_id)
    assert [i for i in timeline if i.kind == "compliance_decision"
            and i.data.get("step") == "callback"], "the timeline shows it"


# ------------------------------------------------------------------ 6. refusals translated
def test_every_known_refusal_reads_in_both_languages_and_unknown_ones_stay_plain() -> None:
    samples = {
        "why_closed": "the loan is closed (PAID)",
        "why_promise_active": "promise P1 is still active until 2026-12-09",
        "why_over_balance": "amount 5,000.00 USD exceeds the outstanding balance 1000.00 USD",
        "why_date_far": "promised date 2027-02-01 is more than 30 days ahead; the latest "
                        "allowed is 2026-12-31",
        "why_first_far": "the first instalment is 7 days away; at most 2 allowed",
        "why_gap": "31 days between instalments due 2026-12-01 and 2027-01-01; at most 30 "
                   "allowed",
        "why_below_floor": "400.00 CNY is below the policy floor of 500.00 CNY (50% of the "
                           "balance)",
        "why_hold_active": "a hardship hold is already active",
        "why_callback_rule": "we may not call at 2026-12-02 23:30: on a public holiday "
                             "(last bound by holiday); rule GB/T 45251-2025: no collection "
                             "contact 22:00-08:00 local time",
    }
    for key, reason in samples.items():
        assert known(reason) == key, reason
    assert {k for k, _ in REFUSALS} >= set(samples)
    zh, en = Words("zh-CN"), Words("en")
    for reason in samples.values():
        text = explain(reason, zh)
        assert text.startswith(ZH_REFUSED)
        assert not re.search(r"[a-z]{3,}", text), text
    assert explain(samples["why_callback_rule"], zh) == (
        f"{ZH_REFUSED}我们不能在 2026-12-02 23:30 致电{ZH_COLON}当天是公共假日 (GB/T 45251-2025)")
    odd = "the moon is in the wrong phase"
    assert explain(odd, en) == f"We could not do that: {odd}"
    assert explain(odd, zh) == ZH_UNKNOWN


async def test_a_chinese_borrower_reads_the_engines_refusal_in_chinese(
        portal: Portal) -> None:
    strict = STANDARD.model_copy(update={"plans": STANDARD.plans.model_copy(
        update={"max_days_to_first_payment": 2})})
    loan, token = await portal.hand_over(policy=strict)  # zh-CN
    refused = await portal.post(token, "plan", {"option": "2"})
    assert (refused.status_code, _alert(refused)) == (
        422, f"{ZH_REFUSED}首期还款在 7 天后{ZH_SEMI}最多允许 2 天")
    zone = ZoneInfo(loan.borrower.timezone)
    tomorrow = (await portal.h.env.get_current_time()).astimezone(zone).date() + \
        timedelta(days=1)
    late = await portal.post(token, "callback", {"date": tomorrow.isoformat(),
                                                 "time": "23:30"})
    assert late.status_code == 422
    assert _alert(late) == (f"{ZH_REFUSED}我们不能在 {tomorrow.isoformat()} 23:30 致电"
                            f"{ZH_COLON}不在法律允许的通话时间内 (GB/T 45251-2025)")
    assert _field(late, "csrf"), "the page is shown again, whole"
