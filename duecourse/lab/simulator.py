"""`duecourse simulate`: a synthetic portfolio run through the real decision code.

Each loan is handed over at `start`, runs as a `LoanRun` (the workflow's loop on the
planner, aggregate and compliance engine) driven by a `Borrower` for `days` of virtual
time, and lands in a SQLite ledger in the project's own schema (`DIR/ledger.db`), so
every report reads simulated and real data alike. Loans are independent, so they are
simulated in fixed chunks, across processes when asked; each loan draws only from its
own generator (seed and loan id), and chunks are written in order: the same seed gives
the same ledger, byte for byte in every row, whatever the number of processes.

Agents work a share of the call tasks (asking the engine first, completing the task
with the call's outcome) and agree repayment plans and settlements with the borrowers who
ask (`sim_deals`); plans run in their own child (`sim_plan`, the plan workflow's schedule
code). A simulated supervisor (`sim_supervisor`) decides a share of the legal referrals
and the settlements beyond the agent's limit; an approved referral goes to a partner that
takes it at once. Not simulated (the ledger has none of it): field visits and other
tasks (they stay open and escalate at their SLA), court events after a referral, channel
and partner failures, and ops alerts.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from duecourse.activities.scoring import Scorer, load_scorer
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Policy
from duecourse.domain.rules import RulesSnapshot
from duecourse.lab.behaviour import Behaviour, LabFile, load_behaviour
from duecourse.lab.portfolio import SimLoan, make_portfolio
from duecourse.lab.sim_borrower import Borrower
from duecourse.lab.sim_ledger import LoanRows, Rows, create_ledger, write_rows
from duecourse.lab.sim_loan import LoanRun
from duecourse.lab.sim_supervisor import Supervisor
from duecourse.policies import load_policy
from duecourse.snapshots import take_snapshot

DEFAULT_START = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
"""Hand-over time of every simulated loan unless told otherwise (a Monday)."""
CHUNK = 250
"""Loans per unit of work: fixed, so the result never depends on the process count."""
WRITE_EVERY = 8
"""Chunks per ledger transaction."""
DEFAULT_SCORER = "duecourse.domain.scoring:scorecard"


class SimulationError(ValueError):
    """A simulation that cannot start, in one sentence."""


@dataclass(frozen=True)
class Assignment:
    """Which policy a loan runs on, and the experiment arm that chose it."""

    policy: str
    experiment: str | None = None
    strategy: str | None = None


@dataclass(frozen=True)
class Job:
    loans: list[SimLoan]
    assignments: list[Assignment]
    behaviour: Behaviour
    seed: int
    start: datetime
    days: int
    scorer: str
    policy_dir: str | None


@dataclass
class SimulationResult:
    ledger: Path
    loans: int
    days: int
    seconds: float
    rows: int
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def loan_days_per_second(self) -> float:
        return self.loans * self.days / self.seconds if self.seconds else 0.0


# ------------------------------------------------------------------ one process's side
@lru_cache(maxsize=32)
def _policy(name: str, policy_dir: str | None) -> Policy:
    return load_policy(name, policy_dir)


@lru_cache(maxsize=64)
def _rules(jurisdiction: str, zone: str, policy: str, policy_dir: str | None,
           at: datetime) -> tuple[RulesSnapshot, dict[str, Any]]:
    """The snapshot `open_loan` takes, and the pack and rules the case row keeps of it
    (loans of one jurisdiction, zone and policy handed over together share them)."""
    rules = take_snapshot(jurisdiction, zone, _policy(policy, policy_dir).compliance, at)
    return rules, {"pack": rules.pack.model_dump(mode="json"),
                   "rules": rules.model_dump(mode="json")}


@lru_cache(maxsize=4)
def _scorer(path: str) -> Scorer:
    return load_scorer(path)


def case_id_for(seed: int, loan_id: str) -> str:
    """The case id a loan's workflow would take from its first run id: here from the seed."""
    return str(uuid.UUID(int=random.Random(f"case:{seed}:{loan_id}").getrandbits(128),
                         version=4))


def open_run(loan: LoanIntake, policy: Policy, start: datetime, case_id: str,
             scorer: Scorer, rules: RulesSnapshot, compliance: dict[str, Any] | None = None,
             experiment: str | None = None, strategy: str | None = None) -> LoanRun:
    """A loan handed over at `start` on `policy` (its case and first entries recorded),
    ready to `run`; its rows are `run.rows`."""
    rows = LoanRows(loan, case_id, loan.workflow_id, policy.label, start, experiment,
                    strategy)
    run = LoanRun(loan, policy, rules, start, case_id, scorer, rows)
    kept = compliance if compliance is not None else {
        "pack": rules.pack.model_dump(mode="json"), "rules": rules.model_dump(mode="json")}
    rows.case["compliance"] = {**run.c.compliance_record(), **kept}
    return run


