"""The borrower's page against the real app and a real worker on the time-skipping
server: a handed-over loan's messages carry the link, the page shows the balance in the
borrower's language, and what the borrower does there changes the loan through the
engine's own validators, recorded as the borrower via the portal. Wrong, expired,
tampered and closed-case links all get one neutral page; CSRF and rate limits hold."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from duecourse.activities import build_activities
from duecourse.activities.messaging import MessagingActivities
from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.channels.routing import channels_from_settings
from duecourse.domain.case.commands import CancelRequest
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Channel, Policy
from duecourse.portal.links import PortalLinks
from duecourse.portal.tokens import PortalSigner
from duecourse.runtime import build_worker
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from tests.conftest import Harness, TrackingClient
from tests.factories import daytime_zone, make_loan
from tests.test_workflow_negotiation import STANDARD

SECRET = "portal-page-test-secret-0123456789"
LINK = re.compile(r"https://collect\.example/b/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")


def settings(**kwargs: Any) -> Settings:
    return Settings(lender_name="Acme Lending", lender_contact="400-800-1234",
                    webhook_allow_private=True, portal_secret=SecretStr(SECRET),
                    public_url="https://collect.example", **kwargs)


@dataclass
class Portal:
    h: Harness
    http: httpx.AsyncClient

    async def hand_over(self, policy: Policy = STANDARD, **kwargs: Any) -> tuple[LoanIntake,
                                                                                 str]:
        """Start a loan, let its first messages go out, and return it with the token of
        the link its first message carries."""
        now = await self.h.env.get_current_time()
        loan = make_loan(now, dpd=2, tz=daytime_zone(now), **kwargs)
        await self.h.client.start(loan, policy)
        await self.h.env.sleep(timedelta(minutes=5))
        await self.h.settle(loan.loan_id)
        sent = await self.h.rows(t.contact_attempts, loan_id=loan.loan_id)
        keys = {a["idempotency_key"] for a in sent if a["status"] == "sent"}
        bodies = [m["body"] for m in await self.h.rows(t.outbox_messages)
                  if m["idempotency_key"] in keys]
        assert bodies, "the loan's first messages went to the outbox"
        assert all(len(LINK.findall(b)) == 1 for b in bodies), "one link in every message"
        tokens = [LINK.findall(b)[0] for b in bodies]
        signer, now = PortalSigner(SECRET.encode()), await self.h.env.get_current_time()
        found = [signer.verify(tok, now) for tok in tokens]
        opened = {(f.loan_id, f.case_id) for f in found if f is not None}
        assert None not in found
        assert len(opened) == 1 and opened.pop()[0] == loan.loan_id, \
            "each link opens this loan's case (each valid from its own message's time)"
        return loan, tokens[-1]

    async def page(self, token: str, **headers: str) -> httpx.Response:
        return await self.http.get(f"/b/{token}", headers=headers)

    async def post(self, token: str, action: str, data: dict[str, Any],
                   csrf: bool = True) -> httpx.Response:
        if csrf:
            data = {**data, "csrf": _field(await self.page(token), "csrf")}
        return await self.http.post(f"/b/{token}/{action}", data=data)

    async def actors(self, loan_id: str) -> dict[str, tuple[str, str]]:
        return {e["kind"]: (e["actor_kind"], e["actor_id"])
                for e in await self.h.rows(t.audit_events, loan_id=loan_id)}


def _field(page: httpx.Response, name: str, attr: str = "value") -> str:
    match = re.search(rf'name="{name}"[^>]*?{attr}="([^"]*)"', page.text) or \
        re.search(rf'{attr}="([^"]*)"[^>]*?name="{name}"', page.text)
    assert match, f"no {name} on the page"
    return html.unescape(match.group(1))


def _alert(page: httpx.Response) -> str:
    """The refusal the page shows, as the borrower reads it."""
    match = re.search(r'role="alert"><p>(.*?)</p>', page.text, re.S)
    return " ".join(html.unescape(match.group(1)).split()) if match else ""


def _promise_max(page: httpx.Response) -> date:
    return date.fromisoformat(re.search(r'id="promise-date"[^>]*max="([\d-]+)"',
                                        page.text).group(1))  # type: ignore[union-attr]


async def _rig(env: WorkflowEnvironment, ledger: Ledger,
               cfg: Settings) -> AsyncIterator[Portal]:
    queue = f"tq-{uuid4().hex}"
    client = TrackingClient(env, queue)
    router = channels_from_settings(cfg, ledger)
    messaging = MessagingActivities(ledger, router, cfg.lender_name, cfg.lender_contact,
                                    portal=PortalLinks.from_settings(cfg))
    acts = [a for a in build_activities(ledger, router, cfg.lender_name, cfg.lender_contact)
            if getattr(a, "__name__", "") not in ("send_message", "settle_send")]
    acts += [messaging.send_message, messaging.settle_send]
    services = Services(client=client, ledger=ledger, keys=KeyStore(ledger.engine),
                        settings=cfg)
    async with build_worker(env.client, ledger, cfg, queue, activities=acts):
        try:
            async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=create_app(cfg, services)),
                    base_url="http://api") as http:
                yield Portal(Harness(env, client, ledger, queue), http)
        finally:
            await client.end_all()


@pytest.fixture
async def portal(ts_env: WorkflowEnvironment, ledger: Ledger) -> AsyncIterator[Portal]:
    async for p in _rig(ts_env, ledger, settings()):
        yield p


@pytest.fixture
async def tight(ts_env: WorkflowEnvironment, ledger: Ledger) -> AsyncIterator[Portal]:
    async for p in _rig(ts_env, ledger, settings(portal_requests_per_token=3,
                                                 portal_requests_per_ip=1000)):
        yield p


# ------------------------------------------------------------------ the link and the page
async def test_a_us_message_carries_the_link_and_keeps_its_disclosures(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en",
                                         name="Sam Lee", phones=["+12025550143"])
    sent = {a["idempotency_key"]: a for a in await portal.h.rows(
        t.contact_attempts, loan_id=loan.loan_id) if a["status"] == "sent"}
    texts = [m for m in await portal.h.rows(t.outbox_messages)
             if m["idempotency_key"] in sent and m["channel"] == "sms"]
    assert texts
    for m in texts:
        flat = " ".join(m["body"].split())
        assert "This is a communication from a debt collector." in flat
        assert flat.endswith("Reply STOP to stop text messages."), "the opt-out stays last"
        assert flat.index("/b/") < flat.index("This is a communication from a debt")
    page = await portal.page(token)
    assert page.status_code == 200
    assert '<html lang="en">' in page.text and "Amount outstanding" in page.text
    assert "$1,000.00" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text


async def test_the_page_speaks_chinese_and_shows_only_what_the_borrower_needs(
        portal: Portal) -> None:
    loan, token = await portal.hand_over()  # zh-CN, CNY, a phone, an address, an email
    page = await portal.page(token)
    assert page.status_code == 200, page.text
    assert '<html lang="zh-CN">' in page.text
    assert "待还金额" in page.text and "¥1,000.00" in page.text
    assert "分期还款" in page.text and "承诺还款" in page.text and "这不是我的债务" in page.text
    assert "13800138000" not in page.text and "•••••••••00" in page.text, "masked phone"
    for private in ("Nanjing Road", "li.wei@example.com", "Li Wei", loan.borrower.borrower_id):
        assert private not in page.text
    assert "<script" not in page.text and "https://" not in page.text, "no JS, no CDN"
    assert len(re.findall(r'name="csrf"', page.text)) == page.text.count("<form "), \
        "every form carries the CSRF value"


# ------------------------------------------------------------------ actions
async def test_a_promise_on_the_page_is_the_borrowers_through_the_portal(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    due = _promise_max(await portal.page(token)) - timedelta(days=2)
    done = await portal.post(token, "promise", {"amount": "250.00", "date": due.isoformat()})
    assert done.status_code == 303 and done.headers["location"].endswith("?done=done_promise")
    after = await portal.http.get(done.headers["location"])
    assert "Your promise to pay is recorded" in after.text
    await portal.h.settle(loan.loan_id)
    promise = (await portal.h.client.status(loan.loan_id)).active_promise
    assert promise is not None and (promise.amount, promise.due_date) == (250, due)
    assert (promise.actor.kind, promise.actor.id) == ("borrower", "portal")
    assert ("borrower", "portal") in (await portal.actors(loan.loan_id)).values()
    assert "Promise to pay</button>" not in after.text, "no second promise is offered"


async def test_an_engine_refusal_shows_its_reason_and_changes_nothing(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    due = _promise_max(await portal.page(token))
    late = due + timedelta(days=1)
    refused = await portal.post(token, "promise", {"amount": "500.00",
                                                   "date": late.isoformat()})
    assert refused.status_code == 422
    days = (due - (await portal.h.client.status(loan.loan_id)).as_of.astimezone(
        ZoneInfo(loan.borrower.timezone)).date()).days
    assert _alert(refused) == (f"We could not do that: the date is more than {days} days "
                               f"ahead; the latest we can accept is {due.isoformat()}")
    over = await portal.post(token, "promise", {"amount": "5000.00", "date": due.isoformat()})
    assert (over.status_code, _alert(over)) == (
        422, "Amount: enter no more than the amount outstanding."), "the page's own check"
    bad = await portal.post(token, "promise", {"amount": "lots", "date": due.isoformat()})
    assert (bad.status_code, _alert(bad)) == (422, "Amount: enter a number such as 250.00.")
    assert (await portal.h.client.status(loan.loan_id)).active_promise is None


async def test_choosing_a_plan_agrees_it_as_the_borrower(portal: Portal) -> None:
    loan, token = await portal.hand_over()
    page = await portal.page(token)
    assert 'value="3"' in page.text
    done = await portal.post(token, "plan", {"option": "3"})
    assert done.status_code == 303, done.text
    await portal.h.settle(loan.loan_id)
    plan = (await portal.h.client.status(loan.loan_id)).plan
    assert plan is not None and len(plan.instalments) == 3
    assert sum(i.amount for i in plan.instalments) == 1000
    assert (plan.actor.kind, plan.actor.id) == ("borrower", "portal")
    assert "您的分期计划正在执行" in (await portal.page(token)).text


async def test_a_plan_the_engine_refuses_shows_the_engines_reason(portal: Portal) -> None:
    """The loan runs on terms stricter than the policy file the page reads (same name and
    version: a policy changed after hand-over): the engine's own limit decides."""
    strict = STANDARD.model_copy(update={"plans": STANDARD.plans.model_copy(
        update={"max_days_to_first_payment": 2})})
    loan, token = await portal.hand_over(policy=strict, currency="USD", jurisdiction="US",
                                         language="en")
    refused = await portal.post(token, "plan", {"option": "2"})
    assert refused.status_code == 422
    assert _alert(refused) == ("We could not do that: the first instalment is 7 days away; "
                               "at most 2 allowed")
    assert (await portal.h.client.status(loan.loan_id)).plan is None


