"""`duecourse simulate`: a synthetic portfolio through the real decision code, into a
ledger that every report reads like a live one."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from duecourse.cli.common import console, fail, settings
from duecourse.lab.behaviour import BehaviourError
from duecourse.lab.simulator import DEFAULT_START, SimulationError
from duecourse.lab.simulator import simulate as run_simulation


def simulate(
    out: Annotated[Path, typer.Option("--out", help="directory for the ledger (ledger.db); "
                                      "must not hold one yet")],
    loans: Annotated[int, typer.Option("--loans", help="loans in the portfolio")] = 1000,
    days: Annotated[int, typer.Option("--days", help="days of virtual time after hand-over")]
    = 180,
    seed: Annotated[int, typer.Option("--seed", help="same seed, same ledger")] = 1,
    policy: Annotated[str | None, typer.Option("--policy", help="the policy every loan runs "
                                               "on (default: standard)")] = None,
    experiment: Annotated[str | None, typer.Option(
        "--experiment", help="an experiment name or file: each loan runs on its arm")] = None,
    behaviour: Annotated[Path | None, typer.Option(
        "--behaviour", help="portfolio and borrower behaviour YAML (default: the bundled "
        "duecourse/lab/behaviour.yaml)")] = None,
    start: Annotated[str | None, typer.Option(
        "--start", help="hand-over time, ISO 8601 with offset (default "
        f"{DEFAULT_START.isoformat()})")] = None,
    workers: Annotated[int, typer.Option("--workers", help="processes (default: CPUs, "
                                         "at most 2); the result is the same")] = 0,
) -> None:
    """Simulate a portfolio through the planner, aggregate and compliance engine."""
    cfg = settings()
    try:
        at = datetime.fromisoformat(start) if start else DEFAULT_START
    except ValueError:
        fail(f"--start {start!r} is not an ISO 8601 time such as 2026-01-05T09:00:00+00:00")
    procs = workers or min(2, os.cpu_count() or 1)
    try:
        result = run_simulation(out, loans, days, seed, policy=policy, experiment=experiment,
                                behaviour=behaviour, start=at, workers=procs,
                                scorer=cfg.scorer, policy_dir=cfg.policy_dir,
                                experiment_dir=cfg.experiment_dir)
    except (BehaviourError, SimulationError, ValueError, OSError) as err:
        fail(str(err))
    table = Table(title=f"{loans} loans, {days} days, seed {seed}")
    table.add_column("outcome")
    table.add_column("loans", justify="right")
    for outcome, n in sorted(result.outcomes.items()):
        table.add_row(outcome, str(n))
    console.print(table)
    console.print(f"ledger {result.ledger} ({result.rows} rows) in {result.seconds:.1f} s: "
                  f"{result.loan_days_per_second:,.0f} loan-days/s on {procs} process(es)")
