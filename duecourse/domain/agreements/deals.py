"""Agent actions on a loan: instalment plans, settlements and assignment.

Each has a `*_problem` check (the update validator: a precise reason, or None) and a
transition returning the ledger entries that prove it, with who did it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from pydantic_core import to_jsonable_python

from duecourse.domain.actor import SYSTEM, Actor, ActorKind
from duecourse.domain.agreements.terms import (
    Assignment,
    Instalment,
    InstalmentStatus,
    PlanProgress,
    PlanProposal,
    PlanStatus,
    RepaymentPlan,
    Settlement,
    SettlementDecision,
    SettlementOffer,
    SettlementResult,
    SettlementStatus,
)
from duecourse.domain.calendar import local_date, local_midnight
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.state import Outcome, Stage
from duecourse.domain.entries import AgreementRecorded, LedgerEntry
from duecourse.domain.money import Money
from duecourse.domain.policy import PlanRules
from duecourse.domain.work.queue import TaskKind
from duecourse.domain.work.tasks import open_task, resolve_subject, task_entry

MANAGERS = (ActorKind.SUPERVISOR, ActorKind.OPS, ActorKind.SYSTEM)


def _busy(c: Collection) -> str | None:
    s = c.state
    if s.is_closed:
        return f"the loan is closed ({s.outcome})"
    if (p := s.agreements.active_promise) is not None:
        return f"promise {p.promise_id} is still active until {p.due_date}"
    if (plan := s.agreements.active_plan) is not None:
        return f"plan {plan.plan_id} is active"
    if (offer := s.agreements.open_settlement) is not None:
        return f"settlement {offer.settlement_id} is {offer.status.value.lower()}"
    return None


def plan_rules(c: Collection) -> PlanRules:
    """The policy's plan limits, narrowed by the loan's segment treatment."""
    rules = c.policy.plans
    limit = c.policy.treatment(c.state.segment).max_instalments
    if limit is not None and limit < rules.max_instalments:
        return rules.model_copy(update={"max_instalments": limit})
    return rules


def _agreement(c: Collection, kind: str, ident: str, status: str, amount: Decimal,
               terms: dict[str, object], actor: Actor, now: datetime,
               version: int) -> AgreementRecorded:
    return AgreementRecorded(
        key=f"agreement:{ident}:{version}", occurred_at=now, actor=actor,
        agreement_id=ident, agreement_type=kind, status=status, amount=amount,  # type: ignore[arg-type]
        currency=c.loan.currency, terms=to_jsonable_python(terms), version=version)


# --------------------------------------------------------------------------- plans
def plan_problem(c: Collection, proposal: PlanProposal, now: datetime) -> str | None:
    if problem := _busy(c):
        return problem
    if c.state.stage is Stage.LEGAL:
        return ("the loan is in the legal stage; settle it or record payments instead of a "
                "new plan")
    rules, s = plan_rules(c), c.state
    items = proposal.instalments
    currency = items[0].amount.currency
    if currency != c.loan.currency:
        return f"instalments must be in {c.loan.currency}, got {currency}"
    if len(items) > rules.max_instalments:
        return f"{len(items)} instalments exceed the maximum of {rules.max_instalments}"
    total = sum((i.amount.amount for i in items), Decimal(0))
    if total != s.outstanding:
        return (f"the plan totals {total} {currency} but the outstanding balance is "
                f"{s.outstanding} {currency}; instalments must cover it exactly")
    today = local_date(now, c.tz)
    first = items[0].due_date
    if first < today:
        return f"the first instalment date {first} is in the past (today is {today})"
    if (first - today).days > rules.max_days_to_first_payment:
        return (f"the first instalment is {(first - today).days} days away; at most "
                f"{rules.max_days_to_first_payment} allowed")
    for before, after in pairwise(items):
        gap = (after.due_date - before.due_date).days
        if gap > rules.max_interval_days:
            return (f"{gap} days between instalments due {before.due_date} and "
                    f"{after.due_date}; at most {rules.max_interval_days} allowed")
    minimum = (s.outstanding * rules.min_instalment_ratio).quantize(Decimal("0.01"))
    for number, item in enumerate(items[:-1], start=1):
        if item.amount.amount <= 0 or item.amount.amount < minimum:
            return (f"instalment {number} of {item.amount} is below the minimum of "
                    f"{minimum} {currency} ({rules.min_instalment_ratio:%} of the balance)")
    if items[-1].amount.amount <= 0:
        return "the last instalment must be greater than zero"
    down = (s.outstanding * rules.min_down_payment_ratio).quantize(Decimal("0.01"))
    if items[0].amount.amount < down:
        return (f"the first instalment of {items[0].amount} is below the minimum down "
                f"payment of {down} {currency}")
    return None


def accept_plan(c: Collection, proposal: PlanProposal, now: datetime,
                workflow_id: str) -> tuple[RepaymentPlan, list[LedgerEntry]]:
    if problem := plan_problem(c, proposal, now):
        raise ValueError(problem)
    s = c.state
    plan = RepaymentPlan(
        plan_id=f"PLAN{len(s.agreements.plans) + 1}", workflow_id=workflow_id,
        currency=c.loan.currency,
        instalments=[Instalment(number=n, due_date=i.due_date, amount=i.amount.amount)
                     for n, i in enumerate(proposal.instalments, start=1)],
        agreed_at=now, actor=proposal.actor, note=proposal.note)
    entries: list[LedgerEntry] = []
    if s.stage is Stage.REMINDER:
        entries += c.enter_stage(Stage.NEGOTIATION, now, "instalment plan agreed", proposal.actor)
    s.agreements.plans.append(plan)
    s.agreements.plan_reminders.clear()
    entries.append(plan_record(c, plan, now, proposal.actor))
    return plan, entries


def plan_record(c: Collection, plan: RepaymentPlan, now: datetime,
                actor: Actor = SYSTEM) -> AgreementRecorded:
    return _agreement(c, "plan", plan.plan_id, plan.status.value, plan.total,
                      {"instalments": [i.model_dump() for i in plan.instalments],
                       "late": plan.late, "workflow_id": plan.workflow_id,
                       "paid": plan.paid, "note": plan.note}, actor, now, plan.version)


def plan_progress(c: Collection, progress: PlanProgress, now: datetime) -> list[LedgerEntry]:
    """Apply the child's snapshot; a broken plan goes where the policy says."""
    s = c.state
    agreed, plans = s.agreements, s.agreements.plans
    index = next((i for i, p in enumerate(plans) if p.plan_id == progress.plan.plan_id), None)
    if index is None or plans[index].status is not PlanStatus.ACTIVE:
        return []
    plans[index] = progress.plan
    if progress.plan.status is not PlanStatus.ACTIVE:
        agreed.plan_reminders.clear()  # reminders only ever concern the running plan
    elif progress.event == "reminder" and progress.instalment is not None:
        agreed.plan_reminders.append(progress.instalment)
    entries: list[LedgerEntry] = [plan_record(c, progress.plan, now)]
    if progress.event == "reminder":
        return []
    if progress.event == "rescheduled":
        entries.append(c.record_event("plan_rescheduled", now, plan=progress.plan.plan_id,
                                      paused_days=progress.plan.paused_days,
                                      due_dates=[i.due_date for i in progress.plan.instalments
                                           if i.status is InstalmentStatus.DUE]))
        return entries
    entries.append(c.record_event(f"plan_{progress.event}", now, plan=progress.plan.plan_id,
                                  instalment=progress.instalment, late=progress.plan.late))
    if progress.event in ("broken", "lapsed") and not s.is_closed:
        unpaid = sum(i.status is InstalmentStatus.LATE for i in progress.plan.instalments)
        if progress.event == "broken":
            reason = f"plan {progress.plan.plan_id} broken ({progress.plan.late} late instalments)"
        else:
            reason = (f"plan {progress.plan.plan_id} lapsed: its schedule ended with {unpaid} "
                      "instalment(s) unpaid")
        entries += plan_ended(c, reason, now, escalate=progress.event == "broken"
                              and c.policy.plans.on_broken == "legal")
    return entries


