"""Consent is the borrower's, not one loan's (issue 13 item 4, review findings): a withdrawal
reaches every open loan of the borrower, a loan handed over later starts from the consent
ledger's standing, and the send path refuses a channel the ledger says was withdrawn even
when the loan never heard of it. Real servers: the time-skipping Temporal server, the
ledger, our API in process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from duecourse.domain.actor import Actor, ActorKind
from duecourse.inbound.store import InboundStore
from duecourse.policies import load_policy
from duecourse.store import tables as t
from tests.factories import make_loan
from tests.test_inbound import Inbound, inbound, texted_loan

__all__ = ["inbound"]  # the fixture, shared with tests/test_inbound.py


async def sibling(i: Inbound, borrower: dict[str, object]) -> str:
    """Another loan of the same borrower, handed over now."""
    loan = make_loan(await i.h.env.get_current_time(), dpd=2, **borrower)
    await i.h.client.start(loan, load_policy("standard"))
    await i.h.settle(loan.loan_id)
    return loan.loan_id


async def test_a_withdrawal_reaches_every_open_loan_and_later_hand_overs(
        inbound: Inbound) -> None:
    i = inbound
    first = await texted_loan(i)
    b = first.borrower
    same = {"borrower_id": b.borrower_id, "phones": list(b.phones), "email": b.email}
    second = await sibling(i, same)
    agent = {"Authorization": f"Bearer {i.agent_key}"}
    said = await i.http.post(f"/v1/loans/{first.loan_id}/consents", headers=agent, json={
        "channel": "email", "action": "withdrawn", "source": "call"})
    assert said.status_code == 201, said.text
    for loan_id in (first.loan_id, second):
        assert "email" in (await i.h.client.status(loan_id)).standing.opted_out, loan_id
    assert (await i.reply(b.phones[0], "STOP")).json() == {"result": "opted_out"}
    later = await sibling(i, same)  # handed over after both withdrawals
    standing = (await i.h.client.status(later)).standing
    assert {"sms", "email"} <= set(standing.opted_out), "the new loan starts opted out"
    sent = [r for r in await i.rows(t.contact_attempts, loan_id=later)
            if r["status"] == "sent" and r["channel"] in ("sms", "email")]
    assert sent == [], "nothing by a channel the borrower withdrew from"
    events = [(e["kind"], e["actor_kind"]) for e in
              await i.rows(t.audit_events, loan_id=later) if e["kind"] == "opted_out"]
    assert events == [("opted_out", "system")] * 2, "proved in the new loan's history"


async def test_the_send_path_refuses_a_channel_the_ledger_says_was_withdrawn(
        inbound: Inbound) -> None:
    """A STOP that reached the ledger while the loan was not told (its hand-over wrote the
    loan's row just after the STOP listed the borrower's loans): the loan still plans its
    SMS, the send stops it."""
    i = inbound
    loan = await texted_loan(i)
    await InboundStore(i.h.ledger.engine).record_consent(
        loan.borrower.borrower_id, None, "sms", "withdrawn", "sms_reply",
        Actor(kind=ActorKind.BORROWER, id=loan.borrower.borrower_id),
        occurred_at=datetime.now(UTC))
    assert "sms" not in (await i.h.client.status(loan.loan_id)).standing.opted_out
    await i.h.env.sleep(timedelta(days=6))  # past reminder-sms (self-cure: 1.5 x 4 d 18 h)
    sms = [(r["step"], r["status"]) for r in
           await i.rows(t.contact_attempts, loan_id=loan.loan_id) if r["channel"] == "sms"]
    assert sms == [("notice-sms", "sent"), ("reminder-sms", "cancelled")], sms
