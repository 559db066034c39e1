"""The Stripe Checkout profile through Stripe's official library, against a local server
started here that speaks the endpoints the library calls (Checkout Sessions create and
list), with webhooks signed the way Stripe signs them (Stripe-Signature,
HMAC-SHA256 over "<t>.<payload>") and verified by the library: the page's pay form
creates a session for the amount in minor units, a completed session reaches the loan
once, a forged one nothing, and a refund is recorded with an ops alert, the balance
untouched."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from duecourse.cli.app import app
from duecourse.domain.money import Money
from duecourse.payments.base import EventKind
from duecourse.payments.providers import PaymentSettingsError, provider_from_settings
from duecourse.payments.reconcile import reconcile
from duecourse.payments.stripe_profile import StripeProvider
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from tests.test_portal_page import Portal, _rig, settings

WHSEC = "whsec_test_0123456789abcdef"
WEBHOOK = "/v1/payments/webhooks/stripe"


class FakeStripe:
    """The Checkout Sessions and Refunds APIs, in memory: what the library sends, and what
    it reads. `down` makes every GET answer 503 (Stripe unreachable)."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []
        self.down = False
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.keys: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Request-Id", "req_test")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(size).decode())
                fake.requests.append(("POST", self.path, form))
                fake.keys.append(self.headers.get("Authorization", ""))
                if self.path != "/v1/checkout/sessions":
                    return self._send(404, {"error": {"type": "invalid_request_error",
                                                      "message": "no such endpoint"}})
                sid = f"cs_test_{len(fake.sessions) + 1:04d}"
                self._send(200, fake.create(sid, form, self.server.server_port))

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                fake.requests.append(("GET", url.path, query))
                if fake.down:
                    return self._send(503, {"error": {"type": "api_error",
                                                      "message": "unavailable"}})
                if url.path in ("/v1/checkout/sessions", "/v1/refunds"):
                    found = fake.sessions.values() if url.path == "/v1/checkout/sessions" \
                        else fake.refunds
                    data = [s for s in found if _matches(s, query)]
                    return self._send(200, {"object": "list", "data": data,
                                            "has_more": False, "url": url.path})
                self._send(404, {"error": {"type": "invalid_request_error",
                                           "message": f"no such endpoint: {url.path}"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"

    def create(self, sid: str, form: dict[str, list[str]], port: int) -> dict[str, Any]:
        item = "line_items[0][price_data]"
        session = {
            "id": sid, "object": "checkout.session", "mode": form["mode"][0],
            "url": f"http://127.0.0.1:{port}/pay/{sid}",
            "amount_total": int(form[f"{item}[unit_amount]"][0]),
            "currency": form[f"{item}[currency]"][0], "status": "open",
            "payment_status": "unpaid", "payment_intent": None,
            "created": int(time.time()), "success_url": form["success_url"][0],
            "metadata": {"loan_id": form["metadata[loan_id]"][0],
                         "case_id": form["metadata[case_id]"][0]}}
        self.sessions[sid] = session
        return session

    def pay(self, sid: str) -> dict[str, Any]:
        """The borrower paid on Stripe's page: the session completes."""
        self.sessions[sid].update(status="complete", payment_status="paid",
                                  payment_intent=f"pi_{sid}")
        return self.sessions[sid]

    def refund(self, sid: str, at: int | None = None) -> dict[str, Any]:
        """The merchant refunds the session's payment in full: a Refund is made, and the
        charge it returns (what charge.refunded carries). The session stays `paid`."""
        session = self.sessions[sid]
        intent, amount = session["payment_intent"], session["amount_total"]
        self.refunds.append({"id": f"re_{sid}", "object": "refund", "amount": amount,
                             "currency": session["currency"], "payment_intent": intent,
                             "charge": f"ch_{sid}", "status": "succeeded",
                             "created": at or int(time.time())})
        return {"id": f"ch_{sid}", "object": "charge", "payment_intent": intent,
                "amount": amount, "amount_refunded": amount,
                "currency": session["currency"], "refunded": True}


def _matches(obj: dict[str, Any], query: dict[str, list[str]]) -> bool:
    """A list filter as Stripe applies it: created[gte]/[lt] and payment_intent."""
    if "created[gte]" in query and obj["created"] < int(query["created[gte]"][0]):
        return False
    if "created[lt]" in query and obj["created"] >= int(query["created[lt]"][0]):
        return False
    return "payment_intent" not in query or obj["payment_intent"] == query["payment_intent"][0]


def signed(event_type: str, obj: dict[str, Any], secret: str = WHSEC,
           at: int | None = None) -> tuple[bytes, dict[str, str]]:
    """An event as Stripe posts it, with its Stripe-Signature header."""
    now = at or int(time.time())
    body = json.dumps({"id": f"evt_{obj['id']}_{event_type}", "object": "event",
                       "type": event_type, "created": now, "api_version": "2025-01-27",
                       "data": {"object": obj}, "livemode": False}).encode()
    mac = hmac.new(secret.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={now},v1={mac}",
                  "Content-Type": "application/json"}


@pytest.fixture
def stripe_api() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
async def portal(ts_env: WorkflowEnvironment, ledger: Ledger, tmp_path: Path,
                 stripe_api: FakeStripe) -> AsyncIterator[Portal]:
    cfg = settings(payment_provider="stripe", data_dir=tmp_path,
                   stripe_api_key=SecretStr("sk_test_local"), stripe_api_base=stripe_api.base,
                   payment_webhook_secret=SecretStr(WHSEC))
    async for p in _rig(ts_env, ledger, cfg):
        yield p


async def stripe_checkout(portal: Portal, stripe_api: FakeStripe, token: str,
                          amount: str) -> str:
    went = await portal.post(token, "pay", {"amount": amount})
    assert went.status_code == 303, went.text
    sid = went.headers["location"].rsplit("/", 1)[1]
    assert went.headers["location"] == stripe_api.sessions[sid]["url"]
    return sid


async def test_a_completed_checkout_session_reaches_the_loan_once(
        portal: Portal, stripe_api: FakeStripe) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    page = await portal.page(token)
    assert "form-action 'self' https://checkout.stripe.com" in \
        page.headers["content-security-policy"], "the pay form may go on to Stripe"
    sid = await stripe_checkout(portal, stripe_api, token, "312.50")
    _, _, form = stripe_api.requests[-1]
    assert form["line_items[0][price_data][unit_amount]"] == ["31250"], "minor units"
    assert form["line_items[0][price_data][currency]"] == ["usd"]
    assert form["metadata[loan_id]"] == [loan.loan_id]
    assert form["success_url"] == [f"https://collect.example/b/{token}?done=done_pay"]
    assert stripe_api.keys[-1] == "Bearer sk_test_local"
    body, headers = signed("checkout.session.completed", stripe_api.pay(sid))
    first = await portal.http.post(WEBHOOK, content=body, headers=headers)
    assert first.status_code == 200 and first.json() == {"outcome": "accepted"}
    again = await portal.http.post(WEBHOOK, content=body, headers=headers)
    assert again.json() == {"outcome": "duplicate"}
    await portal.h.settle(loan.loan_id)
    assert (await portal.h.client.status(loan.loan_id)).outstanding.amount == \
        Decimal("687.50")
    paid = await portal.h.rows(t.payments, loan_id=loan.loan_id)
    assert [(p["reference"], p["amount"]) for p in paid] == \
        [(f"stripe:{sid}", Decimal("312.50"))]
    [row] = await portal.h.rows(t.provider_payments, loan_id=loan.loan_id)
    assert (row["status"], row["external_id"]) == ("paid", f"pi_{sid}")


async def test_a_webhook_stripe_did_not_sign_changes_nothing(
        portal: Portal, stripe_api: FakeStripe) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    sid = await stripe_checkout(portal, stripe_api, token, "1000.00")
    session = stripe_api.pay(sid)
    for body, headers in (signed("checkout.session.completed", session, "whsec_other"),
                          signed("checkout.session.completed", session,
                                 at=int(time.time()) - 3600)):
        refused = await portal.http.post(WEBHOOK, content=body, headers=headers)
        assert refused.status_code == 401, refused.text
        assert "Stripe-Signature" in refused.json()["detail"]
    unsigned = await portal.http.post(WEBHOOK, content=b"{}")
    assert unsigned.status_code == 401
    await portal.h.settle(loan.loan_id)
    assert await portal.h.rows(t.payments, loan_id=loan.loan_id) == []
    [row] = await portal.h.rows(t.provider_payments, loan_id=loan.loan_id)
    assert row["status"] == "open"


async def test_a_refund_is_recorded_and_alerts_ops_without_touching_the_balance(
        portal: Portal, stripe_api: FakeStripe) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    sid = await stripe_checkout(portal, stripe_api, token, "200.00")
    body, headers = signed("checkout.session.completed", stripe_api.pay(sid))
    assert (await portal.http.post(WEBHOOK, content=body, headers=headers)).json() == \
        {"outcome": "accepted"}
    await portal.h.settle(loan.loan_id)  # the loan has recorded the payment
    charge = {"id": "ch_1", "object": "charge", "payment_intent": f"pi_{sid}",
              "amount_refunded": 20000, "currency": "usd", "refunded": True}
    for _ in range(2):  # Stripe may deliver it twice: one alert
        body, headers = signed("charge.refunded", charge)
        got = await portal.http.post(WEBHOOK, content=body, headers=headers)
        assert got.json() == {"outcome": "refunded"}
    await portal.h.settle(loan.loan_id)
    assert (await portal.h.client.status(loan.loan_id)).outstanding.amount == Decimal("800")
    [row] = await portal.h.rows(t.provider_payments, loan_id=loan.loan_id)
    assert row["status"] == "refunded"
    refunds = [a for a in await portal.h.rows(t.ops_alerts, loan_id=loan.loan_id)
               if "refunded" in a["subject"]]
    assert len(refunds) == 1 and "200.00 USD" in refunds[0]["body"]
    assert "which the loan had already received" in refunds[0]["body"]


async def test_list_payments_reads_the_sessions_of_a_window(stripe_api: FakeStripe) -> None:
    provider = StripeProvider("sk_test_local", WHSEC, stripe_api.base)
    made = await provider.create_checkout("L-1", "C-1", _usd("10.05"), "https://x/back")
    assert made.url.endswith(f"/pay/{made.id}")
    stripe_api.pay(made.id)
    now = datetime.now(UTC)
    [p] = await provider.list_payments(now - timedelta(hours=1), now + timedelta(hours=1))
    assert (p.reference, p.status, p.amount) == (made.id, "paid", _usd("10.05"))
    assert await provider.list_payments(now + timedelta(hours=1), now + timedelta(hours=2)) \
        == []
    event = provider.parse_webhook(*reversed(signed("checkout.session.completed",
                                                    stripe_api.sessions[made.id])))
    assert event is not None and event.kind is EventKind.PAID


def _usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def test_stripe_without_its_keys_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(PaymentSettingsError, match="stripe_api_key"):
        provider_from_settings(settings(payment_provider="stripe", data_dir=tmp_path))
    with pytest.raises(PaymentSettingsError, match="payment_webhook_secret"):
        provider_from_settings(settings(payment_provider="stripe", data_dir=tmp_path,
                                        stripe_api_key=SecretStr("sk_test_local")))


async def test_a_stripe_profile_missing_its_key_offers_no_payment_and_the_page_still_works(
        ts_env: WorkflowEnvironment, ledger: Ledger, tmp_path: Path) -> None:
    cfg = settings(payment_provider="stripe", data_dir=tmp_path,
                   payment_webhook_secret=SecretStr(WHSEC))
    async with aclosing(_rig(ts_env, ledger, cfg)) as rig:  # a failure still stops it
        portal = await anext(rig)
        _, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
        page = await portal.page(token)
        assert page.status_code == 200 and "Amount outstanding" in page.text
        assert 'id="pay-amount"' not in page.text
        refused = await portal.post(token, "pay", {"amount": "10.00"})
        assert refused.status_code == 503
        body, headers = signed("checkout.session.completed", {"id": "cs_x"})
        assert (await portal.http.post(WEBHOOK, content=body, headers=headers)).status_code \
            == 404


async def _alerts(portal: Portal, loan_id: str, word: str) -> list[dict[str, Any]]:
    return [a for a in await portal.h.rows(t.ops_alerts, loan_id=loan_id)
            if word in a["subject"]]


async def test_a_refund_before_the_paid_event_is_placed_and_the_paid_event_then_ignored(
        portal: Portal, stripe_api: FakeStripe) -> None:
    """Stripe may send charge.refunded before checkout.session.completed: the refund is
    placed on its checkout by asking Stripe which session holds the payment intent, so
    the later paid event changes nothing - the money was taken and given back."""
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    sid = await stripe_checkout(portal, stripe_api, token, "250.00")
    session = stripe_api.pay(sid)
    body, headers = signed("charge.refunded", stripe_api.refund(sid))
    got = await portal.http.post(WEBHOOK, content=body, headers=headers)
    assert got.status_code == 200 and got.json() == {"outcome": "refunded"}
    assert ("GET", "/v1/checkout/sessions", {"payment_intent": [f"pi_{sid}"],
                                             "limit": ["10"]}) in stripe_api.requests
    [row] = await portal.h.rows(t.provider_payments, loan_id=loan.loan_id)
    assert (row["status"], row["external_id"]) == ("refunded", f"pi_{sid}")
    body, headers = signed("checkout.session.completed", session)
    late = await portal.http.post(WEBHOOK, content=body, headers=headers)
    assert late.status_code == 200 and late.json() == {"outcome": "ignored"}
    await portal.h.settle(loan.loan_id)
    assert (await portal.h.client.status(loan.loan_id)).outstanding.amount == Decimal("1000")
    assert await portal.h.rows(t.payments, loan_id=loan.loan_id) == []
    assert await _alerts(portal, loan.loan_id, "refunded") == [], "the loan never took it"


async def test_a_refund_that_cannot_be_placed_is_answered_so_stripe_sends_it_again(
        portal: Portal, stripe_api: FakeStripe) -> None:
    """Stripe unreachable: 503; a session of ours the ledger has no row for: 409 (both
    retried by Stripe); a payment intent no session of ours holds: 200 `unknown`."""
    provider = StripeProvider("sk_test_local", WHSEC, stripe_api.base)
    made = await provider.create_checkout("L-x", "C-x", _usd("5.00"), "https://x/back")
    stripe_api.pay(made.id)  # a session of ours whose row is not in this ledger
    body, headers = signed("charge.refunded", stripe_api.refund(made.id))
    unplaced = await portal.http.post(WEBHOOK, content=body, headers=headers)
    assert unplaced.status_code == 409, unplaced.text
    assert "deliver the event again" in unplaced.json()["detail"]
    stripe_api.down = True
    down = await portal.http.post(WEBHOOK, content=body, headers=headers)
    assert down.status_code == 503, down.text
    assert "deliver the event again" in down.json()["detail"]
    stripe_api.down = False
    foreign = {"id": "ch_other", "object": "charge", "payment_intent": "pi_not_checkout",
               "amount_refunded": 100, "currency": "usd", "refunded": True}
    body, headers = signed("charge.refunded", foreign)
    got = await portal.http.post(WEBHOOK, content=body, headers=headers)
    assert got.status_code == 200 and got.json() == {"outcome": "unknown"}


async def test_a_completed_session_still_paying_remembers_its_payment_intent(
        portal: Portal, stripe_api: FakeStripe) -> None:
    """A delayed method: completed while unpaid keeps the payment intent, so a refund
    that comes next is found by it without asking Stripe."""
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    sid = await stripe_checkout(portal, stripe_api, token, "100.00")
    session = {**stripe_api.sessions[sid], "status": "complete",
               "payment_status": "unpaid", "payment_intent": f"pi_{sid}"}
    body, headers = signed("checkout.session.completed", session)
    assert (await portal.http.post(WEBHOOK, content=body, headers=headers)).json() == \
        {"outcome": "pending"}
    [row] = await portal.h.rows(t.provider_payments, loan_id=loan.loan_id)
    assert (row["status"], row["external_id"]) == ("open", f"pi_{sid}")
    stripe_api.sessions[sid].update(payment_intent=f"pi_{sid}")
    asked = len(stripe_api.requests)
    body, headers = signed("charge.refunded", stripe_api.refund(sid))
    assert (await portal.http.post(WEBHOOK, content=body, headers=headers)).json() == \
        {"outcome": "refunded"}
    assert len(stripe_api.requests) == asked, "found by the intent it remembered"


async def test_an_amount_or_currency_other_than_the_checkouts_alerts_ops(
        portal: Portal, stripe_api: FakeStripe) -> None:
    """Another amount reaches the loan (the amount taken) with an alert; another currency
    does not reach it at all (held), with an alert, however often it is delivered."""
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    short = await stripe_checkout(portal, stripe_api, token, "300.00")
    body, headers = signed("checkout.session.completed",
                           {**stripe_api.pay(short), "amount_total": 29000})
    assert (await portal.http.post(WEBHOOK, content=body, headers=headers)).json() == \
        {"outcome": "accepted"}
    euros = await stripe_checkout(portal, stripe_api, token, "100.00")
    for _ in range(2):
        body, headers = signed("checkout.session.completed",
                               {**stripe_api.pay(euros), "currency": "eur"})
        got = await portal.http.post(WEBHOOK, content=body, headers=headers)
        assert got.status_code == 200 and got.json() == {"outcome": "held"}
    await portal.h.settle(loan.loan_id)
    paid = await portal.h.rows(t.payments, loan_id=loan.loan_id)
    assert [(p["reference"], p["amount"]) for p in paid] == \
        [(f"stripe:{short}", Decimal("290.00"))]
    [amount] = await _alerts(portal, loan.loan_id, "not 300.00 USD")
    assert "took 290.00 USD" in amount["body"] and "receives the amount taken" in \
        amount["body"]
    [currency] = await _alerts(portal, loan.loan_id, "paid in EUR")
    assert "was not reported to the loan" in currency["body"]
    rows = {r["checkout_id"]: r["status"]
            for r in await portal.h.rows(t.provider_payments, loan_id=loan.loan_id)}
    assert rows == {short: "paid", euros: "held"}


async def test_reconciliation_looks_back_for_late_payments_and_sees_refunds(
        portal: Portal, stripe_api: FakeStripe) -> None:
    """A session created days ago and paid today by a delayed method, its webhook lost,
    is unknown to the ledger; a payment a loan took that Stripe refunded today is unknown
    to the provider, with the refund as the reason - the session itself still says paid."""
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    days_ago = int(time.time()) - 3 * 86400
    late = await stripe_checkout(portal, stripe_api, token, "40.00")
    stripe_api.sessions[late].update(created=days_ago)
    stripe_api.pay(late)  # paid today; its webhook never came
    taken = await stripe_checkout(portal, stripe_api, token, "60.00")
    stripe_api.sessions[taken].update(created=days_ago)
    body, headers = signed("checkout.session.completed", stripe_api.pay(taken))
    assert (await portal.http.post(WEBHOOK, content=body, headers=headers)).json() == \
        {"outcome": "accepted"}
    stripe_api.refund(taken)  # refunded at the dashboard; its webhook lost as well
    await portal.h.settle(loan.loan_id)
    provider = StripeProvider("sk_test_local", WHSEC, stripe_api.base)
    report = (await reconcile(provider, portal.h.ledger.engine,
                              datetime.now(UTC).date())).as_json()
    assert [(d["reference"], d["amount"], d["why"]) for d in report["unknown_to_ledger"]] \
        == [(f"stripe:{late}", "40.00", "the provider took it; no loan received it")]
    [refunded] = report["unknown_to_provider"]
    assert (refunded["reference"], refunded["amount"]) == (f"stripe:{taken}", "60.00")
    assert refunded["why"] == ("a loan received it; the provider refunded 60.00 USD of it "
                               f"on {datetime.now(UTC).date()}")
    assert ("GET", "/v1/refunds") in [(m, p) for m, p, _ in stripe_api.requests]


async def test_a_platform_may_not_report_a_payment_under_the_providers_reference(
        portal: Portal, stripe_api: FakeStripe) -> None:
    """A platform's `stripe:...` report would make Stripe's real webhook a duplicate: it
    is refused, in words, and so is the CLI's."""
    loan, _ = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    _, key = await KeyStore(portal.h.ledger.engine).create("platform-pay", "platform")
    refused = await portal.http.post(
        f"/v1/loans/{loan.loan_id}/payments", headers={"Authorization": f"Bearer {key}"},
        json={"reference": "stripe:cs_test_0001", "amount": "10.00"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == (
        "payment references starting with 'stripe:' are reserved for the stripe payment "
        "provider's webhook; report this payment under a reference of your own")
    allowed = await portal.http.post(
        f"/v1/loans/{loan.loan_id}/payments", headers={"Authorization": f"Bearer {key}"},
        json={"reference": "sandbox:not-configured", "amount": "10.00"})
    assert allowed.status_code == 202, allowed.text
    cli = await asyncio.to_thread(CliRunner().invoke, app, [
        "pay", loan.loan_id, "--amount", "10", "--reference", "stripe:cs_x"],
        env={"DUECOURSE_PAYMENT_PROVIDER": "stripe"})
    assert cli.exit_code == 1, cli.output
    assert "reserved for the stripe payment provider's webhook" in " ".join(
        cli.output.split())


async def test_other_integrations_sessions_on_the_account_are_ignored_not_a_500(
        portal: Portal) -> None:
    """Stripe sends every event of the account: a setup-mode session (no amount, no
    currency) completing or expiring is answered `ignored`, so Stripe never retries it
    for days nor disables the endpoint our payments need."""
    setup = {"id": "cs_setup_other", "object": "checkout.session", "mode": "setup",
             "amount_total": None, "currency": None, "payment_status": "no_payment_required",
             "payment_intent": None, "status": "complete"}
    for event_type, obj in (("checkout.session.completed", setup),
                            ("checkout.session.expired", {**setup, "status": "expired"}),
                            ("checkout.session.completed",
                             {**setup, "mode": "payment", "amount_total": 0,
                              "currency": "usd"})):
        body, headers = signed(event_type, obj)
        answer = await portal.http.post(WEBHOOK, content=body, headers=headers)
        assert answer.status_code == 200, (event_type, answer.text)
        assert answer.json() == {"outcome": "ignored"}, (event_type, obj)
