"""A closed loan stays closed: handing it over again is refused, a new delinquency starts.

The decision is pure (`duecourse.domain.case.reopening`); the ledger (`collection_cases`) is the
record it reads. The front doors (starter, CLI, REST API) refuse on a real dev server with
a real SQLite ledger; the workflow's first activity refuses too (the backstop), shown on
the time-skipping server by starting a paid loan again past every front door.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from duecourse import handover
from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.domain.actor import SYSTEM
from duecourse.domain.case.reopening import ClosedCase, LoanAlreadyClosed, reopen_problem
from duecourse.domain.case.state import Outcome
from duecourse.domain.entries import StageChanged
from duecourse.domain.loan import LoanIntake
from duecourse.intake import IntakeRow, parse_records
from duecourse.policies import load_policy
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.cases import last_closed_case, last_closed_cases
from duecourse.store.keys import KeyStore
from duecourse.store.owners import LoanOwners
from duecourse.temporal.contracts import OpenLoan, RecordEntries
from tests.conftest import Harness, settings_for_tests
from tests.factories import daytime_zone, make_loan, payment
from tests.support.devserver import DevWorker, dev_server_with_worker
from tests.support.sealing import session_key_env
from tests.test_api import eventually
from tests.test_ledger import engine as ledger_engine

ROOT = Path(__file__).resolve().parent.parent
DEMO = load_policy("demo")
devserver = pytest.mark.devserver
db = ledger_engine
"""The ledger tests' engine fixture as `db`: SQLite, and PostgreSQL when one answers."""


def loan_due(loan: LoanIntake, due: date) -> LoanIntake:
    return loan.model_copy(update={"due_date": due})


def expected_reason(outcome: str, closed_at: datetime, tz: str) -> str:
    """The reason, computed independently of the code under test."""
    return f"already closed: {outcome} on {closed_at.astimezone(ZoneInfo(tz)).date()}"


# --------------------------------------------------------------------------- pure decision
LOAN = make_loan(datetime(2026, 12, 5, 4, tzinfo=UTC), dpd=5, tz="Asia/Shanghai")
CLOSED_AT = datetime(2026, 11, 30, 20, 30, tzinfo=UTC)  # 2026-12-01 04:30 in Shanghai


def closed(outcome: Outcome, due: date) -> ClosedCase:
    return ClosedCase(case_id="run-1", loan_id=LOAN.loan_id, due_date=due, outcome=outcome,
                      closed_at=CLOSED_AT)


@pytest.mark.parametrize("outcome", list(Outcome))
def test_the_same_or_an_earlier_due_date_is_refused_with_outcome_and_local_date(
        outcome: Outcome) -> None:
    same = reopen_problem(closed(outcome, LOAN.due_date), LOAN)
    assert same == f"already closed: {outcome.value} on 2026-12-01"  # Shanghai, not UTC
    earlier = loan_due(LOAN, LOAN.due_date - timedelta(days=30))
    assert reopen_problem(closed(outcome, LOAN.due_date), earlier) == same


@pytest.mark.parametrize("outcome", list(Outcome))
def test_a_later_due_date_or_no_closed_case_may_start(outcome: Outcome) -> None:
    later = loan_due(LOAN, LOAN.due_date + timedelta(days=1))
    assert reopen_problem(closed(outcome, LOAN.due_date), later) is None
    assert reopen_problem(None, LOAN) is None


def test_the_close_date_is_the_borrowers_own() -> None:
    new_york = make_loan(datetime(2026, 12, 5, 4, tzinfo=UTC), dpd=5, tz="America/New_York")
    case = ClosedCase(case_id="run-1", loan_id=new_york.loan_id, due_date=new_york.due_date,
                      outcome=Outcome.PAID, closed_at=CLOSED_AT)
    assert reopen_problem(case, new_york) == "already closed: PAID on 2026-11-30"


# --------------------------------------------------------------------------- ledger
@pytest.fixture
async def book(db: AsyncEngine) -> Ledger:
    """A migrated ledger on SQLite and on PostgreSQL (the ledger tests' engines), since the
    backstop's locking differs between them."""
    return Ledger(db)


