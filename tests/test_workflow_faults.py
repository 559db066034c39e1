"""No silent stalls and no send against a stop, under faults, on the time-skipping server.

Faults are real: a child workflow terminated on the server, a ledger table made to vanish
from the real SQLite database (every write to it fails like an unreachable database), a
scorer that raises, a provider that answers 5xx or 4xx (tests/providers.py). Each test
names the failure it would show without the behaviour it checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from temporalio.client import Client
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from duecourse import search_attributes as sa
from duecourse.activities import build_activities
from duecourse.channels import Channel as ChannelAdapter
from duecourse.channels import OutboxChannel
from duecourse.channels.rate_limits import serving_channels
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult, LegalDecision
from duecourse.domain.compliance import HoldKind
from duecourse.domain.compliance.requests import HoldRequest
from duecourse.domain.legal.case import LegalCase, LegalProgress
from duecourse.domain.policy import Channel as ChannelKind
from duecourse.domain.work.queue import TaskCompletion
from duecourse.runtime import WORKFLOWS, build_worker, sandbox_runner
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.workflows.supervision import ATTENTION_METRIC
from tests.conftest import Harness, TrackingClient, advance_to_local, settings_for_tests
from tests.factories import AGENT, SUPERVISOR, make_loan, payment
from tests.providers import AnswerLost, FlakyProvider
from tests.test_workflow_negotiation import STANDARD, plan_of, sleep_until, start, today

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class Rig:
    """A worker with chosen adapters on its own task queue, and a client for it."""

    env: WorkflowEnvironment
    client: TrackingClient
    ledger: Ledger

    async def settle(self, loan_id: str) -> None:
        await Harness(self.env, self.client, self.ledger, self.client.task_queue).settle(
            loan_id)

    async def rows(self, table: Any, **where: Any) -> list[dict[str, Any]]:
        for loan_id in self.client.started:
            await self.settle(loan_id)
        return await self.ledger.rows(table, **where)


@contextlib.asynccontextmanager
async def rig(env: WorkflowEnvironment, ledger: Ledger, channel: ChannelAdapter | None = None,
              scorer: str = "duecourse.domain.scoring:scorecard",
              client: Client | None = None) -> AsyncIterator[Rig]:
    queue = f"tq-{uuid4().hex}"
    acts = build_activities(ledger, channel or OutboxChannel(ledger), "Acme", "400-800",
                            scorer=scorer)
    tracking = TrackingClient(env, queue)
    async with build_worker(client or env.client, ledger, settings_for_tests(), queue,
                            activities=acts):
        try:
            yield Rig(env, tracking, ledger)
        finally:
            await tracking.end_all()


@contextlib.asynccontextmanager
async def vanished(ledger: Ledger, table: str) -> AsyncIterator[None]:
    """`table` is gone from the real database while inside: every write to it fails as if
    the database were unreachable (OperationalError), until it comes back."""
    async with ledger.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        async with ledger.engine.begin() as conn:
            await conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))


async def idle(client: TrackingClient, loan_id: str) -> None:
    """Until the loan has no activity and no child in flight (before its worker goes
    away: the history alone does not show an activity that is being retried)."""
    while True:
        described = (await client.handle(loan_id).describe()).raw_description
        if not described.pending_activities and not described.pending_children:
            return
        await asyncio.sleep(0.1)


async def raised_hand(env: WorkflowEnvironment, client: TrackingClient, loan_id: str) -> None:
    """Within ten virtual minutes the loan sets NeedsAttention (its ledger writes retry
    meanwhile, so waiting for a quiet history would wait for ever)."""
    for _ in range(20):
        described = await client.handle(loan_id).describe()
        if described.typed_search_attributes.get(sa.NEEDS_ATTENTION) is True:
            return
        await env.sleep(timedelta(seconds=30))
    raise AssertionError("the loan did not set NeedsAttention while its ledger was away")


async def kinds(h: Harness | Rig, loan_id: str) -> list[str]:
    return [r["kind"] for r in await h.rows(t.audit_events, loan_id=loan_id)]


async def alerts(h: Harness | Rig, loan_id: str) -> list[str]:
    return [r["subject"] for r in await h.rows(t.ops_alerts, loan_id=loan_id)]


# ------------------------------------------------------------------------ no silent stalls
@pytest.mark.parametrize("unpaid_at_end", ["broken", "lapsed"])
async def test_a_plan_whose_schedule_ends_unpaid_is_judged(harness: Harness,
                                                           unpaid_at_end: str) -> None:
    """Without the judgement the plan waits for ever: one late instalment is tolerated,
    nothing else falls due, and the active agreement stops all contact."""
    h = harness
    policy = STANDARD.model_copy(update={"plans": STANDARD.plans.model_copy(
        update={"unpaid_at_end": unpaid_at_end})})
    loan = await start(h, policy, dpd=10, outstanding="900.00")
    first = await today(h, loan) + timedelta(days=5)
    await h.client.propose_plan(loan.loan_id, plan_of(first, ["300.00"] * 3))
    for n in (0, 1):
        await sleep_until(h, loan, first + timedelta(days=30 * n - 1))
        await h.client.report_payment(loan.loan_id, payment("300.00", f"ON-TIME-{n}"))
    await sleep_until(h, loan, first + timedelta(days=60 + STANDARD.plans.grace_days + 2))
    status = await h.client.status(loan.loan_id)
    assert status.plan is not None and status.plan.status == unpaid_at_end.upper()
    assert status.plan.late == 1, "one late instalment: within tolerance, yet judged"
    assert status.stage == "NEGOTIATION" and status.next_action is not None
    assert status.next_action.kind != "write_off", "collection goes on"
    assert f"plan_{unpaid_at_end}" in await kinds(h, loan.loan_id)


async def test_a_borrower_paying_a_plan_on_time_is_not_written_off(harness: Harness) -> None:
    """Without the wait, write-off at 60 DPD closes the loan in the middle of the plan."""
    h = harness
    policy = STANDARD.model_copy(update={"write_off_dpd": 60})
    loan = await start(h, policy, dpd=40, outstanding="900.00")
    first = await today(h, loan) + timedelta(days=5)
    await h.client.propose_plan(loan.loan_id, plan_of(first, ["300.00"] * 3))
    for n in range(3):
        await sleep_until(h, loan, first + timedelta(days=30 * n - 1))
        assert (await h.client.status(loan.loan_id)).outcome is None
        await h.client.report_payment(loan.loan_id, payment("300.00", f"INST-{n}"))
    result = await h.client.result(loan.loan_id)
    assert result.outcome == "PAID"


async def test_a_failing_scorer_keeps_the_segment_and_tells_ops(ts_env: WorkflowEnvironment,
                                                                ledger: Ledger) -> None:
    """Without it a scorer bug fails the loan's workflow (or retries for ever)."""
    async with rig(ts_env, ledger, scorer="tests.scorers:fails_after_payment") as r:
        loan = make_loan(await ts_env.get_current_time(), dpd=3).model_copy(
            update={"loan_id": f"L-wont_pay-{uuid4().hex[:6]}"})
        await r.client.start(loan, STANDARD)
        await r.settle(loan.loan_id)
        assert (await r.client.status(loan.loan_id)).segment == "wont_pay"
        await r.client.report_payment(loan.loan_id, payment("100.00", "PART-1"))
        await r.settle(loan.loan_id)
        status = await r.client.status(loan.loan_id)
        assert status.segment == "wont_pay" and status.outcome is None
        assert "scoring_failed" in await kinds(r, loan.loan_id)
        assert any("Scoring failed" in a for a in await alerts(r, loan.loan_id))
        await r.client.report_payment(loan.loan_id, payment("900.00", "REST"))
        assert (await r.client.result(loan.loan_id)).outcome == "PAID"


