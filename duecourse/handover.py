"""Start collection for every loan in a hand-over file (`python starter.py loans.csv`,
`duecourse start`).

Starts run concurrently (bounded) and idempotently: a loan already in collection is
reported as such, a loan whose case the ledger records as closed for this due date is
rejected (a paid borrower is never contacted again), and one bad row or failed RPC is
reported with its reason without stopping the rest. Exit code 0 when nothing was
rejected, 1 otherwise.

A long hand-over is never silent: on a terminal a progress bar shows it; when the output
is a log or CI (not a terminal, where a bar cannot redraw) a plain line every few seconds
gives the counts and the rate, while the file is read and while its loans are started.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.service import RPCError

from duecourse import intake
from duecourse.domain.case.reopening import reopen_problem
from duecourse.lab.assignments import start_choice
from duecourse.lab.experiments import Experiment, ExperimentError, load_experiment
from duecourse.plain_words import plain_reason
from duecourse.security.payload_keys import PayloadKeyError, ring_from_settings
from duecourse.settings import Settings, get_settings
from duecourse.store import connect
from duecourse.store.cases import last_closed_cases
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.connection import connect as connect_temporal

DEFAULT_CONCURRENCY = 32
"""Starts in flight at once. benchmarks/start_rate.py measures the hand-over beside raw
`start_workflow` at the same concurrency: on the dev server (one store, one write at a time)
raw starts run at the same rate from 1 in flight, and the hand-over's own work per row
(validation, encoding) hides behind the round trips from about 16, where it matches the raw
rate; a cluster, whose starts are latency-bound, keeps gaining up to a few dozen."""
PROGRESS_EVERY = 5.0
"""Seconds between progress lines when the output is not a terminal."""
SHOWN_LOANS = 1000
"""At most this many loans are listed one by one after a hand-over: a 50,000-row table
takes longer to print than to read, and `duecourse loans` lists them all. Every rejected row
is always listed, since each needs someone to act on it."""

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


class _AlreadyClosed(intake.RowRejected):
    """The row's loan was collected already (`duecourse.domain.case.reopening`)."""


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


async def start_loans(client: CollectionClient, rows: Sequence[intake.IntakeRow], *,
                      now: datetime, policy_dir: str | Path | None = None,
                      concurrency: int = DEFAULT_CONCURRENCY,
                      on_progress: ProgressCallback | None = None,
                      platform: str | None = None,
                      ledger: AsyncEngine | None = None,
                      summary: StartSummary | None = None,
                      allow_demo: bool = False,
                      experiment: Experiment | None = None) -> StartSummary:
    """Start every valid row; each row ends up started, already running or rejected.

    A loan id repeated in the file is rejected as a duplicate (its first row is started):
    which copy "wins" must not depend on RPC timing. With the `ledger`, a loan whose
    closed case covers its due date is rejected (`already closed: PAID on ...`) before
    any start; without it, only the workflow's own check (its first activity) refuses.

    `concurrency` workers take the rows in file order, so memory stays flat for any file
    size (one task per row would hold 50,000 of them). Results go into `summary` (a new
    one by default) as they come, so a progress reporter can read the counts meanwhile.
    Under an `experiment`, a loan whose row names no policy starts on its arm's
    (`duecourse.lab.assignments`).
    """
    summary = summary if summary is not None else StartSummary()
    done = 0
    first_row: dict[str, int] = {}
    for r in rows:
        if r.loan is not None:
            first_row.setdefault(r.loan.loan_id, r.row)
    closed = await last_closed_cases(ledger, list(first_row)) if ledger is not None else {}

    async def start_one(r: intake.IntakeRow) -> None:
        nonlocal done
        try:
            if r.loan is not None and first_row[r.loan.loan_id] != r.row:
                raise intake.RowRejected(f"duplicate: loan {r.loan.loan_id} is already on row "
                                  f"{first_row[r.loan.loan_id]} of this file")
            loan, policy = intake.validate_for_start(r, now, policy_dir, allow_demo)
            problem = reopen_problem(closed.get(loan.loan_id), loan)
            if problem is not None:
                raise _AlreadyClosed(problem)
            loan, policy, strategy = await start_choice(
                ledger, experiment, r, loan, policy, now=now, policy_dir=policy_dir,
                allow_demo=allow_demo)
            outcome = await client.start(loan, policy, platform=platform, strategy=strategy)
            entry = StartedLoan(row=r.row, loan_id=loan.loan_id,
                                workflow_id=outcome.workflow_id, policy=policy.label)
            (summary.started if outcome.started else summary.already_running).append(entry)
        except intake.RowRejected as err:
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

    pending: Iterator[intake.IntakeRow] = iter(rows)  # shared: each worker takes the next row

    async def worker() -> None:
        for r in pending:
            await start_one(r)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(rows))))))
    for items in (summary.started, summary.already_running, summary.rejected):
        items.sort(key=lambda item: item.row)
    return summary