async def open_case(ledger: Ledger, loan: LoanIntake, case_id: str, at: datetime) -> bool:
    return await ledger.open_case(OpenLoan(case_id=case_id, workflow_id=loan.workflow_id,
                                           loan=loan, policy="standard@1", opened_at=at))


async def close_case(ledger: Ledger, loan: LoanIntake, case_id: str, outcome: Outcome,
                     at: datetime) -> None:
    await ledger.record_entries(RecordEntries(
        case_id=case_id, workflow_id=loan.workflow_id, loan_id=loan.loan_id,
        entries=[StageChanged(key="closed", occurred_at=at, actor=SYSTEM,
                              from_stage="REMINDER", to_stage=None, outcome=outcome.value,
                              reason="test", days_past_due=5)]))


async def test_the_last_closed_case_is_the_closed_one_with_the_latest_due_date(
        book: Ledger) -> None:
    now = datetime.now(UTC)
    loan = make_loan(now, dpd=60)
    await open_case(book, loan, "case-1", now)
    await close_case(book, loan, "case-1", Outcome.CANCELLED, now)
    later = loan_due(loan, loan.due_date + timedelta(days=30))
    await open_case(book, later, "case-2", now + timedelta(hours=1))
    await close_case(book, later, "case-2", Outcome.PAID, now + timedelta(hours=2))
    await open_case(book, loan_due(loan, loan.due_date + timedelta(days=50)), "case-3",
                    now + timedelta(hours=3))  # still open: not a closed case

    last = await last_closed_case(book.engine, loan.loan_id)
    assert last == ClosedCase(case_id="case-2", loan_id=loan.loan_id,
                              due_date=later.due_date, outcome=Outcome.PAID,
                              closed_at=now + timedelta(hours=2))
    assert await last_closed_cases(book.engine, [loan.loan_id, "NEVER-SEEN"]) == {
        loan.loan_id: last}
    assert await last_closed_case(book.engine, "NEVER-SEEN") is None


async def test_opening_a_case_of_a_closed_loan_fails_and_writes_nothing(
        book: Ledger) -> None:
    now = datetime.now(UTC)
    loan = make_loan(now, dpd=10)
    assert await open_case(book, loan, "case-1", now)
    await close_case(book, loan, "case-1", Outcome.WRITTEN_OFF, now)
    audit_before = await book.rows(t.audit_events, loan_id=loan.loan_id)

    with pytest.raises(LoanAlreadyClosed) as refused:
        await open_case(book, loan, "case-2", now + timedelta(minutes=1))
    assert str(refused.value) == expected_reason("WRITTEN_OFF", now, loan.borrower.timezone)
    cases = await book.rows(t.collection_cases, loan_id=loan.loan_id)
    assert [c["case_id"] for c in cases] == ["case-1"]
    assert await book.rows(t.audit_events, loan_id=loan.loan_id) == audit_before
    assert await open_case(book, loan, "case-1", now) is False  # its own retry is fine

    fresh = loan_due(loan, loan.due_date + timedelta(days=1))
    assert await open_case(book, fresh, "case-2", now + timedelta(minutes=2))


# --------------------------------------------------------------------------- dev server
@dataclass
class Stack(DevWorker):
    http: httpx.AsyncClient
    platform: dict[str, str]  # the platform key's Authorization header


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """A dev server, a migrated SQLite ledger, a worker and the API, for this module."""
    settings = settings_for_tests()
    async with dev_server_with_worker(tmp_path_factory.mktemp("closed"), settings) as dev:
        keys = KeyStore(dev.engine)
        token = (await keys.create("platform-1", "platform"))[1]
        app = create_app(settings, Services(client=dev.collection, ledger=dev.ledger,
                                            keys=keys, settings=settings))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api") as http:
            yield Stack(**vars(dev), http=http, platform={"Authorization": f"Bearer {token}"})


def daytime_loan(dpd: int = 5) -> LoanIntake:
    """A loan whose borrower is in office hours now: the real-time server's reminders are
    never deferred by quiet hours, whenever the suite runs."""
    now = datetime.now(UTC)
    return make_loan(now, dpd=dpd, tz=daytime_zone(now), policy="demo")