async def test_a_ledger_outage_is_visible_without_the_ledger_then_clears(
        ts_env: WorkflowEnvironment, ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    """While its writes keep failing the loan says so where the ledger is not needed: the
    NeedsAttention search attribute, an error log line and a worker metric. Without it the
    loan retries silently for ever."""
    buffer = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    metered = await connect_temporal(Settings(),
                                     address=ts_env.client.service_client.config.target_host,
                                     runtime=runtime)
    caplog.set_level(logging.ERROR)
    async with rig(ts_env, ledger, client=metered) as r:
        loan = make_loan(await ts_env.get_current_time(), dpd=3)
        await r.client.start(loan, STANDARD)
        await r.settle(loan.loan_id)
        async with vanished(ledger, "audit_events"):
            await r.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
                channel=ChannelKind.VOICE, result=ContactResult.NO_ANSWER, actor=AGENT))
            await raised_hand(ts_env, r.client, loan.loan_id)
            status = await r.client.status(loan.loan_id)
        assert any(rec.getMessage().startswith("loan needs attention")
                   for rec in caplog.records)
        updates = [u for u in buffer.retrieve_updates() if u.metric.name == ATTENTION_METRIC]
        assert updates and updates[0].attributes.get("kind") == "ledger"
        assert updates[0].value >= 1
        await ts_env.sleep(timedelta(hours=1))  # the next retry finds the ledger back
        await r.settle(loan.loan_id)
        described = await r.client.handle(loan.loan_id).describe()
        assert described.typed_search_attributes.get(sa.NEEDS_ATTENTION) is False
        assert "contact_outcome" in await kinds(r, loan.loan_id), "nothing was lost"
        assert status.outcome is None