def render_summary(summary: StartSummary, console: Console) -> None:
    """Counts, then the loans started (the first `SHOWN_LOANS`) and a row-numbered table
    of every rejection."""
    console.print(
        f"[bold]{summary.total}[/] rows: [green]{len(summary.started)} started[/], "
        f"[cyan]{len(summary.already_running)} already running[/], "
        f"[{'red' if summary.rejected else 'green'}]{len(summary.rejected)} rejected[/]")
    loans = sorted([("started", s) for s in summary.started] + [
        ("already running", s) for s in summary.already_running], key=lambda item: item[1].row)
    if loans:
        table = Table(title="Loans in collection", title_justify="left")
        for column in ("row", "loan id", "status", "workflow id", "policy"):
            table.add_column(column, justify="right" if column == "row" else "left")
        for status, s in loans[:SHOWN_LOANS]:
            style = "green" if status == "started" else "cyan"
            table.add_row(str(s.row), s.loan_id, f"[{style}]{status}[/]", s.workflow_id,
                          s.policy)
        console.print(table)
        if len(loans) > SHOWN_LOANS:
            console.print(f"(the first {SHOWN_LOANS} of {len(loans)} loans in collection; "
                          "`duecourse loans` lists them all)", markup=False, highlight=False,
                          soft_wrap=True)
    if summary.rejected:
        table = Table(title="Rejected rows", title_justify="left", title_style="bold red")
        table.add_column("row", justify="right")
        table.add_column("loan id")
        table.add_column("reason", style="red", overflow="fold")
        for r in summary.rejected:
            table.add_row(str(r.row), escape(r.loan_id or "-"), escape(plain_reason(r.reason)))
        console.print(table)


class Heartbeat:
    """`with Heartbeat(console, every, line):` prints `line(seconds so far)` every `every`
    seconds until the block ends.

    For output that is not a terminal (a log, CI), where a progress bar cannot redraw and
    rich prints nothing of a transient one. It runs on a daemon thread so that a step which
    holds the event loop or the main thread (parsing a large file) still shows it is alive.
    `printed` says whether any line went out: a step shorter than `every` adds no lines.
    """

    def __init__(self, console: Console, every: float, line: Callable[[float], str]) -> None:
        self.console, self.every, self.line = console, every, line
        self.printed = 0
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        self.console.file.flush()  # a pipe is block-buffered: the line must show now

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self.say(self.line(self.elapsed))
            self.printed += 1

    def __enter__(self) -> Heartbeat:
        self.started = time.monotonic()
        if self.every > 0:
            self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def progress_line(summary: StartSummary, total: int, elapsed: float) -> str:
    """`handed over 1200/50000 rows (24.0/s, about 34 min left): 1195 started, ...`."""
    done = summary.total
    rate = done / elapsed if elapsed > 0 else 0.0
    left = f", about {_duration((total - done) / rate)} left" if rate and done < total else ""
    return (f"handed over {done}/{total} rows ({rate:.1f}/s{left}): "
            f"{len(summary.started)} started, {len(summary.already_running)} already "
            f"running, {len(summary.rejected)} rejected")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if minutes < 10 and seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


