"""The demo's running commentary: which loans wait for what and until when, each step
the scripted people take, and each loan's ending - so a newcomer watching `duecourse dev
--demo` knows what is happening without opening anything else."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from duecourse.demo.script import SCENARIOS, Driver, Sleep, play, wall_clock
from duecourse.domain.case.status import CollectionStatus
from duecourse.domain.loan import LoanIntake
from duecourse.temporal.client import CollectionClient

WAITS_EVERY = 120.0
"""Seconds between reprints of the table of waiting loans."""


def _in(delta_s: float) -> str:
    s = max(0, int(delta_s))
    return f"in {s // 60}m{s % 60:02d}s" if s >= 60 else f"in {s}s"


def _elapsed(since: datetime, now: datetime) -> str:
    s = int((now - since).total_seconds())
    return f"+{s // 60:02d}:{s % 60:02d}"


def _state(s: CollectionStatus) -> str:
    if s.outcome is not None:
        return f"closed {s.outcome}"
    parts = [s.stage]
    if s.legal_phase:
        parts.append(s.legal_phase)
    if s.frozen:
        parts.append("frozen")
    return " / ".join(parts)


def waits_table(statuses: Sequence[CollectionStatus], now: datetime,
                title: str = "Demo loans") -> Table:
    """Each open loan: its story, where it is, what it waits for and until when."""
    table = Table(title=title, title_justify="left")
    for column in ("Loan", "Story", "Where", "Waiting for", "Until"):
        table.add_column(column)
    for s in statuses:
        story = SCENARIOS[s.loan_id].story if s.loan_id in SCENARIOS else ""
        if s.outcome is not None:
            table.add_row(s.loan_id, story, _state(s), "-", "ended")
            continue
        nxt = s.next_action
        waiting = nxt.description if nxt else "a person (see `duecourse tasks`)"
        if s.frozen:
            waiting = f"the freeze to end ({s.frozen})"
        until = (f"{nxt.due_at.astimezone().strftime('%H:%M:%S')} "
                 f"({_in((nxt.due_at - now).total_seconds())})") if nxt else "-"
        table.add_row(s.loan_id, story, _state(s), escape(waiting), until)
    return table


@dataclass
class DemoRun:
    """Plays the scripted stories of the demo loans and narrates what happens."""

    client: CollectionClient
    loans: Sequence[LoanIntake]
    console: Console
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], Awaitable[datetime]] = wall_clock
    poll: float = 5.0
    endings: dict[str, CollectionStatus] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tick = asyncio.Event()

    async def _story_sleep(self, seconds: float) -> None:
        """A story's pause, measured on the run's clock and woken by the watch's polls: one
        sleeper only, so a test's virtual clock advances once per poll for everyone."""
        until = await self.clock() + timedelta(seconds=seconds)
        while await self.clock() < until:
            await self._tick.wait()

    def say(self, loan_id: str, what: str) -> None:
        self.console.print(f"[dim]{self._stamp}[/] [bold]{loan_id}[/]  {escape(what)}",
                           highlight=False)

    async def run(self) -> dict[str, CollectionStatus]:
        """Until every demo loan has closed; returns their final statuses."""
        self._began = await self.clock()
        self._stamp = _elapsed(self._began, self._began)
        drivers = [play(Driver(self.client, loan.loan_id, loan.borrower.timezone,
                               sleep=self._story_sleep, say=self.say, poll=self.poll,
                               clock=self.clock), SCENARIOS[loan.loan_id])
                   for loan in self.loans if loan.loan_id in SCENARIOS]
        stories = [asyncio.ensure_future(d) for d in drivers]
        try:
            await self._watch()
        finally:
            for task in stories:
                task.cancel()
            await asyncio.gather(*stories, return_exceptions=True)
        return self.endings

    async def _statuses(self, ids: Sequence[str]) -> list[CollectionStatus]:
        now = await self.clock()
        found: list[CollectionStatus] = []
        for loan_id in ids:
            try:
                found.append(await self.client.status(loan_id, as_of=now))
            except Exception:  # narration never stops the demo: a loan it cannot ask
                continue       # now is asked again at the next poll
        return found

    async def _watch(self) -> None:
        ids = [loan.loan_id for loan in self.loans]
        last: dict[str, str] = {}
        shown_waits = await self.clock()
        first = True
        while True:
            now = await self.clock()
            self._stamp = _elapsed(self._began, now)
            open_ids = [i for i in ids if i not in self.endings]
            statuses = await self._statuses(open_ids)
            settled = all(s.next_action is None or s.next_action.kind != "score"
                          for s in statuses)
            if first and (settled or now - self._began >= timedelta(seconds=10)):
                self.console.print(waits_table(statuses, now))
                first = False
            for s in statuses:
                state = _state(s)
                if last.get(s.loan_id) not in (None, state):
                    self.say(s.loan_id, f"{last[s.loan_id]} -> {state}"
                             + (f" ({s.close_reason})" if s.outcome else ""))
                last[s.loan_id] = state
                if s.outcome is not None:
                    self.endings[s.loan_id] = s
            if len(self.endings) == len(ids):
                self.console.print(
                    f"[bold green]All {len(ids)} demo loans reached their endings in "
                    f"{_elapsed(self._began, now)[1:]}[/] ("
                    + ", ".join(sorted({s.outcome or '' for s in self.endings.values()}))
                    + "). Explore them in the Temporal UI, or with `duecourse loans`, "
                    "`duecourse messages --loan ID` and `duecourse timeline ID`.",
                    highlight=False)
                return
            if (now - shown_waits).total_seconds() >= WAITS_EVERY:
                self.console.print(waits_table(
                    [s for s in statuses if s.outcome is None], now,
                    title=f"Still waiting ({_elapsed(self._began, now)})"))
                shown_waits = now
            await self.sleep(self.poll)
            self._tick.set()
            self._tick = asyncio.Event()
