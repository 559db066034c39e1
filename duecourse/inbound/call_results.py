"""Acting on a dialer's call result: the call (a voice contact attempt we placed, named by
the dialer's call id) is completed in the loan's contact history with what came of it, so
the CN answered/unanswered caps and the US 7-in-7 rule count it as the call it was; an
invalid number is marked unreachable (never dialled again); the recording reference is
kept with the outcome and with the attempt's receipt row.

A call has one result: the first post is recorded (`delivery_receipts`, keyed by the call)
before the loan hears it, and un-recorded if the loan could not be told, so the dialer's
retry tells it again and a repeat does nothing twice."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import structlog
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult
from duecourse.domain.compliance.model import RecipientKind
from duecourse.domain.policy import Channel
from duecourse.inbound.store import InboundStore
from duecourse.store import tables as t
from duecourse.temporal.client import CollectionClient, LoanClosed, LoanNotFound

log = structlog.get_logger(__name__)


class DialerResult(StrEnum):
    """The results a dialer reports (issue 13 item 5), in its words."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    INVALID_NUMBER = "invalid_number"
    VOICEMAIL = "voicemail"
    RIGHT_PARTY_VERIFIED = "right_party_verified"
    PROMISE_TAKEN = "promise_taken"

    @property
    def contact_result(self) -> ContactResult:
        """One name, one meaning: the dialer's "answered" is a reached borrower, its
        "invalid number" a wrong number; the rest are ours by the same name."""
        if self is DialerResult.ANSWERED:
            return ContactResult.REACHED
        if self is DialerResult.INVALID_NUMBER:
            return ContactResult.WRONG_NUMBER
        return ContactResult(self.value)


@dataclass(frozen=True)
class Call:
    """The voice attempt a dialer's call id names."""

    attempt_id: int | None  # None: an agent's call (agent_calls), not a planned attempt
    loan_id: str
    recipient: str
    recipient_kind: RecipientKind
    agent: str | None = None  # who placed an agent's call
    person: str | None = None


class CallResults:
    def __init__(self, client: CollectionClient, engine: AsyncEngine) -> None:
        self.client, self.engine, self.store = client, engine, InboundStore(engine)

    async def receive(self, call_id: str, result: DialerResult, recording: str | None,
                      agent: str | None, idempotency_key: str | None = None) -> str:
        """"recorded", "unmatched" or "duplicate". Unmatched (no call of ours has that id
        or key yet: a result can overtake the dialer's answer to our POST) records
        nothing, so the dialer's next try is applied once the call is known."""
        call = await self._call(call_id, idempotency_key)
        if call is None:
            log.info("dialer result for an unknown call", result=result.value)
            return "unmatched"
        if not await self._keep(call_id, result, recording, call):
            return "duplicate"
        try:
            await self._report(call, call_id, result, recording, agent)
        except Exception:  # the loan was not told: let the dialer's retry tell it
            await self._forget(call_id)
            raise
        if result is DialerResult.INVALID_NUMBER:
            await self.store.mark_unreachable("voice", call.recipient,
                                              "dialer: invalid number", call.loan_id)
        log.info("dialer result", result=result.value, loan_id=call.loan_id,
                 recording=recording is not None)
        return "recorded"

    async def _report(self, call: Call, call_id: str, result: DialerResult,
                      recording: str | None, agent: str | None) -> None:
        agent = agent or call.agent
        actor = Actor(kind=ActorKind.AGENT, id=agent) if agent else \
            Actor(kind=ActorKind.SYSTEM, id="dialer")
        report = ContactOutcomeReport(
            channel=Channel.VOICE, result=result.contact_result, actor=actor,
            note=f"dialer call {call_id}: {result.value}"[:2000], address=call.recipient,
            recipient_kind=call.recipient_kind, person=call.person, recording=recording)
        with contextlib.suppress(LoanClosed, LoanNotFound):  # kept with the attempt alone
            await self.client.record_contact_outcome(call.loan_id, report)

    async def _call(self, call_id: str, key: str | None) -> Call | None:
        """The planned voice attempt or the agent's call with that dialer id, else (the
        result came before the dialer's id was written down) with our idempotency key."""
        a, c = t.contact_attempts, t.agent_calls
        attempts = select(a.c.id, a.c.loan_id, a.c.recipient, a.c.recipient_kind).where(
            a.c.channel == "voice").order_by(a.c.id.desc()).limit(1)
        agents = select(c.c.loan_id, c.c.recipient, c.c.recipient_kind, c.c.person,
                        c.c.actor_id)
        async with self.engine.connect() as conn:
            for column, value in ((a.c.provider_message_id, call_id),
                                  (a.c.idempotency_key, key)):
                row = None if value is None else \
                    (await conn.execute(attempts.where(column == value))).first()
                if row is not None:
                    return Call(row.id, row.loan_id, row.recipient,
                                RecipientKind(row.recipient_kind))
            for column, value in ((c.c.call_id, call_id), (c.c.idempotency_key, key)):
                row = None if value is None else \
                    (await conn.execute(agents.where(column == value))).first()
                if row is not None:
                    return Call(None, row.loan_id, row.recipient,
                                RecipientKind(row.recipient_kind), row.actor_id, row.person)
        return None

    async def _keep(self, call_id: str, result: DialerResult, recording: str | None,
                    call: Call) -> bool:
        """The call's receipt row (its result and recording); False: it has one already."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        detail = result.value + (f"; recording {recording}" if recording else "")
        async with self.engine.begin() as conn:
            done = await conn.execute(dialect.insert(t.delivery_receipts).values(
                dedup_key=_key(call_id), provider_message_id=call_id[:200],
                status="call_result", error=detail,
                attempt_id=call.attempt_id, loan_id=call.loan_id,
                received_at=datetime.now(UTC)).on_conflict_do_nothing())
        return bool(done.rowcount)

    async def _forget(self, call_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(t.delivery_receipts).where(
                t.delivery_receipts.c.dedup_key == _key(call_id)))


def _key(call_id: str) -> str:
    return f"dialer:{call_id}"[:260]