def plan_ended(c: Collection, reason: str, now: datetime,
               escalate: bool = False) -> list[LedgerEntry]:
    """A plan stopped running without being paid off: collection goes on where the policy
    says - legal, or negotiation with a fresh window."""
    s = c.state
    s.rescore = True
    if escalate:
        return c.escalate(now, reason)
    if s.stage is Stage.NEGOTIATION:
        s.negotiation_deadline = now + c.policy.negotiation.window
        return []
    return c.enter_stage(Stage.NEGOTIATION, now, reason, SYSTEM)


# --------------------------------------------------------------------------- settlements
def settlement_problem(c: Collection, offer: SettlementOffer, now: datetime) -> str | None:
    if problem := _busy(c):
        return problem
    rules, s = c.policy.settlements, c.state
    if offer.amount.currency != c.loan.currency:
        return f"amount must be in {c.loan.currency}, got {offer.amount.currency}"
    if not offer.amount.is_positive:
        return "amount must be greater than zero"
    if offer.amount.amount >= s.outstanding:
        return (f"{offer.amount} is not a discount on the outstanding {s.outstanding} "
                f"{c.loan.currency}; record a promise to pay instead")
    floor = (s.outstanding * rules.floor_ratio).quantize(Decimal("0.01"))
    if offer.amount.amount < floor:
        return (f"{offer.amount} is below the policy floor of {floor} {c.loan.currency} "
                f"({rules.floor_ratio:.0%} of the balance)")
    today = local_date(now, c.tz)
    if offer.pay_by < today:
        return f"pay-by date {offer.pay_by} is in the past (today is {today})"
    if (offer.pay_by - today).days > rules.max_days_to_pay:
        return (f"pay-by date {offer.pay_by} is more than {rules.max_days_to_pay} days "
                "ahead")
    return None


