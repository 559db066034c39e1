"""The fenced send on its own: the claim and its lease, the channel's budget, the window,
the workflow's last word, error kinds - on real databases and a real Temporal server."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.testing import ActivityEnvironment

from duecourse.activities.errors import LEDGER_DATA_ERROR, LEDGER_UNAVAILABLE, ledger_error
from duecourse.activities.messaging import MessagingActivities
from duecourse.audit import run_audit
from duecourse.channels import OutboxChannel, OutgoingMessage
from duecourse.domain.actor import SYSTEM
from duecourse.domain.entries import ComplianceDecided
from duecourse.domain.policy import Channel
from duecourse.inbound.store import InboundStore
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.sends import LeaseLost, SendInFlight, SendLedger
from duecourse.temporal.contracts import OpenLoan, SendMessage
from tests.conftest import Harness, advance_to_local
from tests.factories import make_loan, payment
from tests.test_ledger import engine as ledger_engine
from tests.test_workflow_negotiation import STANDARD, start

db = ledger_engine
"""The ledger tests' engine fixture: SQLite, and PostgreSQL when one answers."""

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai
LEASE = timedelta(seconds=60)


def request(case_id: str, step: str = "notice-sms", decision: str = "decision:1:x:sms:1",
            not_after: datetime | None = None, workflow_id: str = "collection-L-1",
            ) -> SendMessage:
    return SendMessage(
        idempotency_key=f"{case_id}:contact:1:{step}", case_id=case_id, workflow_id=workflow_id,
        loan_id="L-1", stage="REMINDER", step=step, channel=Channel.SMS,
        template="overdue_notice", language="en", recipient="+8613800138000",
        jurisdiction="CN", scheduled_for=NOW, not_after=not_after or NOW + timedelta(hours=1),
        decision=ComplianceDecided(
            key=decision, occurred_at=NOW, actor=SYSTEM, step=step, channel="sms",
            recipient="+8613800138000", recipient_kind="debtor", purpose="collection",
            proposed_at=NOW, verdict="allowed", valid_until=NOW + timedelta(hours=1)),
        context={"borrower_name": "Li Wei", "loan_id": "L-1", "amount": "1,000.00 CNY",
                 "due_date": "2026-11-29", "days_past_due": "2", "cure_days": "14"})


async def opened(engine: AsyncEngine) -> tuple[Ledger, str]:
    ledger = Ledger(engine)
    loan = make_loan(NOW, dpd=2)
    case_id = f"case-{loan.loan_id}"
    await ledger.open_case(OpenLoan(case_id=case_id, workflow_id=loan.workflow_id, loan=loan,
                                    policy="standard@1", opened_at=NOW))
    return ledger, case_id


async def row(engine: AsyncEngine, key: str) -> dict[str, Any]:
    rows = await Ledger(engine).rows(t.contact_attempts, idempotency_key=key)
    assert len(rows) == 1
    return rows[0]


# --------------------------------------------------------------------------- the claim
async def test_a_claim_records_its_decision_and_keeps_other_attempts_out(db: AsyncEngine,
                                                                         ) -> None:
    ledger, case_id = await opened(db)
    sends, req = SendLedger(ledger), request(case_id)
    claim = await sends.claim(req, "subject", "body", "en", "attempt-1", NOW, LEASE)
    assert claim.ours and claim.lease_until == NOW + LEASE
    decided = await ledger.rows(t.compliance_decisions, case_id=case_id)
    assert [d["idempotency_key"] for d in decided] == [f"{case_id}:{req.decision.key}"]
    assert (await row(db, req.idempotency_key))["status"] == "claimed"

    with pytest.raises(SendInFlight):  # a second attempt while the first may be sending
        await sends.claim(req, "subject", "body", "en", "attempt-2", NOW + LEASE / 2, LEASE)
    # the first attempt died without a word: after its lease another may take over
    later = await sends.claim(req, "subject", "body", "en", "attempt-2", NOW + LEASE * 2,
                              LEASE)
    assert later.ours
    with pytest.raises(LeaseLost):  # and the first can no longer count a channel call
        await sends.count_attempt(req.idempotency_key, "attempt-1")
    assert await sends.count_attempt(req.idempotency_key, "attempt-2") == 1

    await sends.record_sent(req, "outbox-7", NOW + LEASE * 2, NOW + LEASE * 2)
    final = await sends.claim(req, "subject", "body", "en", "attempt-3", NOW + LEASE * 3,
                              LEASE)
    assert (final.status, final.provider_message_id) == ("sent", "outbox-7")
    kinds = [e["kind"] for e in await ledger.rows(t.audit_events, case_id=case_id)]
    assert kinds.count("contact_attempt") == 1


