"""A paid webhook and a refund webhook for the same checkout, interleaved, on SQLite and
PostgreSQL: each handler decides from what its own guarded UPDATE did, never from a read a
concurrent one made stale. Refund between the paid handler's read and its update: nothing
reaches the loan. Refund read as open just after the paid update: ops are alerted, for
the loan takes that payment. A refund waiting on the paid update's row lock: still seen
as a refund of a paid payment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update
from temporalio.testing import WorkflowEnvironment

from duecourse.domain.money import Money
from duecourse.payments import store
from duecourse.payments.base import EventKind, ProviderEvent
from duecourse.payments.flow import apply
from duecourse.store import Ledger, migrate
from duecourse.store import tables as t
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.contracts import OpenLoan
from tests.factories import make_loan
from tests.support.databases import blank_database

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
USD = Money.of("100.00", "USD")


@pytest.fixture(params=["sqlite", "postgresql"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    async with blank_database(request.param, tmp_path, "payment_races") as eng:
        await migrate(eng)
        yield Ledger(eng)


@pytest.fixture
def client(ts_env: WorkflowEnvironment) -> CollectionClient:
    """A real engine that knows no loan: a payment reported to it would come back
    LoanNotFound (and raise a 'paid after collection ended' alert)."""
    return CollectionClient(ts_env.client, "payment-races")


async def _checkout(ledger: Ledger, checkout_id: str = "cs_1") -> store.Row:
    loan = make_loan(NOW)
    await ledger.open_case(OpenLoan(case_id=f"case-{checkout_id}", workflow_id=loan.workflow_id,
                                    loan=loan, policy="standard@1", opened_at=NOW))
    await store.open_checkout(ledger.engine, "stripe", checkout_id, f"case-{checkout_id}",
                              loan.loan_id, USD, NOW)
    row = await store.find(ledger.engine, "stripe", checkout_id)
    assert row is not None and row.status == "open"
    return row


def _event(kind: EventKind, checkout_id: str = "cs_1") -> ProviderEvent:
    return ProviderEvent(kind, checkout_id, USD, NOW, "pi_1")


async def _alerts(ledger: Ledger) -> list[str]:
    async with ledger.engine.connect() as conn:
        return [r.subject for r in (await conn.execute(t.ops_alerts.select())).all()]


async def test_a_refund_between_the_paid_read_and_its_update_keeps_it_from_the_loan(
        ledger: Ledger, client: CollectionClient) -> None:
    stale = await _checkout(ledger)  # the paid handler has read the row: open
    refunded = await apply("stripe", _event(EventKind.REFUNDED), ledger, client, stale)
    assert refunded.outcome == "refunded"
    paid = await apply("stripe", _event(EventKind.PAID), ledger, client, stale)
    assert paid.outcome == "ignored", "taken and given back: nothing is reported"
    assert await _alerts(ledger) == [], "no payment reached, or was sent to, any loan"
    assert not await store.mark_paid(ledger.engine, "stripe", "cs_1", USD, NOW)
    row = await store.find(ledger.engine, "stripe", "cs_1")
    assert row is not None and row.status == "refunded"


async def test_a_refund_read_as_open_after_the_paid_update_alerts_ops(
        ledger: Ledger, client: CollectionClient) -> None:
    stale = await _checkout(ledger)  # the refund handler has read the row: open
    assert await store.mark_paid(ledger.engine, "stripe", "cs_1", USD, NOW, "pi_1")
    got = await apply("stripe", _event(EventKind.REFUNDED), ledger, client, stale)
    assert got.outcome == "refunded"
    [alert] = await _alerts(ledger)
    assert "refunded by stripe" in alert, "the loan had taken it: a person must know"
    async with ledger.engine.connect() as conn:
        [body] = [r.body for r in (await conn.execute(t.ops_alerts.select())).all()]
    assert "not among its payments yet" in body, "never reported: say so, not 'received'"
    again = await apply("stripe", _event(EventKind.REFUNDED), ledger, client, stale)
    assert again.outcome == "refunded" and len(await _alerts(ledger)) == 1
    assert await store.mark_refunded(ledger.engine, "stripe", "cs_1", NOW) is None


async def test_a_refund_waiting_for_the_paid_updates_lock_still_sees_it_paid(
        ledger: Ledger) -> None:
    await _checkout(ledger)
    p = t.provider_payments
    async with ledger.engine.connect() as held:
        moving = await held.begin()  # the paid webhook's update, not committed yet
        await held.execute(update(p).where(p.c.checkout_id == "cs_1").values(
            status="paid", paid_at=NOW, updated_at=NOW))
        refund = asyncio.create_task(store.mark_refunded(ledger.engine, "stripe", "cs_1",
                                                         NOW))
        await asyncio.sleep(0.5)
        assert not refund.done(), "the refund waits for the paid update"
        await moving.commit()
    assert await asyncio.wait_for(refund, 20) == "paid"
