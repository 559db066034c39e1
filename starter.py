"""Start collection for every loan in a hand-over file: `python starter.py loans.csv`.

Starts run concurrently (bounded) and idempotently: a loan already in collection is
reported as such, a loan whose case the ledger records as closed for this due date is
rejected (a paid borrower is never contacted again), and one bad row or failed RPC is
reported with its reason without stopping the rest. Exit code 0 when nothing was
rejected, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.service import RPCError

from duecourse.domain.handover import reopen_problem
from duecourse.intake import (
    IntakeFileError,
    IntakeRow,
    RowRejected,
    read_intake_file,
    validate_for_start,
    with_policy,
)
from duecourse.process import run_and_exit
from duecourse.settings import Settings, get_settings
from duecourse.store import connect
from duecourse.store.cases import last_closed_cases
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.client import connect as connect_temporal

ProgressCallback = Callable[[int, int], None]
"""Called with (rows done, rows total) after each row."""


@dataclass(frozen=True)
class StartedLoan:
    row: int
    loan_id: str
    workflow_id: str
    policy: str


@dataclass(frozen=True)
class RejectedRow:
    row: int
    loan_id: str | None
    reason: str
    already_closed: bool = False  # the ledger holds a closed case for this due date


class _AlreadyClosed(RowRejected):
    """The row's loan was collected already (`duecourse.domain.handover`)."""


@dataclass
class StartSummary:
    started: list[StartedLoan] = field(default_factory=list)
    already_running: list[StartedLoan] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.started) + len(self.already_running) + len(self.rejected)

    @property
    def ok(self) -> bool:
        return not self.rejected


async def start_loans(client: CollectionClient, rows: Sequence[IntakeRow], *, now: datetime,
                      policy_dir: str | Path | None = None, concurrency: int = 32,
                      on_progress: ProgressCallback | None = None,
                      platform: str | None = None,
                      ledger: AsyncEngine | None = None) -> StartSummary:
    """Start every valid row; each row ends up started, already running or rejected.

    A loan id repeated in the file is rejected as a duplicate (its first row is started):
    which copy "wins" must not depend on RPC timing. With the `ledger`, a loan whose
    closed case covers its due date is rejected (`already closed: PAID on ...`) before
    any start; without it, only the workflow's own check (its first activity) refuses.
    """
    summary = StartSummary()
    semaphore = asyncio.Semaphore(max(1, concurrency))
    done = 0
    first_row: dict[str, int] = {}
    for r in rows:
        if r.loan is not None:
            first_row.setdefault(r.loan.loan_id, r.row)
    closed = await last_closed_cases(ledger, list(first_row)) if ledger is not None else {}

    async def start_one(r: IntakeRow) -> None:
        nonlocal done
        try:
            if r.loan is not None and first_row[r.loan.loan_id] != r.row:
                raise RowRejected(f"duplicate: loan {r.loan.loan_id} is already on row "
                                  f"{first_row[r.loan.loan_id]} of this file")
            loan, policy = validate_for_start(r, now, policy_dir)
            problem = reopen_problem(closed.get(loan.loan_id), loan)
            if problem is not None:
                raise _AlreadyClosed(problem)
            async with semaphore:
                outcome = await client.start(loan, policy, platform=platform)
            entry = StartedLoan(row=r.row, loan_id=loan.loan_id,
                                workflow_id=outcome.workflow_id, policy=policy.label)
            (summary.started if outcome.started else summary.already_running).append(entry)
        except RowRejected as err:
            summary.rejected.append(RejectedRow(row=r.row, loan_id=r.loan_id, reason=str(err),
                                                already_closed=isinstance(err, _AlreadyClosed)))
        except RPCError as err:
            summary.rejected.append(RejectedRow(
                row=r.row, loan_id=r.loan_id,
                reason=f"Temporal refused the start ({err.status.name}): {err.message}"))
        except Exception as err:  # one row's failure must never stop the others
            summary.rejected.append(RejectedRow(
                row=r.row, loan_id=r.loan_id, reason=f"{type(err).__name__}: {err}"))
        finally:
            done += 1
            if on_progress is not None:
                on_progress(done, len(rows))

    await asyncio.gather(*(start_one(r) for r in rows))
    for items in (summary.started, summary.already_running, summary.rejected):
        items.sort(key=lambda item: item.row)
    return summary