async def test_a_dispute_freezes_collection_as_the_borrowers_written_dispute(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    done = await portal.post(token, "dispute", {"reason": "not_mine"})
    assert done.status_code == 303, done.text
    await portal.h.settle(loan.loan_id)
    status = await portal.h.client.status(loan.loan_id)
    assert status.standing.dispute_opened_at is not None and status.standing.dispute_written
    assert status.frozen is not None
    [opened] = [e for e in await portal.h.rows(t.audit_events, loan_id=loan.loan_id)
                if e["kind"] == "dispute_opened"]
    assert (opened["actor_kind"], opened["actor_id"]) == ("borrower", "portal")
    assert "not mine" in opened["summary"] + str(opened["data"])
    assert "Dispute the debt</button>" not in (await portal.page(token)).text


async def test_opting_out_on_the_page_stops_the_channel_and_reaches_the_consent_ledger(
        portal: Portal) -> None:
    loan, token = await portal.hand_over()
    other, _ = await portal.hand_over(borrower_id=loan.borrower.borrower_id)
    done = await portal.post(token, "preferences", {"opt_out": ["sms"]})
    assert done.status_code == 303, done.text
    await portal.h.settle(loan.loan_id)
    status = await portal.h.client.status(loan.loan_id)
    assert Channel.SMS in status.standing.opted_out
    assert Channel.EMAIL not in status.standing.opted_out
    sibling = await portal.h.client.status(other.loan_id)
    assert Channel.SMS in sibling.standing.opted_out, "the borrower's other loan stops too"
    [row] = await portal.h.rows(t.consents, borrower_id=loan.borrower.borrower_id)
    assert (row["channel"], row["action"], row["source"]) == ("sms", "withdrawn", "portal")
    assert (row["actor_kind"], row["actor_id"]) == ("borrower", "portal")
    assert 'value="sms"' not in (await portal.page(token)).text


async def test_a_settlement_deeper_than_the_agent_limit_goes_to_a_supervisor(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    page = await portal.page(token)
    assert 'value="agent"' in page.text and 'value="supervisor"' in page.text
    done = await portal.post(token, "settle", {"option": "supervisor"})
    assert done.status_code == 303 and done.headers["location"].endswith(
        "done=done_settle_review")
    await portal.h.settle(loan.loan_id)
    status = await portal.h.client.status(loan.loan_id)
    assert status.settlement is not None
    assert (status.settlement.status, status.settlement.offered_by.id) == (
        "PENDING_APPROVAL", "portal")
    assert [t.kind for t in status.open_tasks].count("approve_settlement") == 1
    assert "waiting for a supervisor" in (await portal.page(token)).text


async def test_reporting_hardship_pauses_collection(portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    done = await portal.post(token, "hardship", {})
    assert done.status_code == 303, done.text
    await portal.h.settle(loan.loan_id)
    status = await portal.h.client.status(loan.loan_id)
    [hold] = [h for h in status.standing.holds if h.kind == "hardship"]
    assert hold.covers(status.as_of) and status.frozen is not None
    assert ("borrower", "portal") in (await portal.actors(loan.loan_id)).values()
    again = await portal.page(token)
    assert "Report financial difficulty</button>" not in again.text
    assert "Collection is paused on this account" in again.text


async def test_a_call_back_at_a_lawful_time_becomes_an_agents_task(portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    zone = ZoneInfo(loan.borrower.timezone)
    tomorrow = (await portal.h.env.get_current_time()).astimezone(zone).date() + \
        timedelta(days=1)
    late = await portal.post(token, "callback", {"date": tomorrow.isoformat(),
                                                 "time": "23:30"})
    assert late.status_code == 422
    assert _alert(late).startswith(f"We could not do that: we may not call at "
                                   f"{tomorrow.isoformat()} 23:30: "), _alert(late)
    done = await portal.post(token, "callback", {"date": tomorrow.isoformat(),
                                                 "time": "10:15"})
    assert done.status_code == 303, _alert(done)
    await portal.h.settle(loan.loan_id)
    [task] = [t for t in (await portal.h.client.status(loan.loan_id)).open_tasks
              if t.subject == "callback"]
    assert task.kind == "call_borrower"
    assert task.due_at == datetime.combine(tomorrow, time(10, 15), tzinfo=zone)
    assert "Ask for a call back</button>" not in (await portal.page(token)).text
    [row] = [e for e in await portal.h.rows(t.audit_events, loan_id=loan.loan_id)
             if task.task_id in e["summary"]]
    assert (row["actor_kind"], row["actor_id"]) == ("borrower", "portal")


# ------------------------------------------------------------------ safe by default
async def test_a_post_without_the_csrf_value_is_refused_and_changes_nothing(
        portal: Portal) -> None:
    loan, token = await portal.hand_over()
    for data in ({}, {"csrf": "forged"}):
        refused = await portal.post(token, "dispute", {"reason": "not_mine", **data},
                                    csrf=False)
        assert refused.status_code == 403
    await portal.h.settle(loan.loan_id)
    assert (await portal.h.client.status(loan.loan_id)).standing.dispute_opened_at is None


async def test_wrong_expired_tampered_and_closed_links_get_one_neutral_page(
        portal: Portal) -> None:
    loan, token = await portal.hand_over()
    closed, other = await portal.hand_over()
    signer = PortalSigner(SECRET.encode())
    now = await portal.h.env.get_current_time()
    expired = signer.mint(loan.loan_id, "any-case", now - timedelta(days=40),
                          timedelta(days=30))
    wrong_case = signer.mint(loan.loan_id, "case-that-never-was", now, timedelta(days=30))
    no_loan = signer.mint("L-no-such-loan", "case-x", now, timedelta(days=30))
    forged = PortalSigner(b"not-our-secret-0123456789").mint(loan.loan_id, "c", now,
                                                             timedelta(days=30))
    encoded, signature = token.split(".")
    tampered = f"{encoded[:-1]}{'A' if encoded[-1] != 'A' else 'B'}.{signature}"
    await portal.h.client.cancel(closed.loan_id, CancelRequest(reason="repaid elsewhere"))
    await portal.h.client.result(closed.loan_id)  # its case is closed: the link is dead
    later = closed.model_copy(update={"due_date": closed.due_date + timedelta(days=1)})
    await portal.h.client.start(later, STANDARD)  # a new delinquency: a new case
    await portal.h.settle(later.loan_id)
    assert (await portal.h.client.status(later.loan_id)).outcome is None
    answers = [await portal.page(bad) for bad in
               (expired, wrong_case, no_loan, forged, tampered, "garbage", other)]
    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1, "nothing tells one failure from another"
    assert "This link is not valid" in answers[0].text and "1,000" not in answers[0].text
    posted = await portal.http.post(f"/b/{other}/promise", data={"amount": "1"})
    assert (posted.status_code, posted.text) == (404, answers[0].text)
    zh = await portal.page("garbage", **{"Accept-Language": "zh-CN,zh;q=0.9"})
    assert zh.status_code == 404 and "此链接无效" in zh.text
    assert (await portal.page(token)).status_code == 200, "the open case's link still works"


async def test_too_many_requests_for_one_link_are_refused(tight: Portal) -> None:
    _, token = await tight.hand_over()
    answers = [(await tight.page(token)).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    assert (await tight.page("another-link")).status_code == 404, "its own count"


async def test_the_policy_sets_how_long_its_links_stay_valid(portal: Portal) -> None:
    """A policy's `portal_link_days` is the lifetime of the links in its messages; a policy
    without one takes the setting's (30 days)."""
    signer = PortalSigner(SECRET.encode())
    for policy, days in ((STANDARD.model_copy(update={"portal_link_days": 5}), 5),
                         (STANDARD, 30)):
        start = await portal.h.env.get_current_time()
        _, token = await portal.hand_over(policy)
        found = signer.verify(token, await portal.h.env.get_current_time())
        assert found is not None
        lifetime = found.expires_at - start
        # expiries are whole seconds
        assert timedelta(days=days, seconds=-1) <= lifetime <= timedelta(days=days, minutes=10)
