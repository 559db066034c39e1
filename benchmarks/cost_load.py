"""The same load on the engine and on the floor: loans handed over, contacted once and
paid, then loans parked on a long timer - measured alike for both.

A `Subject` is what is under load (the engine through its CollectionClient, the floor
through FloorClient); every figure is taken the same way for both, in this process:
throughput from the first hand-over to the last close, process CPU time per loan (worker,
client and drivers together - the same client load for both), the dev server's CPU per
loan, payment-to-closed latency, and memory per parked loan (the workflow cache holds
every parked loan: keep the count below the worker's 1000 cached workflows).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import func, select

from benchmarks.cost_floor import FloorClient, FloorRows
from benchmarks.cost_paths import office_hours_loan
from benchmarks.cost_shape import Shape
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Policy
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.temporal.client import CollectionClient
from tests.factories import payment

PARK_SECONDS = 86_400.0


class Subject(Protocol):
    """Loans to hand over, see contacted, pay and see closed."""

    async def start(self, n: int) -> str: ...
    async def contacted(self) -> int: ...
    async def pay(self, loan: str) -> None: ...
    async def closed(self, loan: str) -> None: ...


@dataclass
class EngineSubject:
    client: CollectionClient
    ledger: Ledger
    policy: Policy
    policy_name: str
    tag: str

    def __post_init__(self) -> None:
        self._loans: dict[str, LoanIntake] = {}

    async def start(self, n: int) -> str:
        loan = office_hours_loan(f"{self.tag}-{n}", self.policy_name)
        self._loans[loan.loan_id] = loan
        await self.client.start(loan, self.policy)
        return loan.loan_id

    async def contacted(self) -> int:
        """Loans with a contact sent (one loan may have several: counted once)."""
        attempts = t.contact_attempts.c
        async with self.ledger.engine.connect() as conn:
            query = select(func.count(attempts.loan_id.distinct())).where(
                attempts.loan_id.like(f"{self.tag}-%"), attempts.status == "sent")
            return int((await conn.execute(query)).scalar_one())

    async def pay(self, loan: str) -> None:
        intake = self._loans[loan]
        await self.client.report_payment(loan, payment(
            str(intake.outstanding), currency=intake.currency, at=datetime.now(UTC)))

    async def closed(self, loan: str) -> None:
        await self.client.result(loan)


@dataclass
class FloorSubject:
    client: FloorClient
    rows: FloorRows
    shape: Shape
    tag: str

    async def start(self, n: int) -> str:
        workflow_id = f"{self.tag}-{n}"
        await self.client.start(workflow_id, self.shape)
        return workflow_id

    async def contacted(self) -> int:
        return await self.rows.count(f"{self.tag}-%:contact-0")

    async def pay(self, loan: str) -> None:
        await self.client.pay(loan)

    async def closed(self, loan: str) -> None:
        await self.client.result(loan)


@dataclass
class FlowFigures:
    loans: int
    unclosed: int  # still open when the benchmark stopped waiting: a finding in itself
    seconds: float
    loans_per_second: float
    cpu_ms_per_loan: float
    server_cpu_ms_per_loan: float
    pay_to_closed_p50: float
    pay_to_closed_p99: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def server_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of the dev server process (0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bounded(items: list[Any], concurrency: int,
                  one: Callable[[Any], Awaitable[Any]]) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def run(item: Any) -> Any:
        async with gate:
            return await one(item)

    return await asyncio.gather(*(run(item) for item in items))


async def wait_until(predicate: Callable[[], Awaitable[bool]], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0.2)


def percentile(values: list[float], p: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


async def measure_flow(subject: Subject, loans: int, concurrency: int,
                       server_pid: int | None, limit: float = 300) -> FlowFigures:
    """Hand `loans` over, pay each once all were contacted, wait for every close - each
    wait at most `limit` seconds: a loan that does not close by then is counted, not
    waited for (throughput and latency are of the loans that closed)."""
    cpu0, server0, t0 = time.process_time(), server_cpu_seconds(server_pid), time.monotonic()
    ids = await bounded(list(range(loans)), concurrency, subject.start)

    async def all_contacted() -> bool:
        return await subject.contacted() >= loans

    await wait_until(all_contacted, limit)
    latencies: list[float] = []
    deadline = time.monotonic() + limit

    async def pay_and_close(loan: str) -> None:
        paid = time.monotonic()
        await subject.pay(loan)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subject.closed(loan), max(1.0, deadline - paid))
            latencies.append(time.monotonic() - paid)

    await bounded(ids, concurrency * 4, pay_and_close)
    seconds = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    server = server_cpu_seconds(server_pid) - server0
    closed = len(latencies)
    return FlowFigures(loans, loans - closed, seconds, closed / seconds, 1000 * cpu / loans,
                       1000 * server / loans, percentile(latencies, 50),
                       percentile(latencies, 99))


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


async def quiet(seconds: float = 1.0, share: float = 0.05, limit: float = 60) -> None:
    """Until this process used under `share` of a core for `seconds`: all parked."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = time.process_time()
        await asyncio.sleep(seconds)
        if time.process_time() - before < share * seconds:
            return


@dataclass
class ParkedFigures:
    """Memory per parked loan: Python heap still held (tracemalloc, exact and quiet) and
    resident memory (RSS: also the SDK core's, but noisy - the allocator keeps and
    returns pages as it likes)."""

    loans: int
    heap_kib: float
    rss_kib: float


async def measure_parked(subject: Subject, loans: int, batch: int = 20,
                         limit: float = 600) -> ParkedFigures:
    """Memory per loan handed over, contacted and left parked in the workflow cache.
    Handed over `batch` at a time, each batch parked before the next: tracemalloc slows
    Python down, and a hundred first workflow tasks at once would time out (each retry
    leaving garbage that is no parked loan's)."""
    gc.collect()
    await quiet()
    tracemalloc.start()
    before = rss_bytes()
    try:
        for first in range(0, loans, batch):
            last = min(loans, first + batch)
            await asyncio.gather(*(subject.start(n) for n in range(first, last)))

            async def parked(last: int = last) -> bool:
                return await subject.contacted() >= last

            await wait_until(parked, limit)
        await quiet()
        gc.collect()
        heap = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return ParkedFigures(loans, heap / 1024 / loans, (rss_bytes() - before) / 1024 / loans)
