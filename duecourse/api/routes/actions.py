"""Acting on a loan: each route maps to the workflow's signal or update.

Refusable actions are updates: a refusal comes back as 422 with the validator's reason
and the loan is unchanged. The acting key becomes the actor in the workflow and ledger.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from fastapi import APIRouter, Response, status
from temporalio.service import RPCError

from duecourse.api import schemas
from duecourse.api.amounts import money
from duecourse.api.auth import Desk, Overseer, Platform, Principal, Staff, Supervisor
from duecourse.api.outcome_schemas import OutcomeAccepted, RuleBroken
from duecourse.api.params import LoanId
from duecourse.api.problems import ProblemError, responses
from duecourse.api.schemas import Accepted
from duecourse.api.services import Services, Svc
from duecourse.domain.agreements import terms
from duecourse.domain.case import commands
from duecourse.domain.case.status import CollectionStatus
from duecourse.domain.compliance import RecipientKind, requests
from duecourse.domain.legal.case import CaseEvent, LegalCase
from duecourse.payments.providers import reserved_reference
from duecourse.store.payments import payment_recorded
from duecourse.temporal.client import PaymentUnconfirmed

router = APIRouter(prefix="/v1/loans/{loan_id}", tags=["actions"])

ACT = responses(404, 409)
C = TypeVar("C", bound=commands.Command)


async def _currency(svc: Services, loan_id: str) -> str:
    """The loan's currency (its status also proves the loan exists and is queryable)."""
    return (await svc.client.status(loan_id)).outstanding.currency


async def _priced(svc: Services, loan_id: str, body: schemas.PromiseIn | schemas.SettlementIn,
                  who: Principal, command: type[C]) -> C:
    """`body` as the domain's `command`: its amount in the loan's currency, the key as the
    actor, every other field as sent (a command refuses a field it does not know)."""
    currency = await _currency(svc, loan_id)
    return command(**body.model_dump(exclude={"amount"}), amount=money(body.amount, currency),
                   actor=who.actor)


async def _open(svc: Services, loan_id: str) -> str:
    """The currency of a loan still in collection; 409 when it has ended."""
    status_ = await svc.client.status(loan_id)
    if status_.outcome is not None:
        raise ProblemError(409, "Loan closed",
                           f"collection for loan {loan_id} has ended ({status_.outcome})")
    return status_.outstanding.currency


@router.post("/payments", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
             responses={200: {"model": Accepted, "description": "already recorded"}, **ACT})
async def report_payment(loan_id: LoanId, body: schemas.PaymentIn, svc: Svc,
                         response: Response, who: Platform) -> Accepted:
    """Report a payment; the same reference twice is applied once. A reference already
    recorded answers 200 `duplicate`, even once its payment closed the loan (a retry of
    the last payment is not 409). A reference in the configured payment provider's form
    (`sandbox:...`, `stripe:...`) is 422: only the provider's webhook reports those."""
    if (reserved := reserved_reference(svc.settings, body.reference)) is not None:
        raise ProblemError(422, "Reserved reference", reserved)
    if await payment_recorded(svc.ledger.engine, loan_id, body.reference):
        response.status_code = status.HTTP_200_OK
        return Accepted(status="duplicate", detail=f"payment {body.reference} was already "
                                                    "recorded; nothing changed")
    try:
        currency = await _open(svc, loan_id)
    except RPCError as err:  # nothing was sent: say so, not just "Timeout expired"
        raise ProblemError(503, "Collection engine unavailable",
                           f"payment {body.reference} was not reported (Temporal answered "
                           f"{err.status.name}: {err.message}); it is safe to retry with "
                           "the same reference") from err
    if Decimal(body.amount) <= 0:
        raise ProblemError(422, "Invalid amount", "a payment must be greater than zero")
    if body.currency and body.currency.upper() != currency:
        raise ProblemError(422, "Invalid amount",
                           f"the loan is in {currency}, not {body.currency.upper()}")
    try:  # a lost reply or a loan that closed meanwhile: the loan's history settles it
        outcome = await svc.client.report_payment(loan_id, commands.PaymentReport(
            reference=body.reference, amount=money(body.amount, currency),
            paid_at=body.paid_at or datetime.now(UTC), actor=who.actor))
    except PaymentUnconfirmed as err:
        raise ProblemError(503, "Collection engine unavailable", err.message) from err
    if outcome.status == "duplicate":
        response.status_code = status.HTTP_200_OK
    return Accepted(status=outcome.status, detail=outcome.detail)


@router.post("/promises", status_code=201, response_model=commands.PromiseAccepted, responses=ACT)
async def promise_to_pay(loan_id: LoanId, body: schemas.PromiseIn, svc: Svc,
                         who: Desk) -> commands.PromiseAccepted:
    return await svc.client.promise_to_pay(
        loan_id, await _priced(svc, loan_id, body, who, commands.PromiseRequest))


@router.post("/plans", status_code=201, response_model=terms.PlanAccepted, responses=ACT)
async def propose_plan(loan_id: LoanId, body: schemas.PlanIn, svc: Svc,
                       who: Desk) -> terms.PlanAccepted:
    currency = await _currency(svc, loan_id)
    return await svc.client.propose_plan(loan_id, terms.PlanProposal(
        actor=who.actor, note=body.note, instalments=[
            terms.InstalmentSpec(due_date=i.due_date, amount=money(i.amount, currency))
            for i in body.instalments]))


