"""The ledger on both backends: SQLite (default) and PostgreSQL (production).

PostgreSQL tests run in a throwaway schema on the server in DUECOURSE_TEST_POSTGRES_URL
(default: the local `test` database) and are skipped, with the reason shown, only when no
server is reachable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete, inspect, update
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.domain.actor import SYSTEM
from duecourse.domain.entries import EventRecorded, PaymentRecorded, StageChanged
from duecourse.store import Ledger, migrate
from duecourse.store import tables as t
from duecourse.store.database import downgrade
from duecourse.store.ledger import ContactRecord
from duecourse.temporal.contracts import OpenLoan, OpsAlert, RecordEntries
from tests.factories import AGENT, make_loan
from tests.support.databases import blank_database

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with blank_database(request.param, tmp_path, "ledger_test") as eng:
        await migrate(eng)
        yield eng


async def open_case(ledger: Ledger, case_id: str = "case-1", **kwargs: object) -> OpenLoan:
    loan = make_loan(NOW, **kwargs)  # type: ignore[arg-type]
    cmd = OpenLoan(case_id=case_id, workflow_id=loan.workflow_id, loan=loan,
                   policy="standard@1", opened_at=NOW)
    assert await ledger.open_case(cmd)
    return cmd


def batch(cmd: OpenLoan, *entries: object) -> RecordEntries:
    return RecordEntries(case_id=cmd.case_id, workflow_id=cmd.workflow_id,
                         loan_id=cmd.loan.loan_id, entries=list(entries))  # type: ignore[arg-type]


async def test_migrations_go_down_and_up_again(engine: AsyncEngine) -> None:
    def tables(sync: object) -> set[str]:
        return set(inspect(sync).get_table_names())  # type: ignore[arg-type]

    async with engine.connect() as conn:
        assert set(t.metadata.tables) <= await conn.run_sync(tables)
    await downgrade(engine)
    async with engine.connect() as conn:
        assert not set(t.metadata.tables) & await conn.run_sync(tables)
    await migrate(engine)
    await migrate(engine)  # idempotent
    async with engine.connect() as conn:
        assert set(t.metadata.tables) <= await conn.run_sync(tables)


async def test_cases_and_entries_are_written_once(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    cmd = await open_case(ledger)
    assert not await ledger.open_case(cmd), "the same case opens once"
    entries = batch(
        cmd,
        StageChanged(key="stage:1", occurred_at=NOW, actor=SYSTEM, from_stage=None,
                     to_stage="REMINDER", reason="handed over", days_past_due=1),
        PaymentRecorded(key="payment:R1", occurred_at=NOW, actor=AGENT, reference="R1",
                        amount=Decimal("99999999999999.99"), currency="CNY", paid_at=NOW,
                        applied=Decimal("0.01"), overpaid=Decimal("99999999999999.98"),
                        outstanding_after=Decimal("0.00")),
        EventRecorded(key="event:1", occurred_at=NOW, actor=AGENT, event="contact_outcome",
                      details={"result": "reached"}),
        StageChanged(key="closed", occurred_at=NOW + timedelta(hours=1), actor=SYSTEM,
                     from_stage="REMINDER", to_stage=None, outcome="PAID",
                     reason="paid in full", days_past_due=1),
    )
    assert await ledger.record_entries(entries) == 4
    assert await ledger.record_entries(entries) == 0, "a retried batch writes nothing"
    payments = await ledger.rows(t.payments, loan_id=cmd.loan.loan_id)
    assert len(payments) == 1
    assert payments[0]["amount"] == Decimal("99999999999999.99"), "money stays exact"
    assert payments[0]["paid_at"] == NOW and payments[0]["paid_at"].tzinfo is not None
    assert len(await ledger.rows(t.stage_transitions, case_id=cmd.case_id)) == 2
    case = (await ledger.rows(t.collection_cases, case_id=cmd.case_id))[0]
    assert case["outcome"] == "PAID" and case["closed_at"] == NOW + timedelta(hours=1)

    timeline = await ledger.timeline(cmd.loan.loan_id)
    assert [i.kind for i in timeline] == ["case_opened", "stage_changed", "payment",
                                          "contact_outcome", "stage_changed"]
    assert timeline[-1].summary == "closed as PAID at DPD 1: paid in full"
    assert timeline[2].actor == f"agent:{AGENT.id}"


async def test_a_payment_reference_is_unique_per_case(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    cmd = await open_case(ledger)
    row = {"idempotency_key": "k1", "case_id": cmd.case_id, "loan_id": cmd.loan.loan_id,
           "reference": "R1", "amount": Decimal(1), "currency": "CNY", "applied": Decimal(1),
           "overpaid": Decimal(0), "outstanding_after": Decimal(0), "paid_at": NOW,
           "actor_kind": "platform", "actor_id": "p", "recorded_at": NOW}
    async with engine.begin() as conn:
        await conn.execute(t.payments.insert().values(row))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(t.payments.insert().values({**row, "idempotency_key": "k2"}))


async def test_audit_events_are_append_only(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    cmd = await open_case(ledger)
    audit = t.audit_events
    for statement in (update(audit).values(summary="rewritten"), delete(audit)):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(statement.where(audit.c.case_id == cmd.case_id))
    assert len(await ledger.rows(audit, case_id=cmd.case_id)) == 1


async def test_contacts_alerts_and_outbox_are_idempotent(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    cmd = await open_case(ledger)
    first = await ledger.store_outbox_message("case-1:contact:1:sms", "sms", "+86138", None,
                                              "hello")
    assert await ledger.store_outbox_message("case-1:contact:1:sms", "sms", "+86138", None,
                                             "hello") == first
    record = ContactRecord(
        idempotency_key="case-1:contact:1:sms", case_id=cmd.case_id,
        loan_id=cmd.loan.loan_id, stage="REMINDER", step="sms", channel="sms",
        template="overdue_notice", language="en", recipient="+86138", subject=None,
        body="hello", status="sent", provider_message_id=f"outbox-{first}",
        scheduled_for=NOW, attempted_at=NOW)
    assert await ledger.record_contact(record)
    assert not await ledger.record_contact(record)
    found = await ledger.find_contact(record.idempotency_key)
    assert found is not None and found.provider_message_id == f"outbox-{first}"
    alert = OpsAlert(idempotency_key="case-1:alert:3", case_id=cmd.case_id,
                     workflow_id=cmd.workflow_id, loan_id=cmd.loan.loan_id,
                     subject="approval needed", body="please", raised_at=NOW)
    assert await ledger.record_alert(alert) and not await ledger.record_alert(alert)
    assert len(await ledger.rows(t.ops_alerts, case_id=cmd.case_id)) == 1


async def test_a_loan_handed_over_again_keeps_its_first_record(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    first = await open_case(ledger, case_id="case-a")
    again = OpenLoan(case_id="case-b", workflow_id=first.workflow_id,
                     loan=first.loan.model_copy(update={"outstanding": Decimal("5.00")}),
                     policy="standard@1", opened_at=NOW + timedelta(days=90))
    assert await ledger.open_case(again)
    assert len(await ledger.rows(t.loans, loan_id=first.loan.loan_id)) == 1
    cases = await ledger.rows(t.collection_cases, loan_id=first.loan.loan_id)
    assert [c["outstanding_at_open"] for c in cases] == [Decimal("1000.00"), Decimal("5.00")]


async def test_naive_times_and_float_money_are_refused(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    cmd = await open_case(ledger)
    row = {"idempotency_key": "x", "case_id": cmd.case_id, "loan_id": cmd.loan.loan_id,
           "subject": "s", "body": "b", "raised_at": datetime(2026, 1, 1)}
    with pytest.raises(StatementError, match="timezone-aware"):
        async with engine.begin() as conn:
            await conn.execute(t.ops_alerts.insert().values(row))
    with pytest.raises(StatementError, match="money must be Decimal"):
        async with engine.begin() as conn:
            await conn.execute(t.collection_cases.update().values(outstanding_at_open=1.5))