async def start_with_progress(client: CollectionClient, rows: Sequence[intake.IntakeRow],
                              console: Console, *, now: datetime,
                              policy_dir: str | Path | None = None,
                              ledger: AsyncEngine | None = None,
                              concurrency: int = DEFAULT_CONCURRENCY,
                              every: float = PROGRESS_EVERY,
                              allow_demo: bool = False,
                              experiment: Experiment | None = None) -> StartSummary:
    """Start `rows` behind a progress bar (a terminal) or a progress line every `every`
    seconds (anything else), then print the summary."""
    summary = StartSummary()

    async def start(on_progress: ProgressCallback | None = None) -> None:
        await start_loans(client, rows, now=now, policy_dir=policy_dir, ledger=ledger,
                          concurrency=concurrency, on_progress=on_progress, summary=summary,
                          allow_demo=allow_demo, experiment=experiment)

    if console.is_terminal:
        with Progress(TextColumn("[bold]Starting loans"), BarColumn(), MofNCompleteColumn(),
                      TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                      TextColumn("{task.fields[counts]}"), console=console,
                      transient=True) as progress:
            task = progress.add_task("start", total=len(rows), counts="")

            def update(done: int, _total: int) -> None:
                progress.update(task, completed=done, counts=(
                    f"{len(summary.already_running)} already running, "
                    f"{len(summary.rejected)} rejected"))

            await start(update)
    else:
        total = len(rows)
        with Heartbeat(console, every,
                       lambda elapsed: progress_line(summary, total, elapsed)) as beat:
            await start()
        if beat.printed:
            beat.say(f"{progress_line(summary, total, beat.elapsed)}; took "
                     f"{_duration(beat.elapsed)}")
    render_summary(summary, console)
    return summary


def read_with_progress(path: str | Path, now: datetime, console: Console,
                       every: float = PROGRESS_EVERY) -> list[intake.IntakeRow]:
    """`read_intake_file`, with a spinner on a terminal or a line every `every` seconds
    elsewhere: validating a 50,000-row file takes several seconds (about 0.2 ms a row)."""
    if console.is_terminal:
        with console.status(f"Reading {escape(str(path))}"):
            return intake.read_intake_file(path, now)
    with Heartbeat(console, every, lambda elapsed: f"reading {path}: {elapsed:.0f} s so "
                   "far") as beat:
        rows = intake.read_intake_file(path, now)
    if beat.printed:
        valid = sum(1 for r in rows if r.ok)
        beat.say(f"read {len(rows)} rows from {path} in {_duration(beat.elapsed)}: {valid} "
                 f"valid, {len(rows) - valid} invalid")
    return rows


async def run(settings: Settings, path: str | Path, console: Console, *,
              policy_dir: str | Path | None = None, force_policy: str | None = None,
              concurrency: int = DEFAULT_CONCURRENCY,
              progress_every: float = PROGRESS_EVERY) -> int:
    """Read `path`, connect with `settings` and start it; returns the process exit code."""
    now = datetime.now(UTC)
    errors = Console(stderr=True)
    try:  # whole-file problems surface before connecting
        rows = read_with_progress(path, now, console, progress_every)
    except intake.IntakeFileError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False,
                     soft_wrap=True)
        return 1
    if force_policy:
        rows = intake.with_policy(rows, force_policy)
    try:
        experiment = settings_experiment(settings, policy_dir)
    except ExperimentError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False,
                     soft_wrap=True)
        return 1
    try:  # keys first: a missing key is a setting to fix, not an unreachable server
        ring = ring_from_settings(settings)
    except PayloadKeyError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False,
                     soft_wrap=True)
        return 1
    try:
        client = await connect_temporal(settings, ring=ring)
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
                                            ledger=ledger, concurrency=concurrency,
                                            every=progress_every,
                                            allow_demo=settings.allow_demo_policies,
                                            experiment=experiment)
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


def settings_experiment(settings: Settings,
                        policy_dir: str | Path | None = None) -> Experiment | None:
    """The experiment new hand-overs are assigned under (DUECOURSE_EXPERIMENT), read
    afresh so an edited file (re-weighted, stopped) applies from the next hand-over."""
    if not settings.experiment:
        return None
    directory = policy_dir or settings.policy_dir
    return load_experiment(settings.experiment, settings.experiment_dir,
                           policy_dir=str(directory) if directory else None)


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
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"starts in flight at once (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--progress-every", type=float, default=PROGRESS_EVERY,
                        help="seconds between progress lines when the output is not a "
                             f"terminal (default {PROGRESS_EVERY:g})")
    args = parser.parse_args(argv)
    return asyncio.run(run(get_settings(), args.file, Console(), policy_dir=args.policy_dir,
                           concurrency=max(1, args.concurrency),
                           progress_every=args.progress_every))

