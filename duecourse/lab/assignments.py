"""Live experiment assignment at hand-over: the arm a loan starts on, never moved.

`Experiment.assign` alone would move a loan when its experiment is re-weighted (its hash
point falls in another arm's slice) or stopped (new loans get the champion). So the
hand-over asks the ledger first: a loan that already had a case under this experiment
keeps the arm recorded there (`collection_cases.experiment`/`.strategy`), whatever the
file says now; only a loan new to the experiment is assigned by the hash - while it runs.
Once stopped, a new loan starts on the champion's policy but is not enrolled (no
experiment, no strategy on its case), so comparisons see only loans the hash assigned.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse import intake
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Policy
from duecourse.lab.experiments import Arm, Experiment
from duecourse.store import tables as t
from duecourse.temporal.contracts import StrategyChoice


async def recorded_arm(engine: AsyncEngine, experiment: str, loan_id: str,
                       ) -> tuple[str, str] | None:
    """(strategy, policy label) of the loan's latest case under `experiment`, if any."""
    cases = t.collection_cases
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(cases.c.strategy, cases.c.policy)
            .where(cases.c.loan_id == loan_id, cases.c.experiment == experiment,
                   cases.c.strategy.is_not(None))
            .order_by(cases.c.opened_at.desc()).limit(1))).first()
    return (row.strategy, row.policy) if row is not None else None


async def enrolment(engine: AsyncEngine | None, experiment: Experiment, loan_id: str
                    ) -> tuple[Arm, bool]:
    """The loan's arm and whether the loan is in the experiment: the arm its earlier case
    under this experiment recorded (in), else the hash's while it runs (in), else - the
    experiment stopped - the champion's policy outside the experiment, so a stopped
    experiment's later loans never join its champion arm and bias the comparison. An
    arm since removed from the file is kept too, on the policy its case ran."""
    recorded = await recorded_arm(engine, experiment.name, loan_id) if engine else None
    if recorded is None:
        return experiment.assign(loan_id), experiment.status == "running"
    strategy, policy_label = recorded
    return experiment.arm(strategy) or Arm(name=strategy, policy=policy_label.split("@")[0],
                                           share=0), True


async def assign_at_hand_over(engine: AsyncEngine | None, experiment: Experiment,
                              loan_id: str) -> Arm:
    """The arm the loan starts on (`enrolment`'s; the champion once stopped)."""
    return (await enrolment(engine, experiment, loan_id))[0]


def names_policy(loan: LoanIntake) -> bool:
    """Whether the hand-over named the loan's policy (an explicit policy wins over the
    experiment), rather than leaving it to the default."""
    return "policy" in loan.model_fields_set


async def start_choice(engine: AsyncEngine | None, experiment: Experiment | None,
                       row: intake.IntakeRow, loan: LoanIntake, policy: Policy, *,
                       now: datetime, policy_dir: str | Path | None, allow_demo: bool,
                       ) -> tuple[LoanIntake, Policy, StrategyChoice | None]:
    """The loan, policy and arm to start with: unchanged without an experiment or when
    the hand-over named a policy; else the arm's policy, checked as any loan's policy is
    (`intake.validate_for_start`, which raises RowRejected)."""
    if experiment is None or names_policy(loan):
        return loan, policy, None
    arm, enrolled = await enrolment(engine, experiment, loan.loan_id)
    assigned = loan.model_copy(update={"policy": arm.policy})
    assigned, chosen = intake.validate_for_start(replace(row, loan=assigned), now,
                                                 policy_dir, allow_demo)
    if not enrolled:  # stopped: the champion's policy, recorded as no experiment's arm
        return assigned, chosen, None
    return assigned, chosen, StrategyChoice(experiment=experiment.name, strategy=arm.name)


async def assigned_counts(engine: AsyncEngine, experiment: str) -> dict[str, int]:
    """Loans per arm (strategy) the ledger records under `experiment`; a loan handed
    over again (a new case) counts once."""
    cases = t.collection_cases
    async with engine.connect() as conn:
        rows = (await conn.execute(
            select(cases.c.strategy, func.count(distinct(cases.c.loan_id)))
            .where(cases.c.experiment == experiment, cases.c.strategy.is_not(None))
            .group_by(cases.c.strategy))).all()
    return {strategy: count for strategy, count in rows}
