"""Paying from the borrower's page through the embedded sandbox provider, against the real
app, a real worker on the time-skipping server and a real ledger: the page's pay form
opens a sandbox checkout, its Pay button posts a signed webhook to our endpoint and the
loan receives the payment once, however often the webhook comes; Decline and Refund are
recorded and never reduce the balance (a refund raises an ops alert instead)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from duecourse.api.routes.payments import provider_of
from duecourse.payments.base import EventKind
from duecourse.payments.providers import PaymentSettingsError, provider_from_settings
from duecourse.payments.sandbox import SandboxProvider
from duecourse.store import Ledger
from duecourse.store import tables as t
from tests.test_portal_page import Portal, _alert, _field, _rig, settings

WEBHOOK = "/v1/payments/webhooks/sandbox"


@pytest.fixture
async def portal(ts_env: WorkflowEnvironment, ledger: Ledger,
                 tmp_path: Path) -> AsyncIterator[Portal]:
    cfg = settings(payment_provider="sandbox", data_dir=tmp_path, payment_sandbox_allowed=True,
                   payment_webhook_secret=SecretStr("sandbox-webhook-test-secret"))
    async for p in _rig(ts_env, ledger, cfg):
        yield p


def sandbox_of(portal: Portal) -> SandboxProvider:
    provider = provider_of(portal.http._transport.app)  # type: ignore[attr-defined]
    assert isinstance(provider, SandboxProvider)
    return provider


async def checkout(portal: Portal, token: str, amount: str) -> str:
    """Pay `amount` on the page; returns the sandbox checkout's path it redirects to."""
    went = await portal.post(token, "pay", {"amount": amount})
    assert went.status_code == 303, went.text
    path = urlsplit(went.headers["location"]).path
    assert re.fullmatch(r"/sandbox-pay/sbx_[\w-]+", path), path
    return path


async def press(portal: Portal, path: str, button: str) -> str:
    """Press a button on the sandbox checkout page; returns where it sends the borrower."""
    page = await portal.http.get(path)
    assert page.status_code == 200
    done = await portal.http.post(f"{path}/{button}", data={"csrf": _field(page, "csrf")})
    assert done.status_code == 303
    return done.headers["location"]


