"""Click to dial: an agent's call goes through the dialer only once the engine allowed it.

One function for the API (`POST /v1/loans/{loan_id}/calls`) and the CLI
(`duecourse may-contact --dial`): it asks the loan's engine (`request_contact`, channel
voice, the agent as actor) about the exact number to be dialled; when allowed and a
dialer is configured (DUECOURSE_VOICE_URL) it hands the call to the dialer with the
decision attached, under a key stable for that decision, and records in `agent_calls`
whose call the dialer's call id is, so the dialer's result callback reaches the loan.
Without a dialer the agent dials by hand: the decision is the answer. Not allowed:
nothing is sent. Nothing here logs the number or the note.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.channels.base import ChannelError, OutgoingMessage
from duecourse.channels.dialer import DialerChannel, dialer_channel
from duecourse.domain.actor import Actor
from duecourse.domain.compliance import Purpose, RecipientKind, requests
from duecourse.domain.compliance.model import Decision
from duecourse.domain.policy import Channel
from duecourse.settings import Settings
from duecourse.store import tables as t
from duecourse.store.ledger import Ledger
from duecourse.temporal.client import ActionRejected, CollectionClient, LoanClosed, LoanNotFound

log = structlog.get_logger(__name__)

RETRIES = (0.5, 1.0)
"""Pauses before sending again after a dialer fault that may pass (same key: one call)."""


@dataclass(frozen=True)
class DeskCall:
    """The engine's decision and what became of the call: `call_id` is the dialer's id
    (None: not sent - not allowed, or no dialer, and the agent dials by hand)."""

    decision: Decision
    call_id: str | None = None
    dialer: str | None = None

    @property
    def by_hand(self) -> bool:
        return self.decision.allowed and self.call_id is None


class DialerFailed(Exception):
    """The engine allowed the call (and logged it) but the dialer did not take it."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class _Loan:
    case_id: str
    phone: str | None
    language: str


def verdict_sentence(decision: Decision) -> str:
    """The decision in one sentence an agent can act on."""
    if decision.allowed:
        return "allowed now (logged)"
    head = "not now" if decision.verdict == "deferred" else "blocked"
    if decision.until is not None:
        head += f": earliest {decision.until.isoformat(timespec='minutes')}"
    why = f" - {decision.detail} [{decision.rule}]" if decision.code else ""
    return head + why


async def place_call(client: CollectionClient, ledger: Ledger, settings: Settings,
                     loan_id: str, agent: Actor, *, address: str | None = None,
                     recipient_kind: RecipientKind = RecipientKind.DEBTOR,
                     person: str | None = None, note: str = "") -> DeskCall:
    """Ask, then dial through the dialer when allowed and configured (see the module)."""
    loan = await _loan(ledger.engine, loan_id)
    number = address or (loan.phone if recipient_kind is RecipientKind.DEBTOR else None)
    if number is None:
        raise ActionRejected("no phone number on file for the borrower: give the number"
                             if recipient_kind is RecipientKind.DEBTOR else
                             "a call to a guarantor or third party needs their number")
    # a bad dialer setting refuses before the engine is asked (and logs the contact)
    dialer = dialer_channel(settings, ledger) if settings.voice_url else None
    third = recipient_kind is RecipientKind.THIRD_PARTY
    decision = await client.request_contact(loan_id, requests.ContactRequest(
        channel=Channel.VOICE, actor=agent, recipient_kind=recipient_kind,
        purpose=Purpose.LOCATION if third else Purpose.COLLECTION, discloses_debt=not third,
        address=number, person=person))
    if not decision.allowed or dialer is None:
        return DeskCall(decision)
    key = f"{loan.case_id}:agent-call:{agent.id}:{decision.at.isoformat()}"[:200]
    terms = {"verdict": decision.verdict.value, "code": decision.code, "rule": decision.rule,
             "valid_until": decision.valid_until.isoformat() if decision.valid_until else "",
             "proposed_at": decision.at.isoformat(), "agent": agent.id}
    terms = {k: v for k, v in terms.items() if v}
    await _remember(ledger.engine, key, loan, loan_id, number, recipient_kind, person,
                    agent, dialer.name, terms)
    message = OutgoingMessage(
        idempotency_key=key, channel="voice", recipient=number, subject=None,
        body=note or f"Agent call by {agent.id} about loan {loan_id}.",
        language=loan.language, loan_id=loan_id, case_id=loan.case_id, decision=terms)
    call_id = await _send(dialer, message)
    async with ledger.engine.begin() as conn:
        await conn.execute(update(t.agent_calls).where(t.agent_calls.c.idempotency_key == key)
                           .values(call_id=call_id[:200], placed_at=datetime.now(UTC)))
    log.info("agent call placed", loan_id=loan_id, agent=agent.id)
    return DeskCall(decision, call_id, dialer.name)


async def _send(dialer: DialerChannel, message: OutgoingMessage) -> str:
    for pause in (*RETRIES, None):
        try:
            return await dialer.send(message)
        except ChannelError as err:
            if err.permanent or pause is None:
                raise DialerFailed(str(err), err.permanent) from None
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


async def _loan(engine: AsyncEngine, loan_id: str) -> _Loan:
    """The loan's open case, the borrower's first number and language (from the ledger)."""
    loans, cases = t.loans, t.collection_cases
    async with engine.connect() as conn:
        row = (await conn.execute(select(loans.c.borrower).where(
            loans.c.loan_id == loan_id))).first()
        if row is None:
            raise LoanNotFound(f"no collection found for loan {loan_id}")
        case_id = (await conn.execute(
            select(cases.c.case_id).where(cases.c.loan_id == loan_id, cases.c.outcome.is_(None))
            .order_by(cases.c.opened_at.desc()).limit(1))).scalar()
    if case_id is None:
        raise LoanClosed(f"collection for loan {loan_id} has ended")
    borrower = row.borrower or {}
    phones = borrower.get("phones") or []
    return _Loan(case_id, phones[0] if phones else None, borrower.get("language") or "en")


async def _remember(engine: AsyncEngine, key: str, loan: _Loan, loan_id: str, number: str,
                    kind: RecipientKind, person: str | None, agent: Actor, dialer: str,
                    terms: dict[str, str]) -> None:
    """The call's row before the dialer is asked, so an early result finds its loan."""
    async with engine.begin() as conn:
        known = (await conn.execute(select(t.agent_calls.c.id).where(
            t.agent_calls.c.idempotency_key == key))).first()
        if known is None:
            await conn.execute(t.agent_calls.insert().values(
                idempotency_key=key, case_id=loan.case_id, loan_id=loan_id, recipient=number,
                recipient_kind=kind.value, person=person, actor_kind=agent.kind.value,
                actor_id=agent.id, dialer=dialer, decision=terms,
                requested_at=datetime.now(UTC)))
