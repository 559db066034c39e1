"""No borrower PII in the raw histories of the longer paths: a loan through an instalment
plan (its child too) and one through legal (its case child too), with an agent's notes, a
supervisor's reason and case details that quote the borrower's name, phone, address and
email - every payload sealed, every description clean (tests/test_payload_encryption.py
covers reminders, contacts, refusals, failures and payments)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult, LegalDecision
from duecourse.domain.legal.case import CaseEvent, CaseEventKind
from duecourse.domain.policy import Channel
from duecourse.security.payload_codec import ENCODING
from tests.conftest import Harness
from tests.factories import AGENT, SUPERVISOR, payment
from tests.support.sealing import patch_marker, payloads_in
from tests.test_payload_encryption import BORROWERS, family, leaks
from tests.test_workflow_negotiation import plan_of, start, today


async def scan(h: Harness, loan: Any) -> list[str]:
    """What in `loan`'s workflows and their children shows PII or an unsealed payload."""
    problems = []
    for handle in await family(h.env.client, loan):
        history = await handle.fetch_history()
        raw = b"".join(e.SerializeToString() for e in history.events)
        if leaks(raw):
            problems.append(f"{handle.id}: {leaks(raw)}")
        unsealed = [p.metadata.get("encoding") for e in history.events if not patch_marker(e)
                    for p in payloads_in(e) if p.metadata.get("encoding") != ENCODING]
        if unsealed:
            problems.append(f"{handle.id} unsealed {unsealed}")
        d = await handle.describe()
        if leaks(d.raw_description.SerializeToString()):
            problems.append(f"{handle.id} description")
    return problems


async def test_plan_and_legal_histories_hold_no_pii(harness: Harness) -> None:
    h = harness
    b0, b1 = BORROWERS
    who0 = {"name": b0["name"], "phones": b0["phones"], "email": b0["email"],
            "address": b0["address"]}
    who1 = {"name": b1["name"], "phones": b1["phones"], "email": b1["email"],
            "address": b1["address"]}
    plan_loan = await start(h, dpd=10, outstanding="600.00", **who0)
    first = await today(h, plan_loan) + timedelta(days=7)
    proposal = plan_of(first, ["300.00", "300.00"]).model_copy(
        update={"note": f"agreed with {b0['name']} at {b0['phones'][0]}"})
    accepted = await h.client.propose_plan(plan_loan.loan_id, proposal)
    assert accepted.workflow_id
    await h.env.sleep(timedelta(days=8))
    await h.client.report_payment(plan_loan.loan_id, payment("300.00", "P-1"))
    await h.settle(plan_loan.loan_id)

    legal_loan = await start(h, dpd=5, **who1)
    await h.client.record_contact_outcome(legal_loan.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT,
        note=f"{b1['name']} lives at {b1['address']}"))
    await h.env.sleep(timedelta(days=46))
    await h.client.decide_legal_referral(legal_loan.loan_id, LegalDecision(
        approve=True, actor=SUPERVISOR, reason=f"refer {b1['name']}"))
    await h.env.sleep(timedelta(hours=1))
    day = await today(h, legal_loan)
    await h.client.record_case_event(legal_loan.loan_id, CaseEvent(
        kind=CaseEventKind.FILED, occurred_on=day, actor=SUPERVISOR,
        details=f"{b1['name']}, {b1['email']}"))
    status = await h.client.status(legal_loan.loan_id)
    await h.client.report_payment(legal_loan.loan_id, payment(
        str(status.outstanding.amount), "L-PAID"))
    assert (await h.client.result(legal_loan.loan_id)).outcome == "PAID"
    await h.settle(legal_loan.loan_id)
    fams = [len(await family(h.env.client, x)) for x in (plan_loan, legal_loan)]
    assert all(f >= 2 for f in fams), fams
    problems = await scan(h, plan_loan) + await scan(h, legal_loan)
    assert not problems, problems