async def test_a_fenced_or_expired_send_may_be_decided_again(db: AsyncEngine) -> None:
    ledger, case_id = await opened(db)
    sends = SendLedger(ledger)
    first = request(case_id, decision="decision:1:x:sms:1")
    await sends.claim(first, None, "body", "en", "a1", NOW, LEASE)
    await sends.count_attempt(first.idempotency_key, "a1")
    await sends.release(first.idempotency_key, "a1", "expired", "its lawful window closed")
    again = request(case_id, decision="decision:1:x:sms:2")
    claim = await sends.claim(again, None, "body", "en", "a2", NOW + timedelta(hours=2), LEASE)
    assert claim.ours and claim.channel_attempts == 0, "a new decision, a fresh budget"
    stored = await row(db, again.idempotency_key)
    assert stored["decision_key"] == f"{case_id}:decision:1:x:sms:2"


async def test_a_new_decision_reclaims_a_row_on_its_own_channel_and_budget(
        db: AsyncEngine) -> None:
    """A stopped SMS decided again as an email must be recorded as the email (the audit
    judges the row's channel and address), and a failed send retried after a person fixed
    its cause (a new decision) gets its own attempts; a row released after a channel call
    is in doubt, not 'never sent'."""
    ledger, case_id = await opened(db)
    sends = SendLedger(ledger)
    sms = request(case_id, decision="decision:1:x:sms:1")
    await sends.claim(sms, None, "sms body", "en", "a1", NOW, LEASE)
    await sends.count_attempt(sms.idempotency_key, "a1")
    await sends.release(sms.idempotency_key, "a1", "cancelled", "opted out of sms")
    assert (await row(db, sms.idempotency_key))["status"] == "in_doubt"
    email = request(case_id, decision="decision:1:x:email:1").model_copy(update={
        "channel": Channel.EMAIL, "recipient": "li.wei@example.com"})
    await sends.claim(email, "subject", "email body", "en", "a2", NOW + LEASE * 2, LEASE)
    stored = await row(db, email.idempotency_key)
    assert (stored["channel"], stored["recipient"], stored["channel_attempts"]) == (
        "email", "li.wei@example.com", 0)
    await sends.release(email.idempotency_key, "a2", "failed", "provider refused")
    again = await sends.claim(email, "subject", "email body", "en", "a3", NOW + LEASE * 3,
                              LEASE)
    assert again.status == "failed", "the same decision: failed stays failed"
    fixed = email.model_copy(update={"decision": email.decision.model_copy(
        update={"key": "decision:1:x:email:2"})})
    assert (await sends.claim(fixed, "subject", "email body", "en", "a4",
                              NOW + LEASE * 4, LEASE)).ours


# ------------------------------------------------- an attempt that died after the channel
async def died_after_the_channel(ledger: Ledger, req: SendMessage) -> str:
    """An attempt claimed `req`, called the channel, which took the message, and died
    before recording it: the row is left claimed under a lease that runs out."""
    sends = SendLedger(ledger)
    await sends.claim(req, None, "body", "en", "1:dead", NOW, LEASE)
    await sends.count_attempt(req.idempotency_key, "1:dead")
    return await OutboxChannel(ledger).send(OutgoingMessage(
        idempotency_key=req.idempotency_key, channel="sms", recipient=req.recipient,
        subject=None, body="body"))


def attempt_at(at: datetime) -> ActivityEnvironment:
    env = ActivityEnvironment()  # no client: an attempt that asks its workflow fails
    env.info = dataclasses.replace(env.info, started_time=at, attempt=2)
    return env


async def test_a_message_the_channel_took_before_its_attempt_died_is_recorded_as_sent(
        db: AsyncEngine) -> None:
    """Measured before: the next attempt found the lawful window closed (or a stop fact)
    and released the row as in doubt, though the borrower had the message. It now asks
    the channel first and records what it took, without calling it again."""
    ledger, case_id = await opened(db)
    req = request(case_id, not_after=NOW + timedelta(minutes=1))
    message_id = await died_after_the_channel(ledger, req)
    acts = MessagingActivities(ledger, OutboxChannel(ledger), "Acme", "400-800")
    sent = await attempt_at(NOW + LEASE * 2).run(acts.send_message, req)
    assert (sent.status, sent.message_id, sent.recorded) == ("sent", message_id, True)
    stored = await row(db, req.idempotency_key)
    assert (stored["status"], stored["provider_message_id"]) == ("sent", message_id)
    assert stored["channel_attempts"] == 1, "the channel was not called again"
    assert stored["sent_via"] == "outbox", "which adapter took it"
    assert stored["fenced_at"] is None, "when its last check passed died with the attempt"
    assert len(await ledger.rows(t.outbox_messages)) == 1