def settlement_result(c: Collection, settlement_id: str) -> SettlementResult:
    """Where settlement `settlement_id` stands, as the agent's update answers it."""
    st = next(x for x in c.state.agreements.settlements if x.settlement_id == settlement_id)
    return SettlementResult(settlement_id=st.settlement_id, status=st.status,
                            amount=Money(amount=st.amount, currency=st.currency),
                            discount=st.discount,
                            needs_approval=st.status is SettlementStatus.PENDING_APPROVAL,
                            task_id=st.task_id)


def offer_settlement(c: Collection, offer: SettlementOffer,
                     now: datetime) -> tuple[Settlement, list[LedgerEntry]]:
    if problem := settlement_problem(c, offer, now):
        raise ValueError(problem)
    rules, s = c.policy.settlements, c.state
    discount = (1 - offer.amount.amount / s.outstanding).quantize(Decimal("0.0001"))
    needs_approval = discount > rules.agent_max_discount and \
        offer.actor.kind is not ActorKind.SUPERVISOR
    check_day = offer.pay_by + timedelta(days=rules.grace_days + 1)
    settlement = Settlement(
        settlement_id=f"SET{len(s.agreements.settlements) + 1}", amount=offer.amount.amount,
        currency=c.loan.currency, balance_at_offer=s.outstanding, pay_by=offer.pay_by,
        check_at=local_midnight(check_day, c.tz), discount=discount,
        status=(SettlementStatus.PENDING_APPROVAL if needs_approval
                else SettlementStatus.ACCEPTED),
        offered_by=offer.actor, paid_before=s.total_paid, note=offer.note,
        decided_by=None if needs_approval else offer.actor)
    s.agreements.settlements.append(settlement)
    entries: list[LedgerEntry] = [settlement_record(c, settlement, now, offer.actor)]
    if needs_approval:
        task, task_entries = open_task(c, TaskKind.APPROVE_SETTLEMENT,
                                       settlement.settlement_id, now,
                                       assignee=c.policy.tasks.supervisor_queue)
        settlement.task_id = task.task_id
        entries += task_entries
    return settlement, entries


def settlement_record(c: Collection, st: Settlement, now: datetime,
                      actor: Actor = SYSTEM) -> AgreementRecorded:
    st.version += 1
    return _agreement(c, "settlement", st.settlement_id, st.status.value, st.amount,
                      {"pay_by": st.pay_by, "discount": st.discount,
                       "balance_at_offer": st.balance_at_offer, "waived": st.waived,
                       "offered_by": str(st.offered_by), "decided_by":
                       str(st.decided_by) if st.decided_by else None, "note": st.note},
                      actor, now, st.version)


