"""What a reported contact outcome means for the contact history the rules count.

Shared by the collection (as the report arrives) and the independent audit (replaying the
ledger), so both attribute the same calls and conversations to the same person: a
guarantor's or third party's contacts are theirs (Reg F 1006.14(b) counts per person),
never the debtor's. A contact the agent made without asking first is judged here too, as
the audit judges it (`reported_violations`), so the agent is told at once which rules it
broke instead of the audit finding it later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult
from duecourse.domain.compliance.engine import Context, violations
from duecourse.domain.compliance.model import (
    AttemptResult,
    ContactEvent,
    ProposedContact,
    Purpose,
    RecipientKind,
    Violation,
    person_of,
)
from duecourse.domain.contact.recipients import recipient_for
from duecourse.domain.loan import Borrower
from duecourse.domain.policy import Channel


def attempt_result(result: ContactResult, kind: RecipientKind) -> AttemptResult | None:
    """The result of our attempt in the history; None for an inbound reply (the recipient
    reached us: not an attempt of ours - see `inbound_contact`)."""
    if result is ContactResult.BORROWER_REPLIED:
        return None
    if result is ContactResult.REFUSED:  # a refusal on the phone is still a conversation,
        # except a third party's, who refused further contact
        return AttemptResult.REFUSED if kind is RecipientKind.THIRD_PARTY \
            else AttemptResult.ANSWERED
    if result.conversation:  # reached, right party verified, promise taken
        return AttemptResult.ANSWERED
    return AttemptResult.FAILED if result is ContactResult.WRONG_NUMBER \
        else AttemptResult.UNANSWERED


def _matches(e: ContactEvent, channel: Channel, kind: RecipientKind, address: str | None,
             person: str | None) -> bool:
    if e.channel is not channel or e.result is not AttemptResult.SENT or \
            e.recipient_kind is not kind or address not in (None, e.address):
        return False
    # the person it was with: named the same, or unnamed at the address reported
    return person is None or e.person == person or (not e.person and address is not None)


def complete_attempt(history: list[ContactEvent], channel: Channel, kind: RecipientKind,
                     address: str | None, person: str | None,
                     result: AttemptResult) -> ContactEvent | None:
    """Complete the latest pending (SENT) attempt to this person on `channel` with
    `result` (naming its person when the report does); the completed event, or None when
    there is none to complete."""
    for i in range(len(history) - 1, -1, -1):
        e = history[i]
        if _matches(e, channel, kind, address, person):
            history[i] = e.model_copy(update={"result": result,
                                              "person": e.person or person or ""})
            return history[i]
    return None


def reported_contact(at: datetime, channel: Channel, kind: RecipientKind,
                     address: str | None, person: str | None, result: AttemptResult,
                     borrower: Borrower) -> ContactEvent:
    """A contact the agent made without asking first: the debtor at their address on
    file unless another is given; anyone else at the address reported (else unknown)."""
    fallback = recipient_for(channel, borrower) if kind is RecipientKind.DEBTOR else None
    return ContactEvent(at=at, channel=channel, address=address or fallback or "-",
                        recipient_kind=kind, result=result, person=person or "",
                        purpose=Purpose.LOCATION if kind is RecipientKind.THIRD_PARTY
                        else Purpose.COLLECTION)


def inbound_contact(at: datetime, channel: Channel, kind: RecipientKind,
                    address: str | None, person: str | None,
                    borrower: Borrower) -> ContactEvent | None:
    """The conversation an inbound call was: the person called us and we talked. Reg F
    1006.14(b)(2)(i)(B) counts 7 days "after having had a telephone conversation with the
    person" whoever placed the call, so it is in the history - marked inbound, never a call
    we placed (no call limit counts it, and nothing checks it as a contact of ours). A reply
    by text, email or letter is no telephone conversation: None."""
    if channel is not Channel.VOICE:
        return None
    made = reported_contact(at, channel, kind, address, person, AttemptResult.ANSWERED,
                            borrower)
    return made.model_copy(update={"inbound": True})


@dataclass(frozen=True)
class AppliedOutcome:
    """What a reported outcome did to the history."""

    result: AttemptResult | None  # our attempt's result; None for an inbound reply
    event: ContactEvent | None  # the contact the report is about, if it has one
    added: ContactEvent | None  # `event` when it is new: the caller appends it (after
    # checking it, in the audit, unless it is inbound)


def apply_outcome(history: list[ContactEvent], at: datetime, channel: Channel,
                  kind: RecipientKind, address: str | None, person: str | None,
                  result: ContactResult, borrower: Borrower) -> AppliedOutcome:
    """Apply a reported outcome to `history`, as the collection and the audit both do: it
    completes (in place) the latest pending attempt to the same person on the channel;
    else it is a contact the agent made without asking, or - a reply - an inbound call,
    returned as `added` for the caller to append."""
    mapped = attempt_result(result, kind)
    if mapped is None:
        added = inbound_contact(at, channel, kind, address, person, borrower)
        return AppliedOutcome(result=None, event=added, added=added)
    event = complete_attempt(history, channel, kind, address, person, mapped)
    if event is not None:
        return AppliedOutcome(result=mapped, event=event, added=None)
    made = reported_contact(at, channel, kind, address, person, mapped, borrower)
    return AppliedOutcome(result=mapped, event=made, added=made)


def person_key(kind: RecipientKind, address: str | None, person: str | None,
               event: ContactEvent | None = None) -> str:
    """Who the report was about, as the rules key people: the contact's own, else from
    the report."""
    return event.who if event is not None else person_of(kind, address or "-", person or "")


def refusal_keys(kind: RecipientKind, result: AttemptResult | None, address: str | None,
                 person: str | None, event: ContactEvent | None = None) -> list[str]:
    """A third party who refused is never contacted again, on any of their numbers: the
    address they refused on and the person they are."""
    if kind is not RecipientKind.THIRD_PARTY or result is not AttemptResult.REFUSED or \
            not (address or person):
        return []
    return [k for k in (address, person_key(kind, address, person, event)) if k]


def as_proposed(made: ContactEvent, collectors: int = 1) -> ProposedContact:
    """A contact the agent reported, as the engine judges one: made when reported, to whom
    and where it was (by how many, for a visit), telling the debt to anyone but a third
    party - as the audit checks a reported contact nobody asked about."""
    return ProposedContact(channel=made.channel, at=made.at, address=made.address,
                           recipient_kind=made.recipient_kind, purpose=made.purpose,
                           person=made.person, collectors=collectors,
                           discloses_debt=made.recipient_kind is not RecipientKind.THIRD_PARTY)


def reported_violations(made: ContactEvent | None, ctx: Context,
                        collectors: int = 1) -> list[Violation]:
    """Every rule a contact the agent made without asking first broke, judged by the
    engine's `violations()` against `ctx` - the standing and history from before the
    contact. Nothing for no new contact (the report completed one we cleared, judged when
    it was asked about) or an inbound call (they called us: no contact of ours)."""
    if made is None or made.inbound:
        return []
    return violations(as_proposed(made, collectors), ctx)


class ContactCheck(BaseModel):
    """A contact outcome about to be reported, and the caller's now: a query's own clock
    is its workflow's last task, which may be long past."""

    model_config = ConfigDict(frozen=True)

    report: ContactOutcomeReport
    at: AwareDatetime


class ReportCheck(BaseModel):
    """What the agent is told of a contact they report: the rules it broke (empty: none),
    judged at `at` (`local_time`: the borrower's wall clock then), and the review task it
    opened once recorded. PII-free: rules and codes only, never the number or person."""

    at: datetime
    local_time: str
    violations: list[Violation] = []
    review_task: str | None = None

    @property
    def broke_rules(self) -> bool:
        return bool(self.violations)

    def broken(self) -> str:
        """Each rule broken, with its legal reference, for a person to read."""
        return "; ".join(f"{v.detail} ({v.rule})" for v in self.violations)

    def summary(self, report: ContactOutcomeReport) -> str:
        """Who reported what and what it broke, PII-free (for the review task and alert)."""
        return (f"{report.actor.id} reported a {report.channel.value} contact with the "
                f"{report.kind.value} at {self.local_time} that broke: {self.broken()}")