async def test_settling_a_withdrawn_send_waits_for_its_lease_then_asks_the_channel(
        db: AsyncEngine) -> None:
    ledger, case_id = await opened(db)
    acts = MessagingActivities(ledger, OutboxChannel(ledger), "Acme", "400-800")
    taken = request(case_id)
    message_id = await died_after_the_channel(ledger, taken)
    with pytest.raises(ApplicationError) as held:  # the attempt may still be calling
        await attempt_at(NOW + LEASE / 2).run(acts.settle_send, taken)
    assert held.value.type == "SendInFlight" and not held.value.non_retryable
    settled = await attempt_at(NOW + LEASE * 2).run(acts.settle_send, taken)
    assert settled is not None and settled.message_id == message_id
    assert (await row(db, taken.idempotency_key))["status"] == "sent"
    again = await attempt_at(NOW + LEASE * 3).run(acts.settle_send, taken)
    assert again is not None and again.duplicate, "settling twice finds it sent"

    lost = request(case_id, step="notice-email")  # called, but the channel never took it
    sends = SendLedger(ledger)
    await sends.claim(lost, None, "body", "en", "1:dead", NOW, LEASE)
    await sends.count_attempt(lost.idempotency_key, "1:dead")
    assert await attempt_at(NOW + LEASE * 2).run(acts.settle_send, lost) is None
    assert (await row(db, lost.idempotency_key))["status"] == "cancelled", \
        "the channel says it never took it: not in doubt"
    never = request(case_id, step="never-claimed")
    assert await attempt_at(NOW).run(acts.settle_send, never) is None


async def test_an_address_a_provider_reported_invalid_is_never_sent_to_again(
        db: AsyncEngine) -> None:
    """A hard bounce or an invalid-number receipt marks the address; the next send to it
    fails for good before the channel is called, so nobody keeps texting a dead number."""
    ledger, case_id = await opened(db)
    req = request(case_id)
    await InboundStore(db).mark_unreachable("sms", req.recipient, "21211 invalid To", "L-1")
    acts = MessagingActivities(ledger, OutboxChannel(ledger), "Acme", "400-800")
    with pytest.raises(ApplicationError) as refused:
        await attempt_at(NOW).run(acts.send_message, req)
    assert refused.value.type == "AddressUnreachable" and refused.value.non_retryable
    stored = await row(db, req.idempotency_key)
    assert (stored["status"], stored["channel_attempts"]) == ("failed", 0)
    assert await ledger.rows(t.outbox_messages) == []


# --------------------------------------------------------------------------- error kinds
async def test_ledger_errors_are_classified_and_carry_no_values(db: AsyncEngine) -> None:
    await opened(db)
    secret = "Li Wei, +8613800138000"
    values = {"idempotency_key": "dup", "channel": "sms", "recipient": secret,
              "subject": None, "body": secret, "created_at": NOW}
    async with db.begin() as conn:
        await conn.execute(insert(t.outbox_messages).values(values))
    with pytest.raises(SQLAlchemyError) as duplicate:
        async with db.begin() as conn:
            await conn.execute(insert(t.outbox_messages).values(values))
    refused = ledger_error(duplicate.value, "keeping a message")
    assert (refused.type, refused.non_retryable) == (LEDGER_DATA_ERROR, True)
    assert "Li Wei" not in refused.message and "+86" not in refused.message
    with pytest.raises(SQLAlchemyError) as missing:
        async with db.begin() as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))
    away = ledger_error(missing.value, "claiming the send")
    # SQLite says OperationalError (as for a locked or unreadable file: wait and retry);
    # PostgreSQL says the schema does not match the code (a deploy to fix: do not retry)
    expected = LEDGER_UNAVAILABLE if db.dialect.name == "sqlite" else LEDGER_DATA_ERROR
    assert away.type == expected and away.non_retryable is (expected == LEDGER_DATA_ERROR)
    refused = ledger_error(ConnectionRefusedError(111, "connection refused"), "x")
    assert (refused.type, refused.non_retryable) == (LEDGER_UNAVAILABLE, False)