def render_summary(summary: StartSummary, console: Console) -> None:
    """Counts, then the loans started and a row-numbered table of every rejection."""
    console.print(
        f"[bold]{summary.total}[/] rows: [green]{len(summary.started)} started[/], "
        f"[cyan]{len(summary.already_running)} already running[/], "
        f"[{'red' if summary.rejected else 'green'}]{len(summary.rejected)} rejected[/]")
    loans = [("started", s) for s in summary.started] + [
        ("already running", s) for s in summary.already_running]
    if loans:
        table = Table(title="Loans in collection", title_justify="left")
        for column in ("row", "loan id", "status", "workflow id", "policy"):
            table.add_column(column, justify="right" if column == "row" else "left")
        for status, s in sorted(loans, key=lambda item: item[1].row):
            style = "green" if status == "started" else "cyan"
            table.add_row(str(s.row), s.loan_id, f"[{style}]{status}[/]", s.workflow_id,
                          s.policy)
        console.print(table)
    if summary.rejected:
        table = Table(title="Rejected rows", title_justify="left", title_style="bold red")
        table.add_column("row", justify="right")
        table.add_column("loan id")
        table.add_column("reason", style="red", overflow="fold")
        for r in summary.rejected:
            table.add_row(str(r.row), escape(r.loan_id or "-"), escape(r.reason))
        console.print(table)


async def start_with_progress(client: CollectionClient, rows: Sequence[IntakeRow],
                              console: Console, *, now: datetime,
                              policy_dir: str | Path | None = None,
                              ledger: AsyncEngine | None = None) -> StartSummary:
    """Start `rows` behind a progress bar, then print the summary."""
    with Progress(TextColumn("[bold]Starting loans"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("start", total=len(rows))
        summary = await start_loans(
            client, rows, now=now, policy_dir=policy_dir, ledger=ledger,
            on_progress=lambda done, _total: progress.update(task, completed=done))
    render_summary(summary, console)
    return summary


async def run(settings: Settings, path: str | Path, console: Console, *,
              policy_dir: str | Path | None = None, force_policy: str | None = None) -> int:
    """Read `path`, connect with `settings` and start it; returns the process exit code."""
    now = datetime.now(UTC)
    errors = Console(stderr=True)
    try:
        rows = read_intake_file(path, now)  # whole-file problems surface before connecting
    except IntakeFileError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False,
                     soft_wrap=True)
        return 1
    if force_policy:
        rows = with_policy(rows, force_policy)
    try:
        client = await connect_temporal(settings.temporal_address, settings.temporal_namespace)
    except Exception as err:
        errors.print(f"[bold red]error:[/] cannot connect to Temporal at "
                     f"{settings.temporal_address}: {escape(str(err))}", highlight=False,
                     soft_wrap=True)
        return 1
    ledger = existing_ledger(settings.ledger_url)
    try:
        summary = await start_with_progress(CollectionClient(client, settings.task_queue),
                                            rows, console, now=now,
                                            policy_dir=policy_dir or settings.policy_dir,
                                            ledger=ledger)
    except (SQLAlchemyError, OSError) as err:
        url = make_url(settings.ledger_url).render_as_string(hide_password=True)
        errors.print(f"[bold red]error:[/] cannot read the ledger at {escape(url)} to check "
                     f"for closed loans, so nothing was started: {escape(str(err))}",
                     highlight=False, soft_wrap=True)
        return 1
    finally:
        if ledger is not None:
            await ledger.dispose()
    return 0 if summary.ok else 1


def existing_ledger(url: str) -> AsyncEngine | None:
    """The ledger to check hand-overs against, or None when it is a SQLite file that does
    not exist yet: no case can have closed there, and a check must not create the file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or not Path(database).expanduser().exists():
            return None
    return connect(url)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="starter.py", description=__doc__.splitlines()[0])
    parser.add_argument("file", help="hand-over file (.csv or .json)")
    parser.add_argument("--policy-dir", help="directory with extra policy YAML files")
    args = parser.parse_args(argv)
    return asyncio.run(run(get_settings(), args.file, Console(), policy_dir=args.policy_dir))


if __name__ == "__main__":
    run_and_exit(main)