def settlement_decision_problem(c: Collection, decision: SettlementDecision,
                                now: datetime | None = None) -> str | None:
    pending = c.state.agreements.open_settlement
    if c.state.is_closed:
        return f"the loan is closed ({c.state.outcome})"
    if pending is None or pending.status is not SettlementStatus.PENDING_APPROVAL:
        return "no settlement is awaiting approval"
    if now is not None and local_date(now, c.tz) > pending.pay_by:
        return f"settlement {pending.settlement_id} could be paid until {pending.pay_by} only"
    if decision.actor.kind is not ActorKind.SUPERVISOR:
        return f"only a supervisor may approve a settlement, not {decision.actor.kind}"
    return None


def decide_settlement(c: Collection, decision: SettlementDecision,
                      now: datetime) -> list[LedgerEntry]:
    if problem := settlement_decision_problem(c, decision, now):
        raise ValueError(problem)
    st = c.state.agreements.open_settlement
    assert st is not None
    st.status = SettlementStatus.ACCEPTED if decision.approve else SettlementStatus.REJECTED
    st.decided_by = decision.actor
    st.note = decision.reason
    entries: list[LedgerEntry] = [settlement_record(c, st, now, decision.actor)]
    entries += resolve_subject(c, TaskKind.APPROVE_SETTLEMENT, st.settlement_id,
                               "approved" if decision.approve else "rejected",
                               decision.actor, now)
    return entries + settle_if_paid(c, now, decision.actor)


def settle_if_paid(c: Collection, now: datetime, actor: Actor) -> list[LedgerEntry]:
    """An accepted settlement paid in full closes the loan as SETTLED, waiving the rest."""
    s = c.state
    st = s.agreements.open_settlement
    if st is None or st.status is not SettlementStatus.ACCEPTED or s.is_closed:
        return []
    if s.total_paid - st.paid_before < st.amount:
        return []
    st.status, st.waived = SettlementStatus.PAID, s.outstanding
    s.outstanding = Decimal(0)
    entries: list[LedgerEntry] = [settlement_record(c, st, now, actor)]
    entries += c.close(Outcome.SETTLED, now, f"settlement {st.settlement_id} paid; "
                       f"{st.waived} {st.currency} waived", actor)
    return entries


def check_settlement(c: Collection, now: datetime) -> list[LedgerEntry]:
    """Past its pay-by date plus grace, an unpaid settlement (approved or still waiting for a
    supervisor) lapses and routine collection resumes."""
    st = c.state.agreements.open_settlement
    if st is None:
        return []
    waiting = st.status is SettlementStatus.PENDING_APPROVAL
    st.status = SettlementStatus.LAPSED
    c.state.rescore = True
    entries: list[LedgerEntry] = [settlement_record(c, st, now)]
    if waiting:
        entries += resolve_subject(c, TaskKind.APPROVE_SETTLEMENT, st.settlement_id,
                                   "lapsed", SYSTEM, now)
    return entries


# --------------------------------------------------------------------------- assignment
def assignment_problem(c: Collection, a: Assignment) -> str | None:
    current = c.state.work.assigned_agent
    if c.state.is_closed:
        return f"the loan is closed ({c.state.outcome})"
    if a.actor.kind in MANAGERS:
        return None if current != a.agent_id else f"already assigned to {a.agent_id}"
    if a.actor.kind is ActorKind.AGENT and a.agent_id == a.actor.id and current is None:
        return None  # an agent may pick up an unassigned loan
    return (f"only a supervisor or ops may (re)assign a loan; agent {a.actor.id} may only "
            "take an unassigned loan for themselves")


def assign(c: Collection, a: Assignment, now: datetime) -> tuple[str | None,
                                                                 list[LedgerEntry]]:
    if problem := assignment_problem(c, a):
        raise ValueError(problem)
    previous, c.state.work.assigned_agent = c.state.work.assigned_agent, a.agent_id
    entries: list[LedgerEntry] = [c.record_event("agent_assigned", now, a.actor, agent=a.agent_id,
                                                 previous=previous, note=a.note)]
    for task in c.state.work.open_tasks:
        if task.assignee in (previous, c.policy.tasks.default_queue):
            task.assignee = a.agent_id
            task.version += 1
            entries.append(task_entry(task, now, a.actor))
    return previous, entries