async def test_a_required_notice_that_cannot_be_sent_goes_to_a_person_once(
        harness: Harness) -> None:
    """A US loan with neither postal address nor email: the validation notice cannot go.
    Without the task the loan retried it every day until write-off, alerting each time."""
    h = harness
    await advance_to_local(h, ZoneInfo("America/New_York"), time(11, 0))
    loan = make_loan(await h.env.get_current_time(), dpd=2, tz="America/New_York",
                     currency="USD", jurisdiction="US", address=None, email=None,
                     phones=["+12125550123"], language="en")
    await h.client.start(loan, STANDARD)
    await h.env.sleep(timedelta(days=6))
    tasks = [x for x in await h.tasks(loan_id=loan.loan_id) if x["kind"] == "send_notice"]
    assert len(tasks) == 1 and tasks[0]["subject"] == "validation-notice"
    assert (await kinds(h, loan.loan_id)).count("required_notice_not_sent") == 1
    assert sum("validation_notice not sent" in a for a in await alerts(h, loan.loan_id)) == 1
    await h.client.complete_task(loan.loan_id, TaskCompletion(
        task_id=tasks[0]["task_id"], outcome="sent", actor=AGENT,
        note="posted by hand to the address the borrower gave on the phone"))
    await h.settle(loan.loan_id)
    status = await h.client.status(loan.loan_id)
    assert status.standing.validation_notice_at is not None
    made = [c for c in await h.rows(t.contact_attempts, loan_id=loan.loan_id)
            if c["step"] == "validation-notice"]
    assert len(made) == 1 and made[0]["status"] == "made_by_person"


