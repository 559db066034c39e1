"""Compliance inside the workflow, on the time-skipping server: every contact asks the
engine; deferrals wait on a durable timer; blocks are recorded; freezes pause collection."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from duecourse.audit import run_audit
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult
from duecourse.domain.compliance import HoldKind, Verdict
from duecourse.domain.compliance.requests import (
    ContactRequest,
    DisputeChange,
    HoldRequest,
    LifeEvent,
    PreferenceChange,
)
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Channel
from duecourse.policies import load_policy
from duecourse.store import tables as t
from duecourse.temporal.client import ActionRejected
from tests.conftest import Harness, advance_to_local
from tests.factories import AGENT, make_loan

STANDARD = load_policy("standard").model_copy(update={"segments": {}})  # timing as written
SHANGHAI, NEW_YORK, LONDON = (ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York"),
                              ZoneInfo("Europe/London"))
TOLERANCE = timedelta(seconds=2)


async def start(h: Harness, **kwargs: object) -> LoanIntake:
    loan = make_loan(await h.env.get_current_time(), **kwargs)  # type: ignore[arg-type]
    await h.client.start(loan, STANDARD)
    await h.settle(loan.loan_id)
    return loan


def us_loan(**kwargs: object) -> dict[str, object]:
    return {"tz": "America/New_York", "jurisdiction": "US-NY", "currency": "USD",
            "language": "en", "phones": ["+12125550134"], **kwargs}


def gb_loan(**kwargs: object) -> dict[str, object]:
    return {"tz": "Europe/London", "jurisdiction": "GB", "currency": "GBP",
            "language": "en", "phones": ["+447700900123"], **kwargs}


async def contacts(h: Harness, loan: LoanIntake) -> list[dict]:
    await h.settle(loan.loan_id)  # the workflow writes the ledger asynchronously
    return await h.ledger.rows(t.contact_attempts, loan_id=loan.loan_id)


async def decisions(h: Harness, loan: LoanIntake) -> list[dict]:
    await h.settle(loan.loan_id)
    return await h.ledger.rows(t.compliance_decisions, loan_id=loan.loan_id)


async def test_late_night_first_reminder_goes_at_08_00_shanghai(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, SHANGHAI, time(23, 30))
    loan = await start(h, dpd=2)
    assert await contacts(h, loan) == []
    status = await h.client.status(loan.loan_id)
    assert status.next_action is not None
    morning = status.next_action.due_at.astimezone(SHANGHAI)
    assert morning.time() == time(8, 0) and morning.date() > loan.due_date

    await h.env.sleep(timedelta(hours=9))
    sent = await contacts(h, loan)
    assert sent, "the reminder goes out in the morning"
    first = sent[0]["scheduled_for"].astimezone(SHANGHAI)
    assert abs(first - morning) < TOLERANCE
    verdicts = [(d["verdict"], d["code"]) for d in await decisions(h, loan)]
    assert verdicts[0] == ("deferred", "hours") and ("allowed", "") in verdicts
    deferred = (await decisions(h, loan))[0]
    assert deferred["until"] == morning and "22:00-08:00" in deferred["rule"]


async def test_us_eighth_call_attempt_in_seven_days_is_deferred(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, NEW_YORK, time(10, 0))
    loan = await start(h, dpd=2, **us_loan())
    first_notice = (await contacts(h, loan))[0]
    assert first_notice["purpose"] == "validation_notice", "Reg F: validation notice first"
    ask = ContactRequest(channel=Channel.VOICE, actor=AGENT)
    first_call = None
    for attempt in range(7):
        decision = await h.client.request_contact(loan.loan_id, ask)
        assert decision.verdict is Verdict.ALLOWED, (attempt, decision)
        first_call = first_call or decision.at
        await h.env.sleep(timedelta(minutes=20))
    eighth = await h.client.request_contact(loan.loan_id, ask)
    assert eighth.verdict is Verdict.DEFERRED and eighth.code == "call_frequency"
    assert eighth.until is not None and first_call is not None
    # seven consecutive local days from the first call's day: 08:00 on the eighth day
    first_day = first_call.astimezone(NEW_YORK).date()
    eighth_day = datetime.combine(first_day + timedelta(days=7), time(8, 0), NEW_YORK)
    assert eighth.until == eighth_day
    assert "1006.14(b)(2)(i)(A)" in eighth.rule
    agent_rows = [c for c in await contacts(h, loan) if c["status"] == "made_by_person"]
    assert len(agent_rows) == 7
    recorded = [d for d in await decisions(h, loan)
                if d["step"] == "agent-contact" and d["actor_id"] == AGENT.id]
    assert [d["verdict"] for d in recorded] == ["allowed"] * 7 + ["deferred"]
    us_sms = [c for c in await contacts(h, loan) if c["channel"] in ("sms", "email")]
    assert all("debt collector" in c["body"] for c in us_sms)


async def test_dispute_freezes_all_contact_until_verified(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, SHANGHAI, time(11, 0))
    loan = await start(h, dpd=1)
    before = len(await contacts(h, loan))
    await h.client.dispute(loan.loan_id, DisputeChange(action="opened", actor=AGENT,
                                                       reason="borrower says already paid"))
    status = await h.client.status(loan.loan_id)
    assert status.frozen is not None and status.frozen.startswith("dispute")
    await h.env.sleep(timedelta(days=20))
    status = await h.client.status(loan.loan_id)
    assert len(await contacts(h, loan)) == before, "no contact while disputed"
    assert status.stage == "REMINDER", "no escalation while disputed"
    denied = await h.client.request_contact(loan.loan_id, ContactRequest(
        channel=Channel.VOICE, actor=AGENT))
    assert denied.verdict is Verdict.BLOCKED and denied.code == "dispute"

    await h.client.dispute(loan.loan_id, DisputeChange(action="verified", actor=AGENT,
                                                       reason="statement sent"))
    assert (await h.client.status(loan.loan_id)).frozen is None
    await h.env.sleep(timedelta(days=2))
    assert len(await contacts(h, loan)) > before, "collection resumes after verification"
    status = await h.client.status(loan.loan_id)
    assert status.stage == "REMINDER", "the frozen days are given back to the borrower"
    await h.settle(loan.loan_id)
    kinds = [r["kind"] for r in await h.ledger.rows(t.audit_events, loan_id=loan.loan_id)]
    assert kinds.index("collection_frozen") < kinds.index("collection_resumed")


async def test_uk_breathing_space_silences_sixty_days_then_resumes(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, LONDON, time(12, 0))
    loan = await start(h, dpd=1, **gb_loan())
    before = len(await contacts(h, loan))
    request = HoldRequest(action="start", kind=HoldKind.BREATHING_SPACE, actor=AGENT,
                          reference="DRS-123")
    status = await h.client.hold(loan.loan_id, request)
    assert status.frozen is not None and "breathing space" in status.frozen
    with pytest.raises(ActionRejected, match="already active"):
        await h.client.hold(loan.loan_id, request)
    await h.env.sleep(timedelta(days=59))
    assert len(await contacts(h, loan)) == before
    assert (await h.client.status(loan.loan_id)).stage == "REMINDER"
    await h.env.sleep(timedelta(days=2))
    status = await h.client.status(loan.loan_id)
    assert status.frozen is None
    await h.env.sleep(timedelta(days=3))
    after = await contacts(h, loan)
    assert len(after) > before, "collection resumes when the breathing space ends"
    assert all(row["scheduled_for"] >= status.stage_history[0].entered_at +
               timedelta(days=60) for row in after[before:])
    assert "MoneyHelper" in after[-1]["body"] or after[-1]["channel"] in ("sms", "voice")
    # a second one within 12 months is honoured (the debt adviser checks eligibility; we
    # comply and may ask for a review, DRS reg 17): frozen again, a supervisor warned
    status = await h.client.hold(loan.loan_id, request)
    assert status.frozen is not None and "breathing space" in status.frozen
    await h.settle(loan.loan_id)
    reviews = [r for r in await h.ledger.rows(t.tasks, loan_id=loan.loan_id)
               if r["kind"] == "review_moratorium"]
    assert len(reviews) == 1 and reviews[0]["assignee"] == "supervisors"


async def test_opting_out_of_sms_moves_reminders_to_other_channels(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, SHANGHAI, time(12, 0))
    loan = await start(h, dpd=2)
    await h.client.update_contact_preferences(loan.loan_id, PreferenceChange(
        opt_out=[Channel.SMS], actor=AGENT, note="replied TD"))
    await h.env.sleep(timedelta(days=4))
    sms_steps = [c for c in await contacts(h, loan) if c["step"] == "reminder-sms"]
    assert len(sms_steps) == 1 and sms_steps[0]["channel"] == "email"
    opted = next(e["occurred_at"] for e in await h.rows(t.audit_events, loan_id=loan.loan_id)
                 if e["kind"] == "opted_out")
    later = [c for c in await contacts(h, loan) if c["scheduled_for"] >= opted]
    assert later and all(c["channel"] != "sms" for c in later)
    blocked = [d for d in await decisions(h, loan)
               if d["step"] == "reminder-sms" and d["verdict"] == "blocked"]
    assert blocked and blocked[0]["code"] == "opted_out" and blocked[0]["channel"] == "sms"


async def test_deceased_stops_everything(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, SHANGHAI, time(11, 0))
    loan = await start(h, dpd=1)
    before = len(await contacts(h, loan))
    await h.client.life_event(loan.loan_id, LifeEvent(kind="deceased", actor=AGENT,
                                                      reference="certificate 42"))
    await h.env.sleep(timedelta(days=60))
    status = await h.client.status(loan.loan_id)
    assert status.frozen is not None and status.frozen.startswith("deceased")
    assert status.stage == "REMINDER" and status.next_action is not None
    assert status.next_action.kind == "write_off"
    assert len(await contacts(h, loan)) == before
    decision = await h.client.request_contact(loan.loan_id, ContactRequest(
        channel=Channel.VISIT, actor=AGENT, collectors=2))
    assert decision.verdict is Verdict.BLOCKED and decision.code == "deceased"


async def test_uk_loan_is_offered_forbearance_before_legal(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, LONDON, time(12, 0))
    loan = await start(h, dpd=5, **gb_loan())
    from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult

    await h.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT))
    await h.env.sleep(timedelta(days=31))
    status = await h.client.status(loan.loan_id)
    assert status.stage == "NEGOTIATION", "no legal action before forbearance is offered"
    offers = [c for c in await contacts(h, loan) if c["purpose"] == "forbearance_offer"]
    assert len(offers) == 1
    await h.env.sleep(timedelta(days=15))
    status = await h.client.status(loan.loan_id)
    assert status.stage == "LEGAL"
    assert status.stage_history[-1].entered_at >= offers[0]["scheduled_for"] + timedelta(days=14)


async def test_audit_is_clean_for_a_real_run_and_finds_a_planted_violation(
        harness: Harness) -> None:
    h = harness
    await advance_to_local(h, SHANGHAI, time(23, 0))
    loan = await start(h, dpd=3)
    await h.client.update_contact_preferences(loan.loan_id, PreferenceChange(
        opt_out=[Channel.SMS], actor=AGENT))
    await h.env.sleep(timedelta(days=5))
    for _ in range(3):
        await h.client.request_contact(loan.loan_id, ContactRequest(channel=Channel.VOICE,
                                                                    actor=AGENT))
    await h.settle(loan.loan_id)
    clean = await run_audit(h.ledger)
    assert clean.clean, clean.violations
    assert clean.contacts_checked >= 3 and clean.decisions.get("deferred/hours", 0) >= 1
    code, out = await audit_cli(h)
    assert code == 0 and "No violations" in out

    row = (await contacts(h, loan))[-1]
    night = datetime.combine(row["scheduled_for"].astimezone(SHANGHAI).date(), time(23, 30),
                             tzinfo=SHANGHAI)
    planted = {k: v for k, v in row.items() if k != "id"}
    planted.update(idempotency_key="planted", channel="sms", step="rogue-sms",
                   scheduled_for=night, attempted_at=night, fenced_at=night, sent_at=night,
                   recipient="+8613800138000", decision_key=None)
    async with h.ledger.engine.begin() as conn:
        await conn.execute(t.contact_attempts.insert().values(planted))
    report = await run_audit(h.ledger)
    codes = {(v.step, v.code) for v in report.violations}
    assert codes == {("rogue-sms", "hours"), ("rogue-sms", "policy_hours"),
                     ("rogue-sms", "opted_out")}
    code, out = await audit_cli(h)
    assert code == 1 and "3 violations" in out and "22:00-08:00" in out


async def test_audit_checks_contacts_that_agents_only_reported(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, SHANGHAI, time(12, 0))
    loan = await start(h, dpd=3)
    asked = await h.client.request_contact(loan.loan_id, ContactRequest(
        channel=Channel.VOICE, actor=AGENT))
    assert asked.verdict is Verdict.ALLOWED
    await h.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.NO_ANSWER, actor=AGENT))
    await h.settle(loan.loan_id)
    report = await run_audit(h.ledger)
    assert report.clean, report.violations  # the outcome completes the call it asked about
    checked = report.contacts_checked

    await advance_to_local(h, SHANGHAI, time(23, 30))
    await h.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT,
        note="called the borrower late at night without asking"))
    await h.settle(loan.loan_id)
    report = await run_audit(h.ledger)
    assert report.contacts_checked > checked
    assert {v.step for v in report.violations} == {"reported by agent-7"}
    assert "hours" in {v.code for v in report.violations}
    assert all(v.recipient == "+8613800138000" for v in report.violations)


async def audit_cli(h: Harness) -> tuple[int, str]:
    """`duecourse audit` as a user runs it, on this test's ledger."""
    env = {**os.environ, "DUECOURSE_DATABASE_URL":
           h.ledger.engine.url.render_as_string(hide_password=False), "COLUMNS": "250"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", "audit", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()
