"""Acting on an SMS reply: STOP opts the borrower out of SMS at once (recorded in the
consent ledger and on every open loan, confirmed once), START after a STOP is the
borrower's own re-consent (source borrower_sms_start: opted back in on every open loan,
confirmed once), HELP is answered with the
lender's contact, anything else is the borrower engaging (the loan moves to negotiation as
an answered contact does, and an agent gets a task carrying the text). A reply from a
number we never texted is kept for review and touches no loan."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
import structlog

from duecourse.channels.base import Channel as Sender
from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult
from duecourse.domain.compliance.requests import PreferenceChange
from duecourse.domain.policy import Channel
from duecourse.inbound.answers import Answered, answer
from duecourse.inbound.replies import (
    ReplyKind,
    classify,
    help_answer,
    start_confirmation,
    stop_confirmation,
)
from duecourse.inbound.store import InboundStore
from duecourse.inbound.store import Sender as Borrower
from duecourse.temporal.client import CollectionClient, LoanClosed, LoanNotFound

log = structlog.get_logger(__name__)
SOURCE = "sms_reply"
START_SOURCE = "borrower_sms_start"


def e164(number: str) -> str:
    """The number as our contact attempts record it (E.164) when it parses as one."""
    raw = number.strip()
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return raw
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class Reply:
    """One reply as a gateway posted it; `provider_id` is its own id when it gives one."""

    profile: str
    sender: str
    receiver: str
    text: str
    received_at: datetime
    provider_id: str | None = None

    @property
    def dedup_key(self) -> str:
        if self.provider_id:
            return f"{self.profile}:{self.provider_id}"[:200]
        seen = f"{self.sender}\n{self.text}\n{self.received_at.isoformat()}"
        return f"{self.profile}:sha256:{hashlib.sha256(seen.encode()).hexdigest()}"


class ReplyActions:
    def __init__(self, client: CollectionClient, store: InboundStore, answers: Sender,
                 lender_name: str, lender_contact: str) -> None:
        self.client, self.store, self.answers = client, store, answers
        self.lender_name, self.lender_contact = lender_name, lender_contact

    async def receive(self, reply: Reply) -> str:
        """What was done: the outcome, or "duplicate" for a reply acted on before."""
        kind = classify(reply.text)
        reply_id, applied = await self.store.record_reply({
            "dedup_key": reply.dedup_key, "profile": reply.profile, "sender": reply.sender,
            "receiver": reply.receiver, "text": reply.text, "received_at": reply.received_at,
            "kind": kind.value})
        if applied or not await self.store.claim_reply(reply_id):
            return "duplicate"
        try:
            borrower = await self.store.find_sender(reply.sender)
            if borrower is None:
                await self.store.finish_reply(reply_id, None, "unknown_sender")
                log.info("sms reply from an unknown number kept for review", reply=reply_id)
                return "unknown_sender"
            outcome, said = await self._act(kind, reply, reply_id, borrower)
        except BaseException:
            await self.store.release_reply(reply_id)  # the provider's retry acts on it
            raise
        await self.store.finish_reply(reply_id, borrower.loan_id, outcome,
                                      said.message_id if said else None,
                                      said.error if said else None)
        log.info("sms reply", reply=reply_id, kind=kind.value, outcome=outcome,
                 loan_id=borrower.loan_id)
        return outcome

    async def _act(self, kind: ReplyKind, reply: Reply, reply_id: int,
                   b: Borrower) -> tuple[str, Answered | None]:
        if kind is ReplyKind.STOP:
            return await self._stop(reply, reply_id, b)
        if kind is ReplyKind.START:
            return await self._start(reply, reply_id, b)
        if kind is ReplyKind.HELP:
            text = help_answer(self.lender_name, self.lender_contact, b.language)
            return "helped", await answer(self.answers, f"inbound-help:{reply_id}",
                                          reply.sender, text, b.language, b.loan_id,
                                          b.case_id)
        if not b.open:
            return "loan_closed", None
        actor = Actor(kind=ActorKind.BORROWER, id=b.borrower_id)
        try:
            await self.client.record_contact_outcome(b.loan_id, ContactOutcomeReport(
                channel=Channel.SMS, result=ContactResult.BORROWER_REPLIED, actor=actor,
                note=f"SMS reply: {reply.text}"[:2000], address=reply.sender))
        except (LoanClosed, LoanNotFound):
            return "loan_closed", None
        return "engaged", None

    async def _stop(self, reply: Reply, reply_id: int,
                    b: Borrower) -> tuple[str, Answered | None]:
        """Opt out at once on every open loan of the borrower, every time (a loan handed
        over or opted back in since is stopped too); confirm only the first STOP (consent
        already withdrawn: no second confirmation)."""
        confirmed = await self.store.consent(b.borrower_id, "sms") == "withdrawn"
        actor = Actor(kind=ActorKind.BORROWER, id=b.borrower_id)
        note = f"opted out by SMS reply ({reply.profile} reply {reply_id})"
        await self._on_open_loans(b, PreferenceChange(
            opt_out=[Channel.SMS], sms_consent="withdrawn", actor=actor,
            note=note))  # a STOP revokes consent too (TCPA)
        if confirmed:
            return "already_opted_out", None
        text = stop_confirmation(self.lender_name, b.language)
        said = await answer(self.answers, f"inbound-stop:{reply_id}", reply.sender, text,
                            b.language, b.loan_id, b.case_id)  # a retry: the same message
        await self.store.record_consent(b.borrower_id, b.loan_id, "sms", "withdrawn", SOURCE,
                                        actor, note, reply.received_at,
                                        dedup_key=f"reply:{reply_id}")
        return "opted_out", said

    async def _start(self, reply: Reply, reply_id: int,
                     b: Borrower) -> tuple[str, Answered | None]:
        """After a STOP, START gives SMS back on every open loan and is recorded as the
        borrower's consent; confirmed once. Without a withdrawal standing in the consent
        ledger it changes nothing."""
        if await self.store.consent(b.borrower_id, "sms") != "withdrawn":
            return "not_opted_out", None
        actor = Actor(kind=ActorKind.BORROWER, id=b.borrower_id)
        note = f"opted back in by SMS reply ({reply.profile} reply {reply_id})"
        await self._on_open_loans(b, PreferenceChange(
            opt_in=[Channel.SMS], sms_consent="given", actor=actor, note=note))
        text = start_confirmation(self.lender_name, b.language)
        said = await answer(self.answers, f"inbound-start:{reply_id}", reply.sender, text,
                            b.language, b.loan_id, b.case_id)
        await self.store.record_consent(b.borrower_id, b.loan_id, "sms", "given",
                                        START_SOURCE, actor, note, reply.received_at,
                                        dedup_key=f"reply:{reply_id}")
        return "opted_in", said

    async def _on_open_loans(self, b: Borrower, change: PreferenceChange) -> None:
        """The change on every loan of the borrower still collecting (one handed over or
        changed since is covered too); a loan that closed meanwhile is skipped."""
        for loan_id in await self.store.open_loans(b.borrower_id):
            try:
                await self.client.update_contact_preferences(loan_id, change)
            except (LoanClosed, LoanNotFound):
                continue
