"""Operating commands: run the worker, migrate the ledger, start a file, show policies."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.markup import escape
from rich.table import Table

import starter
from duecourse.cli.common import console, ledger, run, safe_url, settings, user_errors
from duecourse.logs import configure_logging
from duecourse.policies import available_policies, load_policy
from worker import run_worker

PolicyDir = Annotated[str | None, typer.Option(
    help="directory with extra policy YAML files (default: DUECOURSE_POLICY_DIR)")]


def worker(migrate: Annotated[bool, typer.Option(
        "--migrate/--no-migrate", help="bring the ledger schema up to date first")] = True,
           ) -> None:
    """Run the worker (workflows and activities) until Ctrl-C or SIGTERM."""
    cfg = settings()
    configure_logging(cfg.log_format, cfg.log_level)
    run(run_worker(cfg, run_migrations=migrate))


db = typer.Typer(help="Ledger database.", no_args_is_help=True)


@db.command()
def upgrade() -> None:
    """Migrate the ledger at DUECOURSE_DATABASE_URL (or the data dir) to the latest schema."""
    cfg = settings()

    async def go() -> None:
        async with ledger(cfg):
            pass

    run(go())
    console.print(f"Ledger at {escape(safe_url(cfg.ledger_url))} is up to date.",
                  highlight=False)


def start(file: Annotated[Path, typer.Argument(help="hand-over file, .csv or .json")],
          policy_dir: PolicyDir = None) -> None:
    """Start collection for every loan in FILE (idempotent: running loans are kept)."""
    code = asyncio.run(starter.run(settings(), file, console, policy_dir=policy_dir))
    raise typer.Exit(code)


def policies(policy_dir: PolicyDir = None) -> None:
    """List the policies loans can name."""
    extra = policy_dir or settings().policy_dir
    table = Table(title="Policies", title_justify="left")
    for column in ("name", "version", "description"):
        table.add_column(column)
    for name in available_policies(extra):
        try:
            p = load_policy(name, extra)
            table.add_row(name, p.version, escape(p.description))
        except ValueError as err:
            table.add_row(name, "-", f"[red]{escape(str(err))}[/]")
    console.print(table)


def policy(name: Annotated[str, typer.Argument(help="policy name, e.g. standard")],
           as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML")]
           = False, policy_dir: PolicyDir = None) -> None:
    """Print a policy as the workflow receives it (all defaults resolved)."""

    with user_errors():
        data = load_policy(name, policy_dir or settings().policy_dir).model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())