async def test_a_legal_partner_that_keeps_failing_goes_to_a_person(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """Without it the referral retried for ever and the case sat in approval."""
    partner = FlakyProvider(ledger, failures=1_000, recipient="legal-partner@lender.example")
    async with rig(ts_env, ledger, channel=partner) as r:
        loan = make_loan(await ts_env.get_current_time(), dpd=5)
        await r.client.start(loan, STANDARD)
        await r.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
            channel=ChannelKind.VOICE, result=ContactResult.REACHED, actor=AGENT))
        await ts_env.sleep(timedelta(days=46))
        await r.client.decide_legal_referral(loan.loan_id, LegalDecision(
            approve=True, actor=SUPERVISOR, reason="no response to demand"))
        await ts_env.sleep(timedelta(hours=2))
        await r.settle(loan.loan_id)
        tasks = [x for x in await r.ledger.tasks(loan_id=loan.loan_id)
                 if x["kind"] == "refer_case"]
        assert len(tasks) == 1 and tasks[0]["assignee"] == "supervisors"
        assert any("Legal referral of LEGAL1 failed" in a for a in await alerts(r, loan.loan_id))
        await r.client.complete_task(loan.loan_id, TaskCompletion(
            task_id=tasks[0]["task_id"], outcome="referred", actor=SUPERVISOR,
            note="PARTNER-2027-0042"))
        await r.settle(loan.loan_id)
        await ts_env.sleep(timedelta(minutes=1))
        await r.settle(loan.loan_id)
        status = await r.client.status(loan.loan_id)
        assert status.legal_phase == "REFERRED"
        assert "legal_referred" in await kinds(r, loan.loan_id)


# ------------------------------------------------------------------------ correct time
async def test_status_is_as_of_the_moment_asked(harness: Harness) -> None:
    """`workflow.now()` in a query is the last workflow task's time: a loan asleep until
    its next step would report yesterday's days past due."""
    h = harness
    loan = await start(h, dpd=20)
    asked = await h.env.get_current_time() + timedelta(days=2)
    status = await h.client.status(loan.loan_id, as_of=asked)
    assert status.days_past_due == 22 and status.as_of == asked
    # asked without a time, the caller's clock is used - never earlier than the loan's
    # own (here the test server's clock runs ahead of the wall clock)
    assert (await h.client.status(loan.loan_id)).days_past_due == 20


async def test_steps_reached_too_late_are_counted_alerted_and_shown(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, SHANGHAI, time(12, 0))
    loan = await start(h, dpd=8)  # notices, then reminder-sms and courtesy-call overdue
    await h.settle(loan.loan_id)
    status = await h.client.status(loan.loan_id)
    sent = {c["step"] for c in await h.rows(t.contact_attempts, loan_id=loan.loan_id)}
    assert {"notice-sms", "notice-email", "courtesy-call"} <= sent, \
        "notices are sent late, not dropped"
    assert status.late_skips == 1 and "reminder-sms" not in sent
    assert any("1 planned contact(s) skipped as stale" in a
               for a in await alerts(h, loan.loan_id))


# ------------------------------------------------------------------------ exactly once
async def test_two_alerts_in_one_workflow_task_are_both_kept(ts_env: WorkflowEnvironment,
                                                             ledger: Ledger) -> None:
    """Two reports that arrive together (here: while no worker runs) each raise an alert.
    Keys taken when the alert was written made the second a duplicate of the first."""
    loan = make_loan(await ts_env.get_current_time(), dpd=3)
    queue = f"tq-{uuid4().hex}"
    client = TrackingClient(ts_env, queue)
    acts = build_activities(ledger, OutboxChannel(ledger), "Acme", "400-800")

    def uncached_worker() -> Worker:  # no sticky queue: the next worker takes over at once
        return Worker(ts_env.client, task_queue=queue, workflows=WORKFLOWS,
                      activities=acts, workflow_runner=sandbox_runner(),
                      max_cached_workflows=0)

    async with uncached_worker(), serving_channels(ts_env.client, queue, acts,
                                                   settings_for_tests()):
        await client.start(loan, STANDARD)
        await Harness(ts_env, client, ledger, queue).settle(loan.loan_id)
        await idle(client, loan.loan_id)
    case = LegalCase(case_ref="LEGAL9", workflow_id="legal-none",
                     phase_at=await ts_env.get_current_time())
    for _ in range(2):
        await client.handle(loan.loan_id).signal("legal_progress", LegalProgress(
            event="approval_overdue", case=case))
    async with uncached_worker(), serving_channels(ts_env.client, queue, acts,
                                                   settings_for_tests()):
        await Harness(ts_env, client, ledger, queue).settle(loan.loan_id)
        subjects = [a["subject"] for a in await ledger.rows(t.ops_alerts,
                                                           loan_id=loan.loan_id)]
        await client.end_all()
    assert sorted(s for s in subjects if "approval overdue" in s) == [
        f"[{loan.loan_id}] Legal approval overdue (escalation 1)",
        f"[{loan.loan_id}] Legal approval overdue (escalation 2)"]


