"""The daily reconciliation against a real ledger written by a real worker: a payment the
sandbox took whose webhook was lost is listed as unknown to the ledger (until it is
delivered), a payment a loan received under the provider's name that the provider never
took, or has refunded since, as unknown to the provider; payments both know, and payments
from elsewhere, are not listed. `duecourse payments reconcile` prints the same and exits 1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from duecourse.cli.app import app
from duecourse.domain.case.commands import PaymentReport
from duecourse.domain.money import Money
from duecourse.payments.base import EventKind
from duecourse.payments.reconcile import reconcile
from duecourse.store import Ledger
from tests.test_payments_sandbox import WEBHOOK, checkout, press, sandbox_of
from tests.test_portal_page import Portal, _rig, settings

SECRET = "sandbox-reconcile-test-secret"


@pytest.fixture
async def portal(ts_env: WorkflowEnvironment, ledger: Ledger,
                 tmp_path: Path) -> AsyncIterator[Portal]:
    cfg = settings(payment_provider="sandbox", data_dir=tmp_path, payment_sandbox_allowed=True,
                   payment_webhook_secret=SecretStr(SECRET))
    async for p in _rig(ts_env, ledger, cfg):
        yield p


def _listed(rows: list[dict[str, str]]) -> dict[str, tuple[str, str]]:
    return {r["reference"]: (r["amount"], r["why"]) for r in rows}


async def test_each_side_lists_what_the_other_does_not_know(portal: Portal,
                                                            tmp_path: Path) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    sandbox = sandbox_of(portal)
    both = await checkout(portal, token, "100.00")
    await press(portal, both, "paid")
    lost = (await checkout(portal, token, "150.00")).rsplit("/", 1)[1]
    lost_webhook = sandbox.settle(lost, EventKind.PAID)  # taken; its webhook never came
    refunded = await checkout(portal, token, "70.00")
    await press(portal, refunded, "paid")
    await press(portal, refunded, "refunded")
    now = datetime.now(UTC)
    for ref, amount in (("sandbox:sbx_never_taken", "50.00"), ("bank-transfer-9", "10.00")):
        await portal.h.client.report_payment(loan.loan_id, PaymentReport(
            reference=ref, amount=Money.of(amount, "USD"), paid_at=now))
    await portal.h.settle(loan.loan_id)
    assert (await portal.h.client.status(loan.loan_id)).outstanding.amount == Decimal("770")

    report = (await reconcile(sandbox, portal.h.ledger.engine, now.date())).as_json()
    assert _listed(report["unknown_to_ledger"]) == {
        f"sandbox:{lost}": ("150.00", "the provider took it; no loan received it")}
    assert _listed(report["unknown_to_provider"]) == {
        "sandbox:sbx_never_taken": ("50.00", "a loan received it; the provider has no such "
                                             "payment"),
        f"sandbox:{refunded.rsplit('/', 1)[1]}": (
            "70.00", f"a loan received it; the provider refunded 70.00 USD of it on "
                     f"{now.date()}")}
    assert (report["provider_paid"], report["ledger_paid"]) == (2, 3)

    env = {"DUECOURSE_DATA_DIR": str(tmp_path), "DUECOURSE_PAYMENT_PROVIDER": "sandbox",
           "DUECOURSE_PAYMENT_WEBHOOK_SECRET": SECRET}
    cli = await asyncio.to_thread(CliRunner().invoke, app, [
        "payments", "reconcile", "--date", now.date().isoformat(), "--json"], env=env)
    assert cli.exit_code == 1, cli.output
    assert json.loads(cli.output) == report

    late = await portal.http.post(WEBHOOK, content=lost_webhook[1],
                                  headers=sandbox.sign(lost_webhook[1], datetime.now(UTC)))
    assert late.json() == {"outcome": "accepted"}
    await portal.h.settle(loan.loan_id)
    again = await reconcile(sandbox, portal.h.ledger.engine, now.date())
    assert again.unknown_to_ledger == [], "delivered late, it is known now"
    assert len(again.unknown_to_provider) == 2


async def test_a_day_without_differences_is_clean(portal: Portal, tmp_path: Path) -> None:
    loan, token = await portal.hand_over(currency="USD", jurisdiction="US", language="en")
    await press(portal, await checkout(portal, token, "1000.00"), "paid")
    await portal.h.settle(loan.loan_id)
    today = datetime.now(UTC).date()
    report = await reconcile(sandbox_of(portal), portal.h.ledger.engine, today)
    assert report.clean and (report.provider_paid, report.ledger_paid) == (1, 1)
    env = {"DUECOURSE_DATA_DIR": str(tmp_path), "DUECOURSE_PAYMENT_PROVIDER": "sandbox",
           "DUECOURSE_PAYMENT_WEBHOOK_SECRET": SECRET}
    cli = await asyncio.to_thread(CliRunner().invoke, app, [
        "payments", "reconcile", "--date", today.isoformat()], env=env)
    assert cli.exit_code == 0, cli.output
    assert "1 paid at the provider, 1 received by loans" in cli.output
    bad = await asyncio.to_thread(CliRunner().invoke, app, [
        "payments", "reconcile", "--date", "yesterday"], env=env)
    assert bad.exit_code == 1 and "--date 'yesterday' is not a date" in bad.output