async def pay_in_full(stack: Stack, loan: LoanIntake) -> str:
    """Pay the loan off, wait until it is closed; returns the reason a re-hand-over gets."""
    await stack.collection.report_payment(loan.loan_id, payment(
        str(loan.outstanding), currency=loan.currency, at=datetime.now(UTC)))
    result = await asyncio.wait_for(stack.collection.result(loan.loan_id), 60)
    assert result.outcome == "PAID"
    [case] = await stack.ledger.rows(t.collection_cases, loan_id=loan.loan_id)
    assert case["outcome"] == "PAID"
    return expected_reason("PAID", case["closed_at"], loan.borrower.timezone)


def rows_of(*loans: LoanIntake) -> list[IntakeRow]:
    return parse_records([(n, loan.model_dump(mode="json")) for n, loan in
                          enumerate(loans, start=1)], datetime.now(UTC))


@devserver
async def test_a_batch_rejects_the_paid_loan_and_starts_the_others(stack: Stack) -> None:
    paid, other = daytime_loan(), daytime_loan()
    first = await handover.start_loans(stack.collection, rows_of(paid), now=datetime.now(UTC),
                                      ledger=stack.ledger.engine, allow_demo=True)
    assert [s.loan_id for s in first.started] == [paid.loan_id]
    reason = await pay_in_full(stack, paid)

    again = await handover.start_loans(stack.collection, rows_of(paid, other),
                                      now=datetime.now(UTC), ledger=stack.ledger.engine,
                                      allow_demo=True)
    assert [(r.row, r.loan_id, r.reason) for r in again.rejected] == [
        (1, paid.loan_id, reason)]
    assert [s.loan_id for s in again.started] == [other.loan_id]
    assert not await stack.collection.is_running(paid.loan_id)
    assert len(await stack.ledger.rows(t.collection_cases, loan_id=paid.loan_id)) == 1
    shown = io.StringIO()
    handover.render_summary(again, Console(file=shown, width=200))
    assert reason in shown.getvalue()