async def test_a_rescheduled_instalment_is_reminded_again(harness: Harness) -> None:
    """Reminder keys carry the instalment's due date: the same key for the moved date made
    the second reminder a silent duplicate that still counted as a contact."""
    h = harness
    await advance_to_local(h, SHANGHAI, time(9, 0))
    loan = await start(h, dpd=10, outstanding="600.00")
    first = await today(h, loan) + timedelta(days=5)
    await h.client.propose_plan(loan.loan_id, plan_of(first, ["300.00"] * 2))
    await sleep_until(h, loan, first - timedelta(days=1))  # reminded 2 days before
    await h.client.hold(loan.loan_id, HoldRequest(
        action="start", kind=HoldKind.HARDSHIP, days=10, actor=AGENT))
    await h.env.sleep(timedelta(days=11))  # the hold ends; the instalments move 10 days
    await sleep_until(h, loan, first + timedelta(days=10) - timedelta(days=1))
    reminders = [c for c in await h.rows(t.contact_attempts, loan_id=loan.loan_id)
                 if c["template"] == "plan_instalment_reminder"]
    first_moved = (first + timedelta(days=10)).strftime("%Y%m%d")
    assert [r["step"] for r in reminders] == [
        f"plan1-reminder-1-{first:%Y%m%d}", f"plan1-reminder-1-{first_moved}"]
    outbox = {m["idempotency_key"] for m in await h.rows(t.outbox_messages)}
    assert {r["idempotency_key"] for r in reminders} <= outbox, "both really sent"


# ------------------------------------------------------------------------ fenced sends
async def test_a_send_stuck_in_a_ledger_outage_never_goes_out_after_payment(
        harness: Harness) -> None:
    """Measured before: sends that kept retrying through a ledger outage went out after
    the borrower paid in full. The payment withdraws the send in flight."""
    h = harness
    await advance_to_local(h, SHANGHAI, time(9, 0))
    loan = await start(h, dpd=1)  # notice-sms falls due at 10:00 today
    async with vanished(h.ledger, "contact_attempts"):
        await h.env.sleep(timedelta(hours=1, minutes=5))  # the send fails to claim
        await h.client.report_payment(loan.loan_id, payment("1000.00", "PAID-IN-FULL"))
        await h.env.sleep(timedelta(minutes=5))
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"
    assert await h.rows(t.outbox_messages) == []
    rows = await h.rows(t.contact_attempts, loan_id=loan.loan_id)
    assert all(r["status"] != "sent" for r in rows)
    steps = [r for r in await h.rows(t.audit_events, loan_id=loan.loan_id)
             if r["kind"] == "contact_skipped"]
    assert steps and "loan is closed" in steps[0]["data"]["details"]["detail"]


