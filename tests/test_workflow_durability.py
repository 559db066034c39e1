"""Durability properties: idempotent retries, continue-as-new, and replay determinism."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from duecourse.activities import build_activities
from duecourse.channels import OutboxChannel
from duecourse.domain.scoring import ScoreInput, ScoreResult
from duecourse.policies import load_policy
from duecourse.runtime import WORKFLOWS, build_worker, sandbox_runner
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.temporal.contracts import (
    CollectionInput,
    MessageSent,
    OpenLoan,
    OpsAlert,
    RecordEntries,
    SendMessage,
)
from tests.conftest import Harness, TrackingClient, settings_for_tests
from tests.factories import make_loan, payment
from tests.support.sealing import sealed

STANDARD = load_policy("standard").model_copy(update={"segments": {}})  # timing as written


def crash_after_write(ledger: Ledger, calls: Counter[str]) -> list[object]:
    """The real activities, each failing once *after* its write succeeded.

    This is the worst case for idempotency: the side effect happened, Temporal sees a
    failure and retries. The retry must not send or record anything twice.
    """
    real = {getattr(fn, "__temporal_activity_definition").name: fn
            for fn in build_activities(ledger, OutboxChannel(ledger), "Acme", "400-800")}

    async def run_then_crash(name: str, arg: object) -> object:
        result = await real[name](arg)
        calls[name] += 1
        if activity.info().attempt == 1:
            raise RuntimeError(f"simulated crash after {name} wrote")
        return result

    @activity.defn(name="open_loan")
    async def open_loan(cmd: OpenLoan) -> bool:
        return await run_then_crash("open_loan", cmd)  # type: ignore[return-value]

    @activity.defn(name="record_entries")
    async def record_entries(cmd: RecordEntries) -> int:
        return await run_then_crash("record_entries", cmd)  # type: ignore[return-value]

    @activity.defn(name="send_message")
    async def send_message(cmd: SendMessage) -> MessageSent:
        return await run_then_crash("send_message", cmd)  # type: ignore[return-value]

    @activity.defn(name="alert_ops")
    async def alert_ops(cmd: OpsAlert) -> bool:
        return await run_then_crash("alert_ops", cmd)  # type: ignore[return-value]

    @activity.defn(name="score_loan")
    async def score_loan(facts: ScoreInput) -> ScoreResult:
        return await run_then_crash("score_loan", facts)  # type: ignore[return-value]

    return [open_loan, record_entries, send_message, alert_ops, score_loan,
            real["refer_to_partner"], real["await_workflow"]]


async def test_activities_retried_after_their_write_change_nothing(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    calls: Counter[str] = Counter()
    queue = "tq-crash-after-write"
    client = TrackingClient(ts_env, queue)
    async with build_worker(ts_env.client, ledger, settings_for_tests(), queue,
                            activities=crash_after_write(ledger, calls)):
        loan = make_loan(await ts_env.get_current_time(), dpd=2)
        await client.start(loan, STANDARD)
        await ts_env.sleep(timedelta(days=3))
        await client.report_payment(loan.loan_id, payment("1000.00", "ONCE"))
        result = await client.result(loan.loan_id)
        status = await client.status(loan.loan_id)

    assert result.outcome == "PAID"
    assert calls["send_message"] >= 2 * status.contacts_sent >= 4, calls
    # the hand-over's entries (and its score) are written by open_loan itself, and a sent
    # contact's decision by send_message: record_entries is left with the payment's batch
    assert calls["record_entries"] >= 2 and calls["open_loan"] == 2
    contacts = await ledger.rows(t.contact_attempts, loan_id=loan.loan_id)
    outbox = await ledger.rows(t.outbox_messages)
    assert len(contacts) == status.contacts_sent, "one row per contact despite retries"
    assert len(outbox) == len(contacts), "one message per contact despite retries"
    assert {c["provider_message_id"] for c in contacts} == {f"outbox-{m['id']}" for m in outbox}
    assert len(await ledger.rows(t.payments, loan_id=loan.loan_id)) == 1
    assert len(await ledger.rows(t.collection_cases, loan_id=loan.loan_id)) == 1
    transitions = await ledger.rows(t.stage_transitions, loan_id=loan.loan_id)
    assert [(r["to_stage"], r["outcome"]) for r in transitions] == [("REMINDER", None),
                                                                    (None, "PAID")]


async def test_long_life_continues_as_new_without_losing_or_repeating_anything(
        harness: Harness) -> None:
    h = harness
    loan = make_loan(await h.env.get_current_time(), dpd=1)
    h.client.started.append(loan.loan_id)
    first = await h.env.client.start_workflow(
        "LoanCollection", CollectionInput(loan=loan, policy=STANDARD, history_limit=100),
        id=loan.workflow_id, task_queue=h.task_queue)
    result = await h.client.result(loan.loan_id)
    assert result.outcome == "WRITTEN_OFF"

    latest = await h.client.handle(loan.loan_id).describe()
    assert latest.run_id != first.result_run_id, "the run should have continued as new"
    cases = await h.rows(t.collection_cases, loan_id=loan.loan_id)
    assert len(cases) == 1 and cases[0]["case_id"] == first.result_run_id
    transitions = await h.rows(t.stage_transitions, loan_id=loan.loan_id)
    assert [(r["to_stage"], r["outcome"]) for r in transitions] == [
        ("REMINDER", None), ("NEGOTIATION", None), ("LEGAL", None), (None, "WRITTEN_OFF")]
    alerts = [a["subject"] for a in await h.rows(t.ops_alerts, loan_id=loan.loan_id)]
    escalations = [a for a in alerts if "overdue" in a]
    assert len(escalations) > 5
    assert escalations == [f"[{loan.loan_id}] Legal approval overdue (escalation {n})"
                           for n in range(1, len(escalations) + 1)]
    status = await h.client.status(loan.loan_id)
    assert status.contacts_sent == len(await h.rows(t.contact_attempts,
                                                           loan_id=loan.loan_id))

    # The final run's history replays deterministically with today's workflow code.
    history = await h.client.handle(loan.loan_id).fetch_history()
    replayer = Replayer(workflows=WORKFLOWS, data_converter=sealed(),
                        workflow_runner=sandbox_runner())
    await replayer.replay_workflow(history)


async def test_paid_history_replays_deterministically(harness: Harness) -> None:
    h = harness
    loan = make_loan(await h.env.get_current_time(), dpd=3)
    await h.client.start(loan, STANDARD)
    await h.env.sleep(timedelta(days=20))
    await h.client.report_payment(loan.loan_id, payment("250.00"))
    await h.env.sleep(timedelta(days=2))
    await h.client.report_payment(loan.loan_id, payment("750.00"))
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"
    history = await h.client.handle(loan.loan_id).fetch_history()
    replayer = Replayer(workflows=WORKFLOWS, data_converter=sealed(),
                        workflow_runner=sandbox_runner())
    await replayer.replay_workflow(history)
