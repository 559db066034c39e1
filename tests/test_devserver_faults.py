"""Faults a real Temporal server delivers: ops resetting a loan, and children terminated.

The time-skipping test server neither resets workflows nor tells a parent that its child
was terminated, so these run on the `temporal` dev server in real time, on a policy whose
stages last seconds, with borrowers in office hours wherever CI runs. The worker's webhook
dispatcher posts to receivers in the test process (private addresses allowed).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

from duecourse.domain.calendar import local_date
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Channel, Policy
from duecourse.policies import load_policy, with_templates
from duecourse.settings import Settings
from duecourse.store import tables as t
from duecourse.store.webhooks import Webhook, WebhookStore
from tests.factories import AGENT, daytime_zone, make_loan
from tests.support.devserver import DevWorker, dev_server_with_worker
from tests.support.waiting import eventually
from tests.test_webhooks import Receiver, serving
from tests.test_workflow_negotiation import plan_of

pytestmark = pytest.mark.devserver


def quick_policy() -> Policy:
    """The demo policy with stages of seconds: a loan reaches legal in about ten."""
    demo = load_policy("demo")
    reminder = demo.reminder.model_copy(update={
        "window": timedelta(seconds=4), "minimum_notice": timedelta(seconds=2),
        "steps": [s.model_copy(update={"offset": timedelta(seconds=n)})
                  for n, s in enumerate(demo.reminder.steps[:2])]})
    negotiation = demo.negotiation.model_copy(update={
        "window": timedelta(seconds=4),
        "steps": [s.model_copy(update={"offset": timedelta(seconds=1)})
                  for s in demo.negotiation.steps if s.name == "options-email"]})
    legal = demo.legal.model_copy(update={"cure_period": timedelta(hours=1),
                                          "approval_timeout": timedelta(hours=1)})
    return with_templates(demo.model_copy(update={
        "name": "quick", "reminder": reminder, "negotiation": negotiation, "legal": legal}))


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevWorker]:
    settings = Settings(lender_name="Acme Lending", lender_contact="400-800-1234",
                        webhook_allow_private=True)
    async with dev_server_with_worker(tmp_path_factory.mktemp("devserver-faults"),
                                      settings) as dev:
        yield dev


async def quiet(stack: DevWorker, workflow_id: str) -> None:
    """Until the workflow's history stops growing for a while."""
    previous, still = -1, 0
    while still < 3:
        events = [e async for e in stack.client.get_workflow_handle(
            workflow_id).fetch_history_events()]
        still = still + 1 if len(events) == previous else 0
        previous = len(events)
        await asyncio.sleep(0.5)


def new_loan() -> LoanIntake:
    return make_loan(datetime.now(UTC), dpd=3, tz=daytime_zone(datetime.now(UTC)))


async def engaged_in_legal(stack: DevWorker, policy: Policy) -> LoanIntake:
    """A loan told of its arrears, engaged, negotiated with and escalated to legal."""
    loan = new_loan()
    await stack.collection.start(loan, policy)

    async def notified() -> bool:
        return len(await stack.ledger.rows(t.contact_attempts, loan_id=loan.loan_id)) >= 2

    await eventually(notified, "both notices", seconds=60)
    await stack.collection.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT))

    async def in_legal() -> bool:
        return (await stack.collection.status(loan.loan_id)).stage == "LEGAL"

    await eventually(in_legal, "the loan to reach the legal stage", seconds=60)
    return loan


async def runs_of(stack: DevWorker, workflow_id: str) -> list[Any]:
    return [w async for w in stack.client.list_workflows(f"WorkflowId = '{workflow_id}'")]


async def counts(stack: DevWorker, loan_id: str) -> dict[str, int]:
    tables = (t.collection_cases, t.contact_attempts, t.stage_transitions, t.payments,
              t.compliance_decisions, t.documents)
    found = {table.name: len(await stack.ledger.rows(table, loan_id=loan_id))
             for table in tables}
    found["outbox"] = len(await stack.ledger.rows(t.outbox_messages))
    return found


async def drained(stack: DevWorker, hook: Webhook) -> None:
    """Until the dispatcher owes the webhook nothing (every row delivered and settled)."""

    async def nothing_owed() -> bool:
        return not await stack.ledger.rows(t.webhook_outbox, webhook_id=hook.webhook_id)

    await eventually(nothing_owed, "the webhook's outbox rows to be delivered", seconds=60)


async def announcements(stack: DevWorker, receiver: Receiver, hook: Webhook,
                        loan_id: str) -> tuple[Counter[str], list[tuple[str, str, int]]]:
    """What the loan announced: the events the receiver accepted, per id (it accepts every
    correctly signed post), and the (event, status, attempts) rows of webhook_deliveries
    for the webhook."""
    posted = Counter(e.event_id for e in receiver.accepted if e.loan_id == loan_id)
    rows = sorted((d.event_id, d.status, d.attempts)
                  for d in await WebhookStore(stack.engine).deliveries(loan_id=loan_id)
                  if d.webhook_id == hook.webhook_id)
    return posted, rows


# --------------------------------------------------------------------------- resets
async def test_a_reset_to_the_first_workflow_task_sends_writes_and_starts_nothing_twice(
        stack: DevWorker) -> None:
    """Resetting is ops' standard remedy. Keys made from the run id changed with it, so the
    new run opened a second case, sent every message again and started a second legal
    case; keys from the first execution's run id survive it.

    Each outbound event's id is `<case_id>:<entry key>`: the reset run must queue none of
    its events again, and above all none under a new id, which the outbox (unique per
    event and webhook) and the delivery record would both take for a new event and post."""
    async with serving(Receiver()) as receiver:
        store = WebhookStore(stack.engine, allow_private=True)
        hook, receiver.secret = await store.register("ops", receiver.url, ["*"])
        try:
            await reset_and_check(stack, receiver, hook)
        finally:
            await store.disable(hook.webhook_id)  # the module's later loans owe it nothing


