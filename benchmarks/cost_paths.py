"""The named paths a loan takes, driven through the public client as a platform, an agent
or a supervisor would, on the demo policy - and each path's analytic minimum, derived from
the business facts of the run (contacts sent, stage changes) as a Shape.

Borrowers live where it is late morning now (tests.factories.daytime_zone), so no path
waits for lawful hours whenever the benchmark runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from sqlalchemy import func, select

from benchmarks.cost_shape import Shape
from duecourse.demo.script import AGENT, SUPERVISOR, Driver
from duecourse.domain.agreements.terms import InstalmentSpec, PlanProposal
from duecourse.domain.case.commands import LegalDecision
from duecourse.domain.case.status import CollectionStatus
from duecourse.domain.loan import LoanIntake
from duecourse.domain.money import Money
from duecourse.store import Ledger
from duecourse.store import tables as t
from tests.factories import daytime_zone, make_loan

PLAN_INSTALMENTS = 6


@dataclass(frozen=True)
class Facts:
    """What the loan's life consisted of."""

    contacts: int  # contacts sent
    stage_changes: int
    outcome: str | None

    @staticmethod
    async def of(ledger: Ledger, loan_id: str) -> Facts:
        """From the ledger, the durable record (a query would replay the workflow, and
        depend on its code)."""
        sent = t.contact_attempts.c
        moves = t.stage_transitions.c
        cases = t.collection_cases.c
        async with ledger.engine.connect() as conn:
            contacts = (await conn.execute(select(func.count()).where(
                sent.loan_id == loan_id, sent.status == "sent"))).scalar_one()
            changes = (await conn.execute(select(func.count()).where(
                moves.loan_id == loan_id, moves.from_stage.is_not(None),
                moves.to_stage.is_not(None)))).scalar_one()
            outcome = (await conn.execute(select(cases.outcome).where(
                cases.loan_id == loan_id))).scalar()
        return Facts(int(contacts), int(changes), outcome)


@dataclass(frozen=True)
class Path:
    name: str
    story: str
    outcome: str
    drive: Callable[[Driver], Awaitable[None]]
    minimum: Callable[[Facts], Shape]
    why: str  # how the minimum follows from the facts


def _contacted(n: int) -> Callable[[CollectionStatus], bool]:
    return lambda s: s.contacts_sent >= n


def _instalments(total: Money, n: int) -> list[Money]:
    """`total` in n parts, the last taking the rounding."""
    part = (total.amount / n).quantize(Decimal("0.01"), ROUND_DOWN)
    return [Money.of(part, total.currency)] * (n - 1) + [
        Money.of(total.amount - part * (n - 1), total.currency)]


async def reminders_then_paid(d: Driver) -> None:
    await d.until(_contacted(3))
    await d.pay_rest("after three reminders")


async def promise_kept(d: Driver) -> None:
    s = await d.until(_contacted(2))
    await d.promise(s.outstanding)
    await d.pay(s.outstanding, "the promised amount, on time")


async def plan_completed(d: Driver) -> None:
    s = await d.until(_contacted(2))
    today = await d.today()
    amounts = _instalments(s.outstanding, PLAN_INSTALMENTS)
    await d.client.propose_plan(d.loan_id, PlanProposal(
        instalments=[InstalmentSpec(due_date=today + timedelta(days=7 * i), amount=a)
                     for i, a in enumerate(amounts)],
        actor=AGENT, note="benchmark: six weekly instalments"))
    for n, amount in enumerate(amounts, start=1):
        await d.sleep(1)
        await d.pay(amount, f"instalment {n} of {PLAN_INSTALMENTS}")


async def written_off(d: Driver) -> None:
    await d.until(lambda s: s.legal_phase == "AWAITING_APPROVAL")
    await d.client.decide_legal_referral(d.loan_id, LegalDecision(
        approve=True, actor=SUPERVISOR, reason="benchmark: cure period ended unpaid"))


PATHS: dict[str, Path] = {p.name: p for p in (
    Path("reminders-paid", "reminders then paid", "PAID", reminders_then_paid,
         lambda f: Shape(contacts=f.contacts, timers=f.contacts, payments=1,
                         upserts=f.stage_changes + 1),
         "k contacts: a timer and a write each (the first contact's timer is the one "
         "pending when the payment comes); 1 payment: signal + write; 1 upsert per stage "
         "change and 1 for the outcome"),
    Path("promise-kept", "promise kept", "PAID", promise_kept,
         lambda f: Shape(contacts=f.contacts, timers=f.contacts + 1, commands=1,
                         payments=1, upserts=f.stage_changes + 1),
         "as reminders-paid, plus the promise: update + write, and its check date's timer"),
    Path("plan-completed", f"{PLAN_INSTALMENTS}-instalment plan completed", "PAID",
         plan_completed,
         lambda f: Shape(contacts=f.contacts, timers=f.contacts + PLAN_INSTALMENTS,
                         commands=1, payments=PLAN_INSTALMENTS,
                         upserts=f.stage_changes + 1),
         f"k contacts; the plan: update + write; {PLAN_INSTALMENTS} instalments: a due-date "
         "timer, a signal and a write each; upserts per stage change + outcome"),
    Path("written-off", "full life to write-off", "WRITTEN_OFF", written_off,
         lambda f: Shape(contacts=f.contacts, timers=f.contacts + f.stage_changes + 2,
                         steps=f.stage_changes + 2, commands=1,
                         upserts=f.stage_changes + 1),
         "k contacts; s stage changes, the cure period's end and the write-off: a timer "
         "and a write each; the supervisor's approval: update + write; upserts per stage "
         "change + outcome"),
)}


def office_hours_loan(loan_id: str, policy: str = "demo") -> LoanIntake:
    """A loan 3 days overdue whose borrower is in late morning now."""
    now = datetime.now(UTC)
    return make_loan(now, dpd=3, tz=daytime_zone(now), policy=policy).model_copy(
        update={"loan_id": loan_id})
