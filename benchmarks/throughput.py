"""Throughput benchmark: N loans through hand-over, first contact and payment.

Runs the real stack in one process - the `temporal` dev server (in memory), a worker, a
SQLite ledger - and prints figures; it asserts nothing, because shared machines are noisy.
Borrowers live where it is late morning now, so it never waits for lawful hours. For the
engine against its floor (actions, CPU, memory per loan), see benchmarks/cost.py.

    python benchmarks/throughput.py --loans 300
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from duecourse import search_attributes as sa
from duecourse.logs import configure_logging
from duecourse.policies import load_policy
from duecourse.runtime import build_worker
from duecourse.settings import Settings
from duecourse.store import Ledger, connect, migrate
from duecourse.store import tables as t
from duecourse.temporal.client import CollectionClient
from tests.factories import daytime_zone, make_loan, payment
from tests.support.sealing import give_session_keys, sealed


async def count(ledger: Ledger, table: object) -> int:
    async with ledger.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def wait_for(predicate: object, limit: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if await predicate():  # type: ignore[operator]
            return time.perf_counter() - started
        await asyncio.sleep(0.2)
    raise TimeoutError("benchmark condition not reached")


async def main(loans: int, concurrency: int) -> None:
    configure_logging("console", "WARNING")  # measure the engine, not the terminal
    give_session_keys()  # payloads sealed as in production, with a throwaway key
    binary = Path(sys.executable).parent / "temporal"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary), search_attributes=sa.ALL,
        data_converter=sealed())
    with tempfile.TemporaryDirectory() as tmp:
        engine = connect(f"sqlite+aiosqlite:///{tmp}/ledger.db")
        await migrate(engine)
        ledger = Ledger(engine)
        client = CollectionClient(env.client, "bench")
        policy = load_policy("demo")
        now = datetime.now(UTC)
        # borrowers in office hours: lawful contact hours never hold the first contact
        # back, whenever the benchmark runs (Asia/Shanghai at night used to)
        zone = daytime_zone(now)
        batch = [make_loan(now, dpd=3, tz=zone, policy="demo") for _ in range(loans)]
        gate = asyncio.Semaphore(concurrency)

        async def start(loan: object) -> None:
            async with gate:
                await client.start(loan, policy)  # type: ignore[arg-type]

        async with build_worker(env.client, ledger, Settings(), "bench"):
            t0 = time.perf_counter()
            await asyncio.gather(*(start(loan) for loan in batch))
            started = time.perf_counter() - t0

            async def all_contacted() -> bool:
                return await count(ledger, t.contact_attempts) >= loans

            first_contact = await wait_for(all_contacted, 300)

            t1 = time.perf_counter()

            async def pay(loan: object) -> None:
                async with gate:
                    await client.report_payment(loan.loan_id,  # type: ignore[attr-defined]
                                                payment("1000.00"))

            await asyncio.gather(*(pay(loan) for loan in batch))

            async def all_paid() -> bool:
                async with ledger.engine.connect() as conn:
                    query = select(func.count()).select_from(t.collection_cases).where(
                        t.collection_cases.c.outcome == "PAID")
                    return (await conn.execute(query)).scalar_one() >= loans

            paid = await wait_for(all_paid, 300) + (time.perf_counter() - t1)
        await engine.dispose()
    await env.shutdown()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"loans                      {loans}")
    print(f"start (USE_EXISTING)       {started:7.2f} s   {loans / started:8.1f} loans/s")
    print(f"all first contacts sent    {first_contact:7.2f} s after the last start")
    print(f"all paid and closed        {paid:7.2f} s   {loans / paid:8.1f} loans/s")
    print(f"peak RSS (client+worker)   {rss:7.1f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loans", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.loans, args.concurrency))