@router.post("/settlements", status_code=201, response_model=terms.SettlementResult,
             responses=ACT)
async def offer_settlement(loan_id: LoanId, body: schemas.SettlementIn, svc: Svc,
                           who: Desk) -> terms.SettlementResult:
    return await svc.client.offer_settlement(
        loan_id, await _priced(svc, loan_id, body, who, terms.SettlementOffer))


@router.post("/settlements/decision", response_model=terms.SettlementResult, responses=ACT)
async def decide_settlement(loan_id: LoanId, body: schemas.DecisionIn, svc: Svc,
                            who: Supervisor) -> terms.SettlementResult:
    return await svc.client.decide_settlement(loan_id, terms.SettlementDecision(
        approve=body.approve, reason=body.reason, actor=who.actor))


@router.post("/disputes", status_code=202, response_model=Accepted, responses=ACT)
async def dispute(loan_id: LoanId, body: schemas.DisputeIn, svc: Svc, who: Desk) -> Accepted:
    change = requests.DisputeChange(action=body.action, reason=body.reason,
                                    written=body.written, actor=who.actor)
    await _open(svc, loan_id)
    await svc.client.dispute(loan_id, change)
    how = " in writing" if body.written else ""
    return Accepted(status="accepted", detail=f"dispute {body.action}{how}")


@router.post("/holds", response_model=CollectionStatus, responses=ACT)
async def hold(loan_id: LoanId, body: schemas.HoldIn, svc: Svc, who: Desk) -> CollectionStatus:
    return await svc.client.hold(loan_id, requests.HoldRequest(
        action=body.action, kind=body.kind, days=body.days, reference=body.reference,
        actor=who.actor, note=body.note))


@router.post("/contact-preferences", status_code=202, response_model=Accepted,
             responses=ACT)
async def contact_preferences(loan_id: LoanId, body: schemas.PreferencesIn, svc: Svc,
                              who: Desk) -> Accepted:
    change = requests.PreferenceChange(**body.model_dump(exclude={"note"}), actor=who.actor,
                                       note=body.note)
    await _open(svc, loan_id)
    await svc.client.update_contact_preferences(loan_id, change)
    return Accepted(status="accepted", detail="contact preferences recorded")


@router.post("/contact-outcomes", status_code=202, response_model=OutcomeAccepted,
             responses=ACT)
async def contact_outcome(loan_id: LoanId, body: schemas.OutcomeIn, svc: Svc,
                          who: Desk) -> OutcomeAccepted:
    """Report what came of a contact. It is always recorded; one the agent made without
    asking first that broke rules comes back with each rule in `violations`, recorded as a
    violation for a supervisor to review (`review_task`)."""
    report = commands.ContactOutcomeReport(
        channel=body.channel, result=body.result, note=body.note, actor=who.actor,
        address=body.address, recipient_kind=body.recipient_kind, person=body.person,
        recontact_invited=body.recontact_invited, collectors=body.collectors,
        recording=body.recording)
    await _open(svc, loan_id)
    check = await svc.client.record_contact_outcome(loan_id, report)
    with_whom = "" if body.recipient_kind is RecipientKind.DEBTOR else \
        f" with the {body.recipient_kind.value.replace('_', ' ')}"
    detail = f"{body.result} via {body.channel}{with_whom} recorded"
    if check is None:
        return OutcomeAccepted(status="accepted", detail=detail, checked=False)
    if check.broke_rules:
        n = len(check.violations)
        where = f"task {check.review_task}" if check.review_task else "the ledger"
        detail += (f"; the contact broke {'a rule' if n == 1 else f'{n} rules'} and is "
                   f"recorded as a violation to review ({where})")
    return OutcomeAccepted(
        status="accepted", detail=detail, local_time=check.local_time,
        review_task=check.review_task,
        violations=[RuleBroken(code=v.code, rule=v.rule, detail=v.detail)
                    for v in check.violations])


@router.post("/legal/approval", response_model=commands.LegalDecisionResult, responses=ACT)
async def legal_approval(loan_id: LoanId, body: schemas.DecisionIn, svc: Svc,
                         who: Supervisor) -> commands.LegalDecisionResult:
    return await svc.client.decide_legal_referral(loan_id, commands.LegalDecision(
        approve=body.approve, reason=body.reason, actor=who.actor))


@router.post("/legal/events", response_model=LegalCase, responses=ACT)
async def legal_event(loan_id: LoanId, body: schemas.CaseEventIn, svc: Svc,
                      who: Overseer) -> LegalCase:
    currency = await _currency(svc, loan_id)
    return await svc.client.record_case_event(loan_id, CaseEvent(
        kind=body.kind, occurred_on=body.occurred_on, details=body.details,
        outcome=body.outcome, actor=who.actor,
        amount=money(body.amount, currency) if body.amount else None))


@router.post("/assignment", response_model=terms.AssignmentResult, responses=ACT)
async def assign(loan_id: LoanId, body: schemas.AssignmentIn, svc: Svc,
                 who: Staff) -> terms.AssignmentResult:
    return await svc.client.assign_agent(loan_id, terms.Assignment(
        agent_id=body.agent_id, actor=who.actor, note=body.note))