async def reset_and_check(stack: DevWorker, receiver: Receiver, hook: Webhook) -> None:
    loan = await engaged_in_legal(stack, quick_policy())
    legal_id = f"legal-{loan.loan_id}-"
    await quiet(stack, loan.workflow_id)
    await drained(stack, hook)
    before = await counts(stack, loan.loan_id)
    stages = [r["idempotency_key"] for r in await stack.ledger.rows(
        t.stage_transitions, loan_id=loan.loan_id)]
    case_id = (await stack.ledger.rows(t.collection_cases, loan_id=loan.loan_id))[0]["case_id"]
    assert len(stages) == 3 and all(key.startswith(f"{case_id}:") for key in stages), \
        "into reminder, negotiation and legal, each event id `<case_id>:<entry key>`"
    announced = await announcements(stack, receiver, hook, loan.loan_id)
    assert announced == (Counter(stages), [(key, "delivered", 1) for key in sorted(stages)])
    assert before["collection_cases"] == 1 and before["contact_attempts"] >= 2
    children = [w.id async for w in stack.client.list_workflows(
        f"WorkflowId STARTS_WITH '{legal_id}'")]
    assert len(children) == 1

    handle = stack.client.get_workflow_handle(loan.workflow_id)
    completed = [e.event_id async for e in handle.fetch_history_events()
                 if e.HasField("workflow_task_completed_event_attributes")]
    first_task = completed[0]
    described = await handle.describe()
    reset = await stack.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=stack.client.namespace, reason="ops: replay the loan from its start",
            workflow_execution=WorkflowExecution(workflow_id=loan.workflow_id,
                                                 run_id=described.run_id),
            workflow_task_finish_event_id=first_task, request_id=uuid4().hex))
    assert reset.run_id != described.run_id

    async def back_in_legal() -> bool:
        status = await stack.collection.status(loan.loan_id)
        return (await handle.describe()).run_id == reset.run_id and status.stage == "LEGAL"

    await eventually(back_in_legal, "the reset run to reach legal again", seconds=60)
    await quiet(stack, loan.workflow_id)
    await drained(stack, hook)  # anything the reset run queued has been posted by now
    assert await counts(stack, loan.loan_id) == before, "nothing sent or written twice"
    assert len(await runs_of(stack, children[0])) == 1, "no second legal case"
    assert await announcements(stack, receiver, hook, loan.loan_id) == announced, \
        "no event announced twice, under its own id or a new one"
    assert receiver.bad_signatures == []

    # The legal case was adopted (the old run started it, and reports its end go there):
    # the new run still notices when it dies.
    await stack.client.get_workflow_handle(children[0]).terminate("partner system reset")

    async def noticed() -> bool:
        history = (await stack.collection.status(loan.loan_id)).stage_history
        return any("LEGAL1 stopped: terminated" in v.reason for v in history)

    await eventually(noticed, "the reset run to notice its adopted case ended", seconds=60)


# --------------------------------------------------------------------------- children
async def test_a_terminated_plan_child_returns_the_loan_to_collection(stack: DevWorker) -> None:
    """Without supervision the parent keeps an ACTIVE plan that no one runs: no contact,
    no escalation, until write-off."""
    loan = new_loan()
    await stack.collection.start(loan, load_policy("standard"))
    today = local_date(datetime.now(UTC), loan.borrower.timezone)
    accepted = await stack.collection.propose_plan(loan.loan_id, plan_of(
        today + timedelta(days=5), ["500.00", "500.00"]))
    await quiet(stack, loan.workflow_id)
    await stack.client.get_workflow_handle(accepted.workflow_id).terminate("ops mistake")

    async def noticed() -> bool:
        plan = (await stack.collection.status(loan.loan_id)).plan
        return plan is not None and plan.status == "FAILED"

    await eventually(noticed, "the loan to notice its plan stopped", seconds=60)
    await quiet(stack, loan.workflow_id)
    status = await stack.collection.status(loan.loan_id)
    assert status.stage == "NEGOTIATION" and status.next_action is not None
    assert status.next_action.kind != "write_off", "collection goes on"
    alerts = [a["subject"] for a in await stack.ledger.rows(t.ops_alerts,
                                                           loan_id=loan.loan_id)]
    assert any("Plan PLAN1 stopped unexpectedly (terminated)" in a for a in alerts)
    failed = [e for e in await stack.ledger.rows(t.audit_events, loan_id=loan.loan_id)
              if e["kind"] == "child_failed"]
    assert failed and failed[0]["data"]["details"]["child"] == "plan"


async def test_a_terminated_legal_case_returns_the_loan_to_negotiation(stack: DevWorker) -> None:
    loan = await engaged_in_legal(stack, quick_policy())
    await quiet(stack, loan.workflow_id)
    legal = [w.id async for w in stack.client.list_workflows(
        f"WorkflowId STARTS_WITH 'legal-{loan.loan_id}-'")]
    await stack.client.get_workflow_handle(legal[0]).terminate("partner system reset")

    async def back() -> bool:
        status = await stack.collection.status(loan.loan_id)
        return any(v.stage == "NEGOTIATION" and "LEGAL1 stopped" in v.reason
                   for v in status.stage_history)

    await eventually(back, "the loan to leave its dead legal case", seconds=60)
    await quiet(stack, loan.workflow_id)
    alerts = [a["subject"] for a in await stack.ledger.rows(t.ops_alerts,
                                                           loan_id=loan.loan_id)]
    assert any("Legal case LEGAL1 stopped unexpectedly (terminated)" in a for a in alerts)
