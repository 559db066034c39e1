"""The parent's side of a legal case: mirror the child, validate what the legal team
reports, and act on how the case closes."""

from __future__ import annotations

from datetime import datetime

from duecourse.domain.actor import SYSTEM
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.state import LegalPhase, Outcome, Stage
from duecourse.domain.entries import LedgerEntry
from duecourse.domain.legal.case import ORDER, CaseEvent, CaseEventKind, LegalCase

LEGAL_REFERRAL = "legal-referral"  # subject of the supervisor's approval task


def open_case(c: Collection, workflow_id: str, now: datetime) -> LegalCase:
    case = LegalCase(case_ref=f"LEGAL{len(c.state.legal.cases) + 1}", workflow_id=workflow_id,
                     phase_at=now)
    c.state.legal.cases.append(case)
    return case


def mirror(c: Collection, case: LegalCase) -> None:
    cases = c.state.legal.cases
    for i, known in enumerate(cases):
        if known.case_ref == case.case_ref:
            cases[i] = case


def case_event_problem(c: Collection, event: CaseEvent) -> str | None:
    case = c.state.legal.case
    if c.state.is_closed:
        return f"the loan is closed ({c.state.outcome})"
    if case is None or case.referral is None:
        return "no legal case has been referred to a legal partner"
    if case.events:
        last = case.events[-1]
        if ORDER[event.kind] < ORDER[last.kind]:
            return f"a {event.kind.value} cannot follow the {last.kind.value} already recorded"
        if event.occurred_on < last.occurred_on:
            return f"the {event.kind.value} date {event.occurred_on} is before {last.occurred_on}"
    elif event.kind is not CaseEventKind.FILED:
        return "the first case event is the filing"
    if event.amount is not None and event.amount.currency != c.loan.currency:
        return f"amounts must be in {c.loan.currency}, got {event.amount.currency}"
    return None


def record_case_event(c: Collection, event: CaseEvent, now: datetime) -> list[LedgerEntry]:
    if problem := case_event_problem(c, event):
        raise ValueError(problem)
    case = c.state.legal.case
    assert case is not None
    case.events.append(event)
    case.phase = event.kind.value.upper()
    return [c.record_event(f"case_{event.kind.value}", now, event.actor, case=case.case_ref,
                           on=event.occurred_on, details=event.details, amount=event.amount,
                           outcome=event.outcome)]


def case_closed(c: Collection, case: LegalCase, now: datetime) -> list[LedgerEntry]:
    """Act on the case's outcome: written off closes the loan, withdrawn negotiates again;
    paid and settled follow from the payments themselves."""
    mirror(c, case)
    s = c.state
    entries: list[LedgerEntry] = [c.record_event("legal_case_closed", now, case=case.case_ref,
                                                 outcome=case.outcome)]
    if s.is_closed:
        return entries
    if case.outcome == "written_off":
        entries += c.close(Outcome.WRITTEN_OFF, now,
                           f"legal case {case.case_ref} closed as uncollectible", SYSTEM)
    elif case.outcome == "withdrawn" and s.stage is Stage.LEGAL:
        s.legal.phase = LegalPhase.REFERRED
        entries += c.enter_stage(Stage.NEGOTIATION, now, f"legal case {case.case_ref} withdrawn",
                            SYSTEM)
    return entries


def demand_requested(c: Collection) -> None:
    """The case asked for its demand letter: the planner sends it when it may go."""
    c.state.legal.demand_requested = True


def decision_forwarded(case: LegalCase, approved: bool) -> None:
    """A rejected referral ends the case: nothing more goes to it."""
    if not approved:
        case.outcome = "rejected"


def referred(c: Collection, case: LegalCase, now: datetime) -> list[LedgerEntry]:
    """The partner took the case."""
    referral = case.referral
    return [c.record_event("legal_referred", now, case=case.case_ref,
                           partner=referral.partner if referral else "",
                           reference=referral.reference if referral else "")]