def simulate_loan(sim: SimLoan, assignment: Assignment, b: Behaviour, seed: int,
                  start: datetime, days: int, scorer: Scorer,
                  policy_dir: str | None = None) -> tuple[LoanRun, Rows]:
    """One loan from hand-over at `start` for `days` days; its run and its ledger rows."""
    policy = _policy(assignment.policy, policy_dir)
    loan = sim.loan.model_copy(update={"policy": assignment.policy})
    rules, kept = _rules(loan.jurisdiction, loan.borrower.timezone, assignment.policy,
                         policy_dir, start)
    run = open_run(loan, policy, start, case_id_for(seed, loan.loan_id), scorer, rules,
                   kept, assignment.experiment, assignment.strategy)
    supervisor = Supervisor(run, b.supervisor,
                            random.Random(f"supervisor:{seed}:{loan.loan_id}"))
    borrower = Borrower(run, sim.dpd, b, random.Random(f"borrower:{seed}:{loan.loan_id}"),
                        supervisor)
    borrower.start()
    run.run(start + timedelta(days=days))
    return run, run.rows.finish()


def run_job(job: Job) -> Rows:
    """A chunk of loans, in order, as one set of rows (run in a worker process)."""
    scorer = _scorer(job.scorer)
    merged: Rows = {}
    for sim, assignment in zip(job.loans, job.assignments, strict=True):
        _run, rows = simulate_loan(sim, assignment, job.behaviour, job.seed, job.start,
                                   job.days, scorer, job.policy_dir)
        for name, items in rows.items():
            merged.setdefault(name, []).extend(items)
    return merged


# ------------------------------------------------------------------ the whole run
def assignments(loans: list[SimLoan], policy: str | None, experiment: str | None,
                policy_dir: str | None = None,
                experiment_dir: str | None = None) -> list[Assignment]:
    """Each loan's policy: the one named, or its experiment arm's (stable per loan id)."""
    if experiment is None:
        name = policy or "standard"
        _load(name, policy_dir)
        return [Assignment(policy=name) for _ in loans]
    from duecourse.lab.experiments import load_experiment  # the lab's experiments module

    exp = load_experiment(experiment, experiment_dir, policy_dir=policy_dir)
    arms = [exp.assign(sim.loan.loan_id) for sim in loans]
    for arm in {a.policy for a in arms}:
        _load(arm, policy_dir)
    return [Assignment(policy=a.policy, experiment=exp.name, strategy=a.name) for a in arms]


def _load(name: str, policy_dir: str | None) -> None:
    try:
        _policy(name, policy_dir)
    except LookupError as err:
        raise SimulationError(f"policy {name!r} not found: {err}") from None


def _jobs(loans: list[SimLoan], plan: list[Assignment], lab: LabFile, seed: int,
          start: datetime, days: int, scorer: str, policy_dir: str | None) -> Iterator[Job]:
    for i in range(0, len(loans), CHUNK):
        yield Job(loans=loans[i:i + CHUNK], assignments=plan[i:i + CHUNK],
                  behaviour=lab.behaviour, seed=seed, start=start, days=days,
                  scorer=scorer, policy_dir=policy_dir)


def simulate(out: Path, loans: int, days: int, seed: int, *, policy: str | None = None,
             experiment: str | None = None, behaviour: Path | None = None,
             start: datetime = DEFAULT_START, workers: int = 1,
             scorer: str = DEFAULT_SCORER, policy_dir: str | None = None,
             experiment_dir: str | None = None) -> SimulationResult:
    """Simulate `loans` loans for `days` days into `out/ledger.db` (a new file)."""
    if policy is not None and experiment is not None:
        raise SimulationError("give --policy or --experiment, not both")
    if loans < 1 or days < 1:
        raise SimulationError("--loans and --days must be at least 1")
    if start.tzinfo is None:
        raise SimulationError("the start time must carry a time zone")
    ledger = out / "ledger.db"
    if ledger.exists():
        raise SimulationError(f"{ledger} already exists: simulate into an empty directory")
    lab = load_behaviour(behaviour)
    began = time.perf_counter()
    portfolio = make_portfolio(lab.portfolio, loans, seed, start)
    plan = assignments(portfolio, policy, experiment, policy_dir, experiment_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine = create_ledger(ledger)
    result = SimulationResult(ledger=ledger, loans=loans, days=days, seconds=0.0, rows=0)
    jobs = _jobs(portfolio, plan, lab, seed, start, days, scorer, policy_dir)
    try:
        if min(workers, -(-loans // CHUNK)) > 1:  # a pool only for 2+ chunks
            with ProcessPoolExecutor(max_workers=workers,
                                     mp_context=get_context("spawn")) as pool:
                _write(engine, pool.map(run_job, jobs), result)
        else:
            _write(engine, map(run_job, jobs), result)
    finally:
        engine.dispose()
    result.seconds = time.perf_counter() - began
    return result


def _write(engine: Any, chunks: Iterator[Rows], result: SimulationResult) -> None:
    batch: list[Rows] = []
    for rows in chunks:
        result.outcomes.update(case["outcome"] or "OPEN"
                               for case in rows.get("collection_cases", []))
        batch.append(rows)
        if len(batch) >= WRITE_EVERY:
            result.rows += write_rows(engine, batch)
            batch = []
    if batch:
        result.rows += write_rows(engine, batch)
