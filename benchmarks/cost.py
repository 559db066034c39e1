"""Cost benchmark: the engine against its floor, on one dev server in one process.

Runs named loan paths on the demo policy through the public client (reminders then paid,
promise kept, a 6-instalment plan completed, a full life to write-off) and prints per loan
its history events and Temporal Cloud billable actions by kind, read from every history
of the loan (benchmarks/cost_history.py), beside the path's analytic minimum
(benchmarks/cost_shape.py) and the events of a trivial floor workflow of the same shape.
Then the same load on the engine and on the floor - loans handed over, contacted once and
paid; loans parked on a long timer - for throughput, worker CPU per loan, memory per
parked loan and payment-to-closed latency. Targets are printed, never asserted: shared
machines are noisy. Borrowers are in office hours, whenever it runs.

    python benchmarks/cost.py                       # everything (the write-off path
                                                    # takes the demo's 9 minutes)
    python benchmarks/cost.py --paths reminders-paid,promise-kept --loans 100
    python benchmarks/cost.py --json cost.json      # figures for docs/scaling.md:
    python benchmarks/cost_sizing.py cost.json      # its sizing tables, from them
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo: duecourse, tests

from benchmarks.cost_floor import FloorClient, FloorRows, floor_store, floor_worker
from benchmarks.cost_load import (
    PARK_SECONDS,
    EngineSubject,
    FloorSubject,
    measure_flow,
    measure_parked,
)
from benchmarks.cost_paths import PATHS
from benchmarks.cost_report import LoadReport, PathReport, print_load, print_paths
from benchmarks.cost_runs import PathRun, run_path, total_cost
from benchmarks.cost_shape import Shape
from duecourse.domain.policy import Policy
from duecourse.logs import configure_logging
from duecourse.policies import load_policy
from duecourse.process import exit_now
from duecourse.runtime import build_worker
from duecourse.settings import Settings
from duecourse.store import Ledger, connect, migrate
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.devserver import DevServer, find_temporal_cli
from tests.support.sealing import give_session_keys

SLOW_PATHS = ("written-off",)

LOAD_SHAPE = Shape(contacts=1, payments=1, upserts=1, park=PARK_SECONDS)
"""The floor of "handed over, contacted once, paid": open, one contact, a long timer held
for the next step, the payment's signal and write, the outcome's upsert."""


async def main(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("console", "ERROR")  # measure the engine, not the terminal
    give_session_keys()  # payloads sealed as in production, with a throwaway key
    run = uuid4().hex[:6]
    demo = load_policy("demo")
    with tempfile.TemporaryDirectory() as tmp:
        async with DevServer(binary=find_temporal_cli(), headless=True,
                             log_file=Path(tmp) / "temporal.log") as server:
            client = await connect_temporal(Settings(), address=server.address)
            engine = connect(f"sqlite+aiosqlite:///{tmp}/ledger.db")
            await migrate(engine)
            ledger = Ledger(engine)
            rows = FloorRows(await floor_store(Path(tmp) / "floor.db"))
            queue = f"cost-{run}"
            collection = CollectionClient(client, queue)
            floor = FloorClient(client, f"{queue}-floor")
            pid = server.process.pid if server.process else None
            async with build_worker(client, ledger, Settings(), queue), \
                    floor_worker(client, rows, floor.task_queue):
                paths = [PATHS[name] for name in args.paths]
                print(f"paths: {', '.join(p.name for p in paths) or 'none'} "
                      f"({args.path_loans} loan(s) each); load: {args.loans} loans",
                      flush=True)
                started = time.monotonic()

                def lives(slow: bool) -> asyncio.Future[list[PathRun | BaseException]]:
                    return asyncio.gather(*(
                        run_path(collection, ledger, floor, demo, path, f"{run}-{n}")
                        for path in paths if (path.name in SLOW_PATHS) == slow
                        for n in range(args.path_loans)), return_exceptions=True)

                slow = lives(True)  # under way meanwhile: it mostly waits on timers
                runs = await lives(False)  # the quick paths first, out of the load's way
                load = None
                if args.loans:
                    try:
                        load = await run_load(collection, floor, ledger, rows, demo, args,
                                              run, pid)
                        print_load(load)
                    except Exception as err:  # the paths' figures still come
                        print(f"load phase failed: {type(err).__name__}: {err}", flush=True)
                if any(p.name in SLOW_PATHS for p in paths):
                    print(f"waiting for {', '.join(SLOW_PATHS)} (the demo writes off nine "
                          "minutes after the hand-over) ...", flush=True)
                report = PathReport.of(completed(runs + await slow))
                print_paths(report)
                print(f"(paths done {time.monotonic() - started:.0f} s after they began)")
            await engine.dispose()
            await rows.engine.dispose()
    return {"run": run, "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "args": {k: str(v) for k, v in vars(args).items()},
            "paths": report.as_json(), "load": load.as_json() if load else None}


async def run_load(collection: CollectionClient, floor: FloorClient, ledger: Ledger,
                   rows: FloorRows, demo: Policy, args: argparse.Namespace, run: str,
                   pid: int | None) -> LoadReport:
    """The floor first, then the engine: the same flow, then the same parking."""
    n, c = args.loans, args.concurrency
    print("load: floor flow ...", flush=True)
    floor_flow = await measure_flow(FloorSubject(floor, rows, LOAD_SHAPE, f"flow-{run}"),
                                    n, c, pid)
    print("load: engine flow ...", flush=True)
    engine_subject = EngineSubject(collection, ledger, demo, "demo", f"FLOW-{run}")
    engine_flow = await measure_flow(engine_subject, n, c, pid)
    sample = [f"FLOW-{run}-{i}" for i in range(min(n, 20))]
    engine_cost = await total_cost(collection.client,
                                    [collection.handle(i).id for i in sample])
    floor_cost = await total_cost(floor.client,
                                  [f"flow-{run}-{i}" for i in range(len(sample))])
    parked = min(n, args.parked)
    print(f"load: {parked} parked loans each ...", flush=True)
    floor_parked = await measure_parked(
        FloorSubject(floor, rows, LOAD_SHAPE, f"park-{run}"), parked)
    standard = load_policy("standard")
    engine_parked = await measure_parked(
        EngineSubject(collection, ledger, standard, "standard", f"PARK-{run}"), parked)
    return LoadReport(engine_flow, floor_flow, engine_cost, floor_cost, engine_parked,
                      floor_parked, len(sample))


def completed(runs: list[PathRun | BaseException]) -> list[PathRun]:
    """The runs that finished; each that failed is said (the others still count)."""
    for run in runs:
        if isinstance(run, BaseException):
            print(f"a path failed: {type(run).__name__}: {run}", flush=True)
    return [run for run in runs if not isinstance(run, BaseException)]


def path_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown path(s) {', '.join(unknown)}; "
                                         f"known: {', '.join(PATHS)}")
    return names


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=path_list, default=list(PATHS),
                        help=f"comma-separated paths to run (default all: {','.join(PATHS)};"
                             " '' for none)")
    parser.add_argument("--path-loans", type=int, default=1,
                        help="loans per path (default 1; the paths are deterministic)")
    parser.add_argument("--loans", type=int, default=200,
                        help="loans under load, engine and floor each (default 200; 0: no "
                             "load)")
    parser.add_argument("--parked", type=int, default=200,
                        help="loans parked for the memory figure, at most --loans (default "
                             "200; below the worker's 1000 cached workflows)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    arguments = parser.parse_args()
    figures = asyncio.run(main(arguments))
    if arguments.json:
        arguments.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {arguments.json}")
    sys.stdout.flush()
    exit_now(0)  # past the SDK runtime's threads at interpreter exit (duecourse.process)