async def test_ledger_errors_do_not_use_up_the_channels_attempts(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    provider = FlakyProvider(ledger, failures=2)
    async with rig(ts_env, ledger, channel=provider) as r:
        await advance_to_local(Harness(ts_env, r.client, ledger, ""), SHANGHAI, time(9, 0))
        loan = make_loan(await ts_env.get_current_time(), dpd=1)
        await r.client.start(loan, STANDARD)
        async with vanished(ledger, "contact_attempts"):
            await ts_env.sleep(timedelta(hours=1, minutes=10))  # claims fail meanwhile
        await ts_env.sleep(timedelta(minutes=30))
        rows = {c["step"]: c for c in await r.rows(t.contact_attempts, loan_id=loan.loan_id)}
        sms = rows["notice-sms"]
        assert sms["status"] == "sent"
        assert sms["channel_attempts"] == 3, "two 503s and the success; ledger errors free"
        assert sms["fenced_at"] <= sms["sent_at"] <= sms["not_after"]


async def test_a_provider_that_refuses_fails_the_step_once_and_tells_ops(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    provider = FlakyProvider(ledger, permanent=True, recipient="+8613800138000")
    async with rig(ts_env, ledger, channel=provider) as r:
        await advance_to_local(Harness(ts_env, r.client, ledger, ""), SHANGHAI, time(12, 0))
        loan = make_loan(await ts_env.get_current_time(), dpd=2)
        await r.client.start(loan, STANDARD)
        await r.settle(loan.loan_id)
        rows = {c["step"]: c for c in await r.rows(t.contact_attempts, loan_id=loan.loan_id)}
        assert rows["notice-sms"]["status"] == "failed"
        assert rows["notice-sms"]["channel_attempts"] == 1, "a 4xx is not retried"
        assert rows["notice-email"]["status"] == "sent"
        assert any("overdue_notice to the borrower failed (notice-sms)" in a
                   for a in await alerts(r, loan.loan_id))


async def test_an_accepted_message_is_recorded_when_the_ledger_fails_right_after(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """The provider accepted; then the ledger went away. The activity hands the result to
    the workflow, whose history holds it until the ledger is back."""
    vanish = vanished(ledger, "contact_attempts")
    provider = FlakyProvider(ledger, recipient="+8613800138000",
                             after_accept=vanish.__aenter__)
    async with rig(ts_env, ledger, channel=provider) as r:
        await advance_to_local(Harness(ts_env, r.client, ledger, ""), SHANGHAI, time(9, 0))
        loan = make_loan(await ts_env.get_current_time(), dpd=1)
        await r.client.start(loan, STANDARD)
        await ts_env.sleep(timedelta(hours=1, minutes=5))
        await raised_hand(ts_env, r.client, loan.loan_id)
        await vanish.__aexit__(None, None, None)
        await ts_env.sleep(timedelta(hours=1))
        rows = {c["step"]: c for c in await r.rows(t.contact_attempts, loan_id=loan.loan_id)}
        assert rows["notice-sms"]["status"] == "sent"
        assert rows["notice-sms"]["provider_message_id"].startswith("outbox-")
        outbox = [m for m in await r.rows(t.outbox_messages)
                  if m["idempotency_key"] == rows["notice-sms"]["idempotency_key"]]
        assert len(outbox) == 1


async def test_a_withdrawn_send_the_provider_took_is_recorded_as_sent(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """Measured before (the chaos proof, issue 12's CI): the provider took the SMS, its
    attempt never answered, the borrower's payment withdrew the send and the server ended
    the attempt; the row stayed 'claimed' for ever and the contact was never counted. The
    workflow now settles a withdrawn send at the channel."""
    provider = AnswerLost(ledger)
    async with rig(ts_env, ledger, channel=provider) as r:
        await advance_to_local(Harness(ts_env, r.client, ledger, ""), SHANGHAI, time(9, 0))
        loan = make_loan(await ts_env.get_current_time(), dpd=1)  # notice-sms at 10:00
        await r.client.start(loan, STANDARD)
        await ts_env.sleep(timedelta(hours=1, minutes=1))
        await asyncio.wait_for(provider.accepted.wait(), 30)
        await r.client.report_payment(loan.loan_id, payment("1000.00", "PAID-IN-FULL"))
        provider.release.set()
        assert (await r.client.result(loan.loan_id)).outcome == "PAID"
        rows = {c["step"]: c for c in await r.rows(t.contact_attempts, loan_id=loan.loan_id)}
        sms = rows["notice-sms"]
        outbox = {m["idempotency_key"]: m for m in await r.rows(t.outbox_messages)}
        assert sms["status"] == "sent"
        assert sms["provider_message_id"] == f"outbox-{outbox[sms['idempotency_key']]['id']}"
        assert "contact_attempt" in await kinds(r, loan.loan_id)
