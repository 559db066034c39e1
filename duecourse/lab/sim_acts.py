"""What happens to a simulated loan from outside, through the workflow's own handlers.

Each function does what the named signal or update handler of `LoanCollectionWorkflow`
does (its validator first, for updates), on a `LoanRun` at its current virtual time: the
random `Borrower` calls them, and so does a scripted test.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.agreements import deals
from duecourse.domain.agreements.terms import (
    PlanProposal,
    RepaymentPlan,
    SettlementDecision,
    SettlementOffer,
)
from duecourse.domain.case.commands import (
    ContactOutcomeReport,
    LegalDecision,
    PaymentReport,
    PromiseRequest,
)
from duecourse.domain.compliance import Decision
from duecourse.domain.compliance.model import HoldKind
from duecourse.domain.compliance.requests import (
    ContactRequest,
    DisputeChange,
    HoldRequest,
    PreferenceChange,
)
from duecourse.domain.contact import protections
from duecourse.domain.contact.recipients import recipient_for
from duecourse.domain.entries import PaymentRecorded
from duecourse.domain.legal import litigation
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel
from duecourse.domain.work import completion, tasks
from duecourse.domain.work.queue import TaskCompletion, TaskKind
from duecourse.lab.sim_loan import LoanRun

PLATFORM = Actor(kind=ActorKind.PLATFORM, id="simulator")
AGENT = Actor(kind=ActorKind.AGENT, id="sim-agent")
SUPERVISOR = Actor(kind=ActorKind.SUPERVISOR, id="sim-supervisor")


def report_payment(run: LoanRun, amount: Decimal, reference: str,
                   actor: Actor = PLATFORM) -> None:
    """`report_payment`: the part applied to the balance is forwarded to a running plan."""
    c, now = run.c, run.now
    report = PaymentReport(reference=reference,
                           amount=Money(amount=amount, currency=c.loan.currency),
                           paid_at=now, actor=actor)
    plan = c.state.agreements.active_plan
    entries = c.apply_payment(report, now)
    applied = sum((e.applied for e in entries if isinstance(e, PaymentRecorded)),
                  start=Decimal(0))
    run.apply(entries + deals.settle_if_paid(c, now, report.actor))
    if plan is not None and applied > 0 and run.plan is not None:
        run.plan.payment(applied)  # the child hears of it after the loan applied it


def record_contact_outcome(run: LoanRun, report: ContactOutcomeReport) -> None:
    """`record_contact_outcome`."""
    c, now = run.c, run.now
    check = c.contact_check(report, now)
    entries = c.record_contact_outcome(report, now)
    if tasks.wants_answer(c, report):
        entries += tasks.answer_reply(c, report, now)
    if check.broke_rules:
        entries += tasks.review_reported_violation(c, report, check, now)[1]
    run.apply(entries)


def promise_to_pay(run: LoanRun, amount: Decimal, due: date, actor: Actor = AGENT) -> bool:
    """`promise_to_pay`; False when its validator refuses it."""
    c, now = run.c, run.now
    req = PromiseRequest(amount=Money(amount=amount, currency=c.loan.currency),
                         due_date=due, actor=actor)
    if c.promise_problem(req, now) is not None:
        return False
    run.apply(c.make_promise(req, now)[1])
    return True


def dispute(run: LoanRun, action: str, actor: Actor, reason: str,
            written: bool = False) -> None:
    """`dispute`: opened (in writing or not) or verified."""
    run.apply(protections.change_dispute(run.c, DisputeChange(
        action=action, actor=actor, reason=reason, written=written), run.now))  # type: ignore[arg-type]


def opt_out(run: LoanRun, channel: Channel, actor: Actor) -> None:
    """`update_contact_preferences` with an opt-out of `channel`."""
    run.apply(protections.change_preferences(run.c, PreferenceChange(
        opt_out=[channel], actor=actor), run.now))


def hardship_hold(run: LoanRun, days: int, actor: Actor = AGENT) -> bool:
    """`hold` for hardship; False when its validator refuses it."""
    req = HoldRequest(action="start", kind=HoldKind.HARDSHIP, days=days, actor=actor,
                      note="hardship")
    if protections.hold_problem(run.c, req, run.now) is not None:
        return False
    run.apply(protections.change_hold(run.c, req, run.now))
    return True


def request_contact(run: LoanRun, channel: Channel, actor: Actor = AGENT) -> Decision | None:
    """`request_contact`: an agent asks before calling; an allowed call is logged and
    counts towards the limits. None when its validator refuses (closed, no number)."""
    c = run.c
    if c.state.is_closed or recipient_for(channel, c.loan.borrower) is None:
        return None
    decision, entries = c.agent_contact(ContactRequest(channel=channel, actor=actor), run.now)
    run.apply(entries)
    return decision


def complete_task(run: LoanRun, task_id: str, outcome: str, actor: Actor = AGENT) -> bool:
    """`complete_task` for a call or visit task (its outcome is recorded as the contact's);
    False when its validator refuses."""
    done = TaskCompletion(task_id=task_id, outcome=outcome, actor=actor)
    if completion.task_problem(run.c, done, run.now) is not None:
        return False
    run.apply(completion.complete_task(run.c, done, run.now))
    return True


def propose_plan(run: LoanRun, proposal: PlanProposal) -> RepaymentPlan | None:
    """`propose_plan`: the plan agreed and its child started; None when refused."""
    c, now = run.c, run.now
    if deals.plan_problem(c, proposal, now) is not None:
        return None
    workflow_id = (f"plan-{c.loan.loan_id}-{c.state.case_id[:8]}-"
                   f"{len(c.state.agreements.plans) + 1}")
    agreed, entries = deals.accept_plan(c, proposal, now, workflow_id)
    run.apply(entries)
    run.start_plan(agreed)
    return agreed


def offer_settlement(run: LoanRun, amount: Decimal, pay_by: date,
                     actor: Actor = AGENT) -> bool | None:
    """`offer_settlement`: None when refused, else whether it awaits a supervisor."""
    c, now = run.c, run.now
    offer = SettlementOffer(amount=Money(amount=amount, currency=c.loan.currency),
                            pay_by=pay_by, actor=actor)
    if deals.settlement_problem(c, offer, now) is not None:
        return None
    settlement, entries = deals.offer_settlement(c, offer, now)
    run.apply(entries)
    return settlement.task_id is not None


def decide_settlement(run: LoanRun, approve: bool, reason: str,
                      actor: Actor = SUPERVISOR) -> bool:
    """`decide_settlement`; False when its validator refuses (lapsed, not pending)."""
    decision = SettlementDecision(approve=approve, actor=actor, reason=reason)
    if deals.settlement_decision_problem(run.c, decision, run.now) is not None:
        return False
    run.apply(deals.decide_settlement(run.c, decision, run.now))
    return True


def decide_legal(run: LoanRun, approve: bool, reason: str,
                 actor: Actor = SUPERVISOR) -> bool:
    """`decide_legal_referral`: recorded, the approval task resolved, the case child told;
    False when its validator refuses (no referral awaiting approval)."""
    c, now = run.c, run.now
    decision = LegalDecision(approve=approve, actor=actor, reason=reason)
    if c.legal_decision_problem(decision) is not None:
        return False
    case = c.state.legal.case
    run.apply(c.decide_legal(decision, now))
    if case is not None:
        litigation.decision_forwarded(case, approve)
    run.apply(tasks.resolve_subject(c, TaskKind.APPROVE_LEGAL, litigation.LEGAL_REFERRAL,
                                    "approved" if approve else "rejected", actor, now))
    if case is not None:
        run.legal_decided(case, approve)  # the child acts on the signal after the handler
    return True