@devserver
async def test_the_starter_and_cli_check_the_configured_ledger(stack: Stack,
                                                               tmp_path: Path) -> None:
    paid, fresh, unchecked = daytime_loan(), daytime_loan(), daytime_loan()
    assert (await stack.collection.start(paid, DEMO)).started
    reason = await pay_in_full(stack, paid)
    path = tmp_path / "loans.json"

    # A SQLite ledger that does not exist yet holds no closed case, and is not created.
    missing = tmp_path / "nowhere" / "ledger.db"
    path.write_text(json.dumps([unchecked.model_dump(mode="json")]), encoding="utf-8")
    settings = Settings(temporal_address=stack.server.address, task_queue=stack.task_queue,
                        database_url=f"sqlite+aiosqlite:///{missing}")
    assert await handover.run(settings, path, Console(file=io.StringIO())) == 0
    assert await stack.collection.is_running(unchecked.loan_id)
    assert not missing.parent.exists()

    path.write_text(json.dumps([paid.model_dump(mode="json"),
                                fresh.model_dump(mode="json")]), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUECOURSE_", "TEMPORAL_"))}
    env.update(session_key_env())  # the keys the test's own clients use
    env["DUECOURSE_ALLOW_DEMO_POLICIES"] = "true"  # a sandbox: its loans run on the demo policy
    env.update(TEMPORAL_ADDRESS=stack.server.address, DUECOURSE_TASK_QUEUE=stack.task_queue,
               DUECOURSE_DATABASE_URL=stack.ledger_url, COLUMNS="200", NO_COLOR="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", "start", str(path), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, err.decode()
    text = out.decode()
    assert "1 started" in text and "1 rejected" in text, text
    assert reason in text, text
    assert await stack.collection.is_running(fresh.loan_id)
    assert not await stack.collection.is_running(paid.loan_id)


@devserver
async def test_the_api_refuses_a_paid_loan_with_409_and_starts_a_new_delinquency(
        stack: Stack) -> None:
    loan = daytime_loan(dpd=5)
    body = loan.model_dump(mode="json")
    assert (await stack.http.post("/v1/loans", headers=stack.platform,
                                  json=body)).status_code == 201
    reason = await pay_in_full(stack, loan)

    refused = await stack.http.post("/v1/loans", headers=stack.platform, json=body)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["status"] == 409 and problem["title"] == "Loan already closed"
    assert problem["detail"] == reason
    earlier = {**body, "due_date": (loan.due_date - timedelta(days=7)).isoformat()}
    assert (await stack.http.post("/v1/loans", headers=stack.platform,
                                  json=earlier)).json()["detail"] == reason

    later = {**body, "due_date": (loan.due_date + timedelta(days=3)).isoformat()}
    started = await stack.http.post("/v1/loans", headers=stack.platform, json=later)
    assert started.status_code == 201, started.text
    assert started.json()["status"] == "started"

    async def fresh_case() -> bool:
        return len(await stack.ledger.rows(t.collection_cases, loan_id=loan.loan_id)) == 2

    await eventually(fresh_case, "the new delinquency's case in the ledger")
    old, new = sorted(await stack.ledger.rows(t.collection_cases, loan_id=loan.loan_id),
                      key=lambda c: c["opened_at"])
    assert new["case_id"] != old["case_id"] and new["case_id"] == started.json()["run_id"]
    assert (old["outcome"], new["outcome"]) == ("PAID", None)
    assert new["due_date"] == loan.due_date + timedelta(days=3)
    assert await stack.collection.is_running(loan.loan_id)


@devserver
async def test_the_api_batch_rejects_the_paid_loan_as_a_row(stack: Stack) -> None:
    lenders, fresh = daytime_loan(), daytime_loan()
    assert (await stack.collection.start(lenders, DEMO)).started  # no platform owns it
    reason = await pay_in_full(stack, lenders)

    response = await stack.http.post("/v1/loans:batch", headers=stack.platform, json={
        "loans": [lenders.model_dump(mode="json"), fresh.model_dump(mode="json")]})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert (result["started"], result["already_running"], result["rejected"]) == (1, 0, 1)
    rows = {r["index"]: r for r in result["results"]}
    assert (rows[1]["status"], rows[1]["reason"]) == ("rejected", reason)
    assert rows[2]["status"] == "started"
    owners = LoanOwners(stack.ledger.engine)
    assert await owners.owner_of(lenders.loan_id) is None  # a refused loan is not taken
    assert await owners.owner_of(fresh.loan_id) == "platform-1"


# --------------------------------------------------------------------------- backstop
def causes(err: BaseException | None) -> list[BaseException]:
    found = []
    while err is not None:
        found.append(err)
        err = err.__cause__
    return found


async def test_the_workflow_refuses_a_closed_loan_started_past_the_front_doors(
        harness: Harness) -> None:
    h = harness
    loan = make_loan(await h.env.get_current_time(), dpd=3)
    assert (await h.client.start(loan, DEMO)).started
    await h.client.report_payment(loan.loan_id, payment("1000.00"))
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"
    [case] = await h.rows(t.collection_cases, loan_id=loan.loan_id)
    before = {table.name: len(await h.rows(table)) for table in (
        t.collection_cases, t.contact_attempts, t.outbox_messages, t.audit_events,
        t.stage_transitions)}

    again = await h.client.start(loan, DEMO)  # straight to Temporal: no front-door check
    assert again.started and again.run_id != case["case_id"]
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(h.client.result(loan.loan_id), 60)
    refusals = [e for e in causes(failed.value)
                if isinstance(e, ApplicationError) and e.type == "LoanAlreadyClosed"]
    assert refusals, causes(failed.value)
    reason = expected_reason("PAID", case["closed_at"], loan.borrower.timezone)
    assert {e.message for e in refusals} == {reason}
    assert any(e.non_retryable for e in refusals), "a retry can never make it startable"
    after = {table.name: len(await h.rows(table)) for table in (
        t.collection_cases, t.contact_attempts, t.outbox_messages, t.audit_events,
        t.stage_transitions)}
    assert after == before
