"""`duecourse experiment show NAME` and `duecourse experiment check FILE`: champion/
challenger experiments, their arms and the loans the ledger assigned to each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from duecourse.cli.common import (
    Json,
    console,
    fail,
    ledger_url,
    missing_ledger,
    run,
    settings,
)
from duecourse.lab.assignments import assigned_counts
from duecourse.lab.experiments import Experiment, ExperimentError, load_experiment
from duecourse.store import connect

commands = typer.Typer(help="Champion/challenger experiments: check a file, show the arms "
                       "and the loans assigned to each.", no_args_is_help=True)

LedgerOption = Annotated[str | None, typer.Option(
    "--ledger", help="the ledger to count assignments in: a database URL or a SQLite file "
    "(a simulation's ledger.db or its directory); default: DUECOURSE_DATABASE_URL's")]


def _load(name_or_path: str) -> Experiment:
    cfg = settings()
    try:
        return load_experiment(name_or_path, cfg.experiment_dir, policy_dir=cfg.policy_dir)
    except ExperimentError as err:
        fail(str(err))


def _ledger_url(given: str | None) -> str:
    """The URL to read: `--ledger` as `ledger_url` reads it, else the settings' ledger."""
    return ledger_url(given) or settings().ledger_url


async def _counts(url: str, experiment: str) -> dict[str, int] | None:
    """Loans per arm, or None when the ledger does not exist yet (nothing assigned)."""
    if missing_ledger(url):
        return None
    engine = connect(url)
    try:
        return await assigned_counts(engine, experiment)
    finally:
        await engine.dispose()


def _arm_rows(experiment: Experiment, counts: dict[str, int] | None) -> list[dict[str, Any]]:
    rows = [{"arm": arm.name, "role": "champion" if arm is experiment.champion
             else "challenger", "policy": arm.policy, "share": str(arm.share),
             "loans": (counts or {}).get(arm.name, 0)} for arm in experiment.arms]
    for name, loans in sorted((counts or {}).items()):  # arms since removed keep loans
        if experiment.arm(name) is None:
            rows.append({"arm": name, "role": "removed", "policy": None, "share": None,
                         "loans": loans})
    return rows


@commands.command("show")
def show(name: Annotated[str, typer.Argument(help="the experiment's name or file")],
         ledger_option: LedgerOption = None, as_json: Json = False) -> None:
    """The experiment's arms, shares and status, and how many loans the ledger assigned
    to each arm."""
    experiment = _load(name)
    counts = run(_counts(_ledger_url(ledger_option), experiment.name))
    rows = _arm_rows(experiment, counts)
    if as_json:
        typer.echo(json.dumps({"name": experiment.name, "status": experiment.status,
                               "description": experiment.description,
                               "ledger": counts is not None, "arms": rows}, indent=2))
        return
    table = Table(title=f"Experiment {escape(experiment.name)} ({experiment.status})",
                  title_justify="left")
    for column in ("arm", "role", "policy", "share", "loans"):
        table.add_column(column, justify="right" if column in ("share", "loans") else "left")
    for row in rows:
        table.add_row(*(escape(str(row[c])) if row[c] is not None else "-"
                        for c in ("arm", "role", "policy", "share", "loans")))
    console.print(table)
    if experiment.status == "stopped":
        console.print("Stopped: new loans get the champion; assigned loans keep their arm.",
                      highlight=False)
    if counts is None:
        console.print("No ledger yet, so no loans are assigned.", highlight=False)


@commands.command("check")
def check(file: Annotated[Path, typer.Argument(help="the experiment file (YAML)")]) -> None:
    """Validate an experiment file: known fields, shares from 0 to 1 summing to 1, unique
    arm names, policies that exist."""
    experiment = _load(str(file))
    arms = ", ".join(f"{arm.name} on {arm.policy} ({(arm.share * 100).normalize():f}%)"
                     for arm in experiment.arms)
    console.print(f"{escape(str(file))}: experiment {escape(experiment.name)} is valid "
                  f"({experiment.status}): {escape(arms)}.", highlight=False, soft_wrap=True)
