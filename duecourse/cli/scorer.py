"""`duecourse scorer train`: fit the learned scorer on a real or simulated ledger."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from duecourse.cli.common import (
    CliError,
    Json,
    console,
    ledger,
    ledger_url,
    run,
    safe_url,
    settings,
)
from duecourse.lab.learned_scorer import Cutoffs
from duecourse.lab.training import (
    HORIZON_DAYS,
    Trained,
    TrainingError,
    describe_source,
    train,
)

commands = typer.Typer(help="The learned scorer: train it on a ledger's own outcomes.",
                       no_args_is_help=True)


def _write(path: Path, trained: Trained) -> None:
    """Write the model whole or not at all (a worker may be reading the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text(trained.model.model_dump_json(by_alias=True, indent=2) + "\n",
                    encoding="utf-8")
    os.replace(part, path)


@commands.command("train")
def train_command(
        out: Annotated[Path, typer.Option("--out", help="where to write the model (JSON); "
                                          "point DUECOURSE_SCORER_MODEL at it")],
        ledger_option: Annotated[str | None, typer.Option(
            "--ledger", help="the ledger to learn from: a database URL, a SQLite file or "
            "a simulation's directory (default: DUECOURSE_DATABASE_URL's)")] = None,
        random_state: Annotated[int, typer.Option(help="fixes the held-out split and "
                                                  "the fit")] = 0,
        horizon_days: Annotated[int, typer.Option(
            min=1, help="cure = closed PAID or SETTLED within this many days of hand-over; "
            "a case open longer counts as not cured, one open for less is left out")
        ] = HORIZON_DAYS,
        self_cure_at: Annotated[float, typer.Option(
            min=0, max=1, help="cure probability from which a loan is self_cure")] = 0.75,
        willing_at: Annotated[float, typer.Option(
            min=0, max=1, help="willingness from which a loan not likely to cure alone is "
            "cant_pay (below: wont_pay, or cant_pay when unable to pay in full)")] = 0.5,
        as_json: Json = False,
) -> None:
    """Fit cure, willingness and ability on the ledger's cases; print the held-out
    AUCs and the weightiest facts. Use it with DUECOURSE_SCORER=
    duecourse.lab.learned_scorer:learned and DUECOURSE_SCORER_MODEL=FILE."""
    cfg = settings()
    cutoffs = Cutoffs(self_cure=self_cure_at, willing=willing_at)
    url = ledger_url(ledger_option)
    if url is not None:
        cfg = cfg.model_copy(update={"database_url": url})

    async def go() -> Trained:
        async with ledger(cfg) as book:
            try:
                return await train(book.engine, describe_source(cfg.ledger_url),
                                   random_state, cutoffs=cutoffs, horizon_days=horizon_days)
            except TrainingError as err:
                raise CliError(f"cannot train on {safe_url(cfg.ledger_url)}: {err}") from None

    trained = run(go())
    _write(out, trained)
    model = trained.model
    if as_json:
        typer.echo(json.dumps({
            "out": str(out), "rows": model.rows, "cases": model.cases,
            "horizon_days": model.horizon_days,
            "held_out_cases": model.held_out_cases, "cure_auc": model.cure.auc,
            "willingness_auc": model.willingness.auc if model.willingness else None,
            "ability_auc": model.ability.auc if model.ability else None,
            "top": [{"feature": f, "coefficient": c} for f, c in trained.top[:5]]},
            indent=2))
        return

    def auc(value: float | None) -> str:
        return "n/a (held-out cases of one kind)" if value is None else f"{value:.3f}"

    console.print(f"Learned from {model.rows} observations of {model.cases} cases "
                  f"({model.held_out_cases} held out) in {escape(model.source)}; cure = "
                  f"PAID or SETTLED within {model.horizon_days} days", highlight=False)
    console.print(f"cure AUC on held-out cases: {auc(model.cure.auc)}", highlight=False)
    for name, target in (("willingness", model.willingness), ("ability", model.ability)):
        console.print(f"{name} AUC on held-out cases: " + (
            auc(target.auc) if target else f"not fitted (the ledger shows one {name} only)"),
            highlight=False)
    console.print("top coefficients (per standard deviation, cure log-odds):",
                  highlight=False)
    for feature, coefficient in trained.top[:5]:
        console.print(f"  {feature:<26} {coefficient:+.3f}", highlight=False)
    console.print(f"Model written to {escape(str(out))}", highlight=False)