# --------------------------------------------------------------------------- the activity
async def test_a_send_past_its_lawful_window_never_reaches_the_channel(db: AsyncEngine) -> None:
    ledger, case_id = await opened(db)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, started_time=NOW + timedelta(hours=2))
    acts = MessagingActivities(ledger, OutboxChannel(ledger), "Acme", "400-800")
    req = request(case_id)
    with pytest.raises(ApplicationError, match="window it was allowed in closed") as err:
        await env.run(acts.send_message, req)
    assert err.value.type == "WindowClosed" and err.value.non_retryable
    assert (await row(db, req.idempotency_key))["status"] == "expired"
    assert await ledger.rows(t.outbox_messages) == []


async def test_the_workflows_last_word_fences_a_send_it_no_longer_awaits(
        harness: Harness) -> None:
    """A send the workflow gave up on (a reset, a cancellation that raced the attempt) asks
    first and is told no; a workflow that cannot answer makes it wait, never send."""
    h = harness
    loan = await start(h, STANDARD, dpd=3)
    case_id = (await h.rows(t.collection_cases, loan_id=loan.loan_id))[0]["case_id"]
    env = ActivityEnvironment(client=h.env.client)
    env.info = dataclasses.replace(env.info, started_time=await h.env.get_current_time())
    acts = MessagingActivities(h.ledger, OutboxChannel(h.ledger), "Acme", "400-800")
    stray = request(case_id, step="stray-step", workflow_id=loan.workflow_id,
                    not_after=await h.env.get_current_time() + timedelta(hours=1))
    with pytest.raises(ApplicationError, match="no longer awaited") as err:
        await env.run(acts.send_message, stray)
    assert err.value.type == "StopFact"
    # an expected answer, not a fault: the worker logs it without a traceback
    assert err.value.category is ApplicationErrorCategory.BENIGN
    assert (await row(h.ledger.engine, stray.idempotency_key))["status"] == "cancelled"
    unknown = request(case_id, step="orphan", workflow_id="collection-nobody",
                      not_after=await h.env.get_current_time() + timedelta(hours=1))
    with pytest.raises(ApplicationError) as unanswered:
        await env.run(acts.send_message, unknown)
    assert unanswered.value.type == "FenceUnavailable" and not unanswered.value.non_retryable
    sent = {m["idempotency_key"] for m in await h.rows(t.outbox_messages)}
    assert stray.idempotency_key not in sent and unknown.idempotency_key not in sent


# --------------------------------------------------------------------------- the audit
async def test_the_audit_flags_sends_after_a_close_or_outside_their_window(
        harness: Harness) -> None:
    """Measured before: sends retried through a ledger outage reached paid borrowers, and
    the audit - checking each contact when it was planned - saw nothing."""
    h = harness
    await advance_to_local(h, ZoneInfo("Asia/Shanghai"), time(12, 0))
    loan = await start(h, STANDARD, dpd=3)
    await h.client.report_payment(loan.loan_id, payment("1000.00", "ALL"))
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"
    assert (await run_audit(h.ledger)).clean
    case = (await h.rows(t.collection_cases, loan_id=loan.loan_id))[0]
    sent = [r for r in await h.rows(t.contact_attempts, loan_id=loan.loan_id)
            if r["status"] == "sent"]
    decision = next(d for d in await h.rows(t.compliance_decisions, loan_id=loan.loan_id)
                    if f"{case['case_id']}:{d['idempotency_key'].split(':', 1)[1]}"
                    == sent[0]["decision_key"])
    late = decision["valid_until"] + timedelta(minutes=5)
    planted = [{**{k: v for k, v in sent[0].items() if k != "id"},
                "idempotency_key": "planted-late", "step": "late-retry",
                "fenced_at": late, "sent_at": late},
               {**{k: v for k, v in sent[0].items() if k != "id"},
                "idempotency_key": "planted-after-close", "step": "after-paid",
                "decision_key": None, "fenced_at": case["closed_at"] + timedelta(seconds=30),
                "sent_at": case["closed_at"] + timedelta(seconds=31)}]
    async with h.ledger.engine.begin() as conn:
        await conn.execute(insert(t.contact_attempts).values(planted))
    report = await run_audit(h.ledger)
    codes = {(v.step, v.code) for v in report.violations}
    assert ("late-retry", "outside_decided_window") in codes
    assert ("after-paid", "after_close") in codes
