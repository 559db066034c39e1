"""Start-rate benchmark: the hand-over path against the engine's own start rate.

A hand-over is only as fast as Temporal accepts starts, so the yardstick is the raw
`client.start_workflow` rate of a trivial workflow at the same concurrency on the same
server. This starts N trivial workflows that way, then hands N loans over through the real
path (a CSV file read and validated, the ledger checked for closed cases, `start_loans`),
and prints starts/s for both side by side with their ratio - for each concurrency asked.
No worker runs: a start is accepted once its first task is queued, which is what the
starter waits for. It asserts nothing, because shared machines are noisy.

    python benchmarks/start_rate.py --loans 2000 --concurrency 8,32,64
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from duecourse.handover import DEFAULT_CONCURRENCY, start_loans
from duecourse.intake import read_intake_file
from duecourse.logs import configure_logging
from duecourse.settings import Settings
from duecourse.store import connect, migrate
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.devserver import DevServer
from tests.support.sealing import give_session_keys

HEADER = ("loan_id,borrower_id,borrower_name,phones,email,timezone,language,jurisdiction,"
          "currency,principal,outstanding,days_past_due,policy")


def write_handover(path: Path, loans: int, tag: str) -> None:
    """A hand-over file of `loans` valid rows, as a platform would send it."""
    lines = [HEADER]
    lines += [f"SR-{tag}-{n},B-{tag}-{n},Test Borrower,+8613800138000,b{n}@example.com,"
              f"Asia/Shanghai,zh-CN,CN,CNY,1000.00,1000.00,3,demo" for n in range(loans)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def bounded(count: int, concurrency: int,
                  one: Callable[[int], Awaitable[object]]) -> float:
    """Seconds to run `one(0..count-1)` with at most `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def run(n: int) -> None:
        async with gate:
            await one(n)

    started = time.perf_counter()
    await asyncio.gather(*(run(n) for n in range(count)))
    return time.perf_counter() - started


async def handover(client: CollectionClient, engine: AsyncEngine, tmp: Path, loans: int,
                   tag: str, concurrency: int) -> tuple[float, float]:
    """Seconds to read and validate a file of `loans` rows, and to start them."""
    path = tmp / f"handover-{tag}.csv"
    write_handover(path, loans, tag)
    now = datetime.now(UTC)
    read_started = time.perf_counter()
    rows = read_intake_file(path, now)
    read_seconds = time.perf_counter() - read_started
    started = time.perf_counter()
    summary = await start_loans(client, rows, now=now, ledger=engine, concurrency=concurrency,
                                allow_demo=True)
    seconds = time.perf_counter() - started
    if len(summary.started) != loans:
        reasons = sorted({r.reason for r in summary.rejected})
        raise SystemExit(f"only {len(summary.started)} of {loans} loans started: "
                         f"{reasons[:3]}")
    return read_seconds, seconds


async def main(loans: int, concurrencies: Sequence[int]) -> None:
    configure_logging("console", "WARNING")
    give_session_keys()  # payloads sealed as in production, with a throwaway key
    binary = Path(sys.executable).parent / "temporal"
    with tempfile.TemporaryDirectory() as tmp:
        async with DevServer(binary=binary, headless=True,
                             log_file=Path(tmp) / "temporal.log") as server:
            client = await connect_temporal(Settings(), address=server.address)
            engine = connect(f"sqlite+aiosqlite:///{tmp}/ledger.db")
            await migrate(engine)
            queue = f"bench-{uuid4().hex[:8]}"
            collection = CollectionClient(client, queue)
            print(f"{'concurrency':>11}  {'raw starts/s':>12}  {'hand-over/s':>11}  "
                  f"{'ratio':>5}  {'read+validate/s':>15}")
            for concurrency in concurrencies:
                # A-B-B-A halves: the server slows as its history store grows, and neither
                # side may gain from going first.
                raw_seconds = handover_seconds = read_seconds = 0.0
                for half, raw_first in ((loans // 2, True), (loans - loans // 2, False)):
                    tag = uuid4().hex[:8]

                    async def raw(n: int, tag: str = tag) -> object:
                        return await client.start_workflow(
                            "StartRateProbe", id=f"probe-{tag}-{n}", task_queue=queue)

                    if raw_first:
                        raw_seconds += await bounded(half, concurrency, raw)
                    seconds = await handover(collection, engine, Path(tmp), half, tag,
                                             concurrency)
                    read_seconds += seconds[0]
                    handover_seconds += seconds[1]
                    if not raw_first:
                        raw_seconds += await bounded(half, concurrency, raw)
                raw_rate, handover_rate = loans / raw_seconds, loans / handover_seconds
                print(f"{concurrency:>11}  {raw_rate:>12.1f}  {handover_rate:>11.1f}  "
                      f"{handover_rate / raw_rate:>5.2f}  {loans / read_seconds:>15.0f}",
                      flush=True)
            await engine.dispose()
    print(f"({loans} starts each; the starter's default concurrency is {DEFAULT_CONCURRENCY})")


def concurrency_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give positive whole numbers, e.g. 8,32,64")
    return values


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=1000,
                        help="starts per measurement (default 1000)")
    parser.add_argument("--concurrency", type=concurrency_list,
                        default=[8, DEFAULT_CONCURRENCY, 128],
                        help="comma-separated concurrencies to compare (default: 8, the "
                             "starter's, 128)")
    args = parser.parse_args()
    asyncio.run(main(args.loans, args.concurrency))