async def test_paying_part_on_the_page_reaches_the_loan_once_however_often_the_webhook_comes(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    page = await portal.page(token)
    assert "Pay now" in page.text
    assert re.search(r'id="pay-amount"[^>]*value="1000.00"', page.text), "pay in full offered"
    path = await checkout(portal, token, "400.00")
    back = await press(portal, path, "paid")
    assert back == f"https://collect.example/b/{token}?done=done_pay"
    assert "Your payment shows here" in (await portal.http.get(urlsplit(back).path + "?done="
                                                               "done_pay")).text
    await portal.h.settle(loan.loan_id)
    status = await portal.h.client.status(loan.loan_id)
    assert status.outstanding.amount == Decimal("600.00")
    checkout_id = path.rsplit("/", 1)[1]
    # the provider delivers it again, twice: once by its own retry, once as a fresh post
    assert (await press(portal, path, "paid")) == back
    headers, body = sandbox_of(portal).settle(checkout_id, EventKind.PAID)
    again = await portal.http.post(WEBHOOK, content=body, headers=headers)
    assert again.status_code == 200 and again.json() == {"outcome": "duplicate"}
    await portal.h.settle(loan.loan_id)
    assert (await portal.h.client.status(loan.loan_id)).outstanding.amount == Decimal("600")
    paid = await portal.h.rows(t.payments, loan_id=loan.loan_id)
    assert [(p["reference"], p["amount"]) for p in paid] == \
        [(f"sandbox:{checkout_id}", Decimal("400.00"))]
    [row] = await portal.h.rows(t.provider_payments, loan_id=loan.loan_id)
    assert row["status"] == "paid" and row["reported_at"] is not None


async def test_a_declined_payment_is_recorded_and_leaves_the_balance(portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    path = await checkout(portal, token, "1000.00")
    await press(portal, path, "failed")
    await portal.h.settle(loan.loan_id)
    assert (await portal.h.client.status(loan.loan_id)).outstanding.amount == Decimal("1000")
    assert await portal.h.rows(t.payments, loan_id=loan.loan_id) == []
    [row] = await portal.h.rows(t.provider_payments, loan_id=loan.loan_id)
    assert (row["status"], row["reported_at"]) == ("failed", None)


async def test_a_refund_is_recorded_alerts_ops_and_does_not_touch_the_balance(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    path = await checkout(portal, token, "250.00")
    await press(portal, path, "paid")
    assert await press(portal, path, "refunded") == path
    headers, body = sandbox_of(portal).settle(path.rsplit("/", 1)[1], EventKind.REFUNDED)
    assert (await portal.http.post(WEBHOOK, content=body, headers=headers)).json() == \
        {"outcome": "refunded"}
    await portal.h.settle(loan.loan_id)
    assert (await portal.h.client.status(loan.loan_id)).outstanding.amount == Decimal("750")
    [row] = await portal.h.rows(t.provider_payments, loan_id=loan.loan_id)
    assert row["status"] == "refunded" and row["refunded_at"] is not None
    alerts = await portal.h.rows(t.ops_alerts, loan_id=loan.loan_id)
    refunds = [a for a in alerts if "refunded" in a["subject"]]
    assert len(refunds) == 1, "one alert, however often the refund is delivered"
    assert "balance was not changed back" in refunds[0]["body"]


async def test_forged_webhooks_and_forms_change_nothing(portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    path = await checkout(portal, token, "1000.00")
    checkout_id = path.rsplit("/", 1)[1]
    headers, body = sandbox_of(portal).settle(checkout_id, EventKind.PAID)
    forged = body.replace(b'"1000.00"', b'"1.00"')
    bad = await portal.http.post(WEBHOOK, content=forged, headers=headers)
    assert bad.status_code == 401 and "does not match" in bad.json()["detail"]
    stale = SandboxProvider(b"sandbox-webhook-test-secret", "", Path("/nonexistent"))
    old = stale.sign(body, datetime(2020, 1, 1, tzinfo=UTC))
    assert (await portal.http.post(WEBHOOK, content=body, headers=old)).status_code == 401
    other = SandboxProvider(b"another-secret", "", Path("/nonexistent"))
    wrong = other.sign(body, datetime.now(UTC))
    assert (await portal.http.post(WEBHOOK, content=body, headers=wrong)).status_code == 401
    no_csrf = await portal.http.post(f"{path}/paid", data={"csrf": "x"})
    assert no_csrf.status_code == 403
    await portal.h.settle(loan.loan_id)
    assert (await portal.h.client.status(loan.loan_id)).outstanding.amount == Decimal("1000")
    assert await portal.h.rows(t.payments, loan_id=loan.loan_id) == []


async def test_more_than_the_balance_or_no_number_is_refused_in_words(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    over = await portal.post(token, "pay", {"amount": "1000.01"})
    assert over.status_code == 422
    assert _alert(over) == "Amount: enter no more than the amount outstanding."
    word = await portal.post(token, "pay", {"amount": "all of it"})
    assert word.status_code == 422 and _alert(word).startswith("Amount: enter a number")
    assert await portal.h.rows(t.provider_payments, loan_id=loan.loan_id) == []


async def test_paying_in_full_closes_the_loan_and_a_later_payment_goes_to_ops(
        portal: Portal) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    first = await checkout(portal, token, "1000.00")
    second = await checkout(portal, token, "1000.00")  # a second tab, paid after the first
    await press(portal, first, "paid")
    await portal.h.settle(loan.loan_id)
    assert (await portal.h.client.result(loan.loan_id)).outcome == "PAID"
    headers, body = sandbox_of(portal).settle(second.rsplit("/", 1)[1], EventKind.PAID)
    late = await portal.http.post(WEBHOOK, content=body, headers=headers)
    assert late.status_code == 200 and late.json() == {"outcome": "loan_closed"}
    assert len(await portal.h.rows(t.payments, loan_id=loan.loan_id)) == 1
    [alert] = [a for a in await portal.h.rows(t.ops_alerts, loan_id=loan.loan_id)
               if "after collection ended" in a["subject"]]
    assert "did not receive it" in alert["body"]


def test_the_sandbox_is_refused_off_this_machine_unless_allowed(tmp_path: Path) -> None:
    """It takes no money: served at a public address it would let anyone pay a loan with
    a button, so it runs only at a loopback address or when a setting says so."""
    public = settings(payment_provider="sandbox", data_dir=tmp_path)
    with pytest.raises(PaymentSettingsError, match=r"payment_sandbox_allowed \("
                       r"DUECOURSE_PAYMENT_SANDBOX_ALLOWED=true\)") as refused:
        provider_from_settings(public)
    assert "https://collect.example" in str(refused.value)
    for url in ("http://127.0.0.1:8000", "http://localhost:9000", "http://[::1]:8000"):
        local = public.model_copy(update={"public_url": url})
        assert isinstance(provider_from_settings(local), SandboxProvider), url
    for url in ("http://127.0.0.1.example.com", "http://10.0.0.5:8000"):
        with pytest.raises(PaymentSettingsError):
            provider_from_settings(public.model_copy(update={"public_url": url}))
    allowed = public.model_copy(update={"payment_sandbox_allowed": True})
    assert isinstance(provider_from_settings(allowed), SandboxProvider)


def test_the_checkout_pages_csrf_value_is_not_made_with_the_webhook_signing_key() -> None:
    secret = b"sandbox-webhook-test-secret"
    sandbox = SandboxProvider(secret, "", Path("/nonexistent"))
    with_signing_key = hmac.new(secret, b"csrf:sbx_1", hashlib.sha256).hexdigest()
    assert sandbox.csrf_for("sbx_1") != with_signing_key
    assert sandbox.csrf_for("sbx_1") == SandboxProvider(secret, "", Path("/x")).csrf_for(
        "sbx_1"), "stable: a page opened before a restart still posts"
