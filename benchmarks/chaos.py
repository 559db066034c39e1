"""Chaos proof: N loans on the demo policy through crashes and outages, then count what
must never happen to a borrower or a ledger.

    python benchmarks/chaos.py --loans 30 [--seed S] [--kills 5] [--outage-seconds 60]
                               [--duration 240] [--settle 120] [--postgres DSN] [--keep]

About 4.5 minutes for 30 loans on two cores (`.ci/run` runs it after the tests).

Why: the test suite proves each durability property alone, on a time-skipping server in
one process. Lenders run several worker processes against a real server and a real
database, and those fail together and at awkward moments. This script does that on
purpose and then checks the ledger, which is what an auditor or a borrower would see.

The rig (real parts only, nothing mocked):
- the `temporal` dev server from the venv on a fixed port and a SQLite file in a temp dir;
  "restarting" it is stopping it and starting it again on the same file and port (see
  RestartableDevServer in `chaos_rig.py` for why the restart skips DevServer's own port
  check);
- two `python worker.py` processes (a lender that has scaled out), configured by the
  environment, JSON logs in the temp dir; a small supervisor restarts a worker that exits
  (for instance one that cannot migrate its ledger at start during the outage);
- the ledger on PostgreSQL, a fresh database `duecourse_chaos_<random>` migrated with
  `duecourse.store.migrate` and dropped at the end (kept with --keep). The workers reach
  it through an asyncio TCP proxy of the rig: "the ledger is unreachable" means the
  proxy resets every proxied connection and stops listening, so new connections are
  refused, exactly like a database host that went away. The checks read PostgreSQL
  directly.

The scenario (one seed drives all of it; the seed is printed, `--seed` replays the plan,
though not the exact interleaving, which belongs to the machine):
- borrowers in CN, US and GB, each in a time zone that is in daytime now (the pack's
  lawful hours still apply; the demo policy itself has none), on the `demo` policy's
  stages but the law's own waiting periods: without its `demo:` clock and its demo-only
  pack overrides (`chaos_policy`), so faults, not compressed law, decide what happens;
- a behaviour per loan: pays in full; pays partially, then the rest; pays partially only;
  opens a dispute that is verified later (a stop fact); opts out of SMS; asks to cease
  communication; never pays (these reach the legal stage, except in GB, where the
  forbearance offer's 14-day response time keeps them in negotiation). Every payment is
  reported twice with the same reference, as a platform that retries does;
- faults at seeded moments in the chaos window: `--kills` SIGKILLs of a random live
  worker, each restarted 2-6 s later; one dev-server restart (down 3-8 s); one ledger
  outage of `--outage-seconds`. About 40 % of the borrowers' actions are placed inside a
  fault window (during the outage, while a worker is dead or the server is down); an
  action that cannot reach the server is retried every second, as a platform would.

Then everything is healed, the system settles (until no activity is retrying and none
has waited long, at most `--settle` seconds), every loan's `status` is queried, the
workers are stopped (so the ledger holds still) and the checks in `chaos_checks.py` run:
lost loans, lost payments, duplicate messages, duplicate payments, contacts after a full
payment or a stop fact, required or first contacts skipped, loans neither closed nor
with a next action, and the independent `duecourse audit`. Each count is printed, with a
diagnosis of the first offending loans, so a failure says what went wrong, not only that
something did. Borrower data is synthetic and never printed (loans appear by id only).

The parts, beside this file, one concern each: `chaos_rig.py` the moving parts (timeline,
database, ledger proxy, supervised workers, restartable dev server); `chaos_scenario.py`
the plan (loans, behaviours, faults, actions, all from the seed); `chaos_checks.py` the
checks and `chaos_diagnosis.py` the Temporal histories behind a failing one. This file
builds the rig, hands the loans over, runs the plan's faults and actions, heals, settles
and checks.

Exit status: 0 every check passed, 1 a check failed, 2 the rig could not run (for
example PostgreSQL is unreachable or a worker cannot start), 130 interrupted. Whatever
the ending, the workers, the server, the proxy, the database and the temp dir go with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo: duecourse, worker
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the chaos_* modules beside it

import chaos_checks as checks
from chaos_rig import (
    QUIET_RUNTIME,
    Database,
    LedgerProxy,
    RestartableDevServer,
    RigError,
    Timeline,
    WorkerSlot,
)
from chaos_scenario import Action, Fault, Scenario, make_scenario

from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Policy
from duecourse.policies import load_policy
from duecourse.process import exit_now
from duecourse.settings import Settings
from duecourse.store import connect, migrate
from duecourse.temporal.client import CollectionClient, LoanClosed, LoanNotFound
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.devserver import DevServerError, free_port, port_in_use
from tests.support.sealing import give_session_keys, session_key_env

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


class Rig:
    """Dev server, ledger database and proxy, workers: built up, faulted, torn down."""

    def __init__(self, args: argparse.Namespace, tmp: Path, run: str) -> None:
        self.args = args
        self.tmp = tmp
        self.run = run
        self.timeline = Timeline(tmp / "timeline.txt")
        self.db = Database(args.postgres, f"duecourse_chaos_{run}")
        self.db_created = False
        self.proxy = LedgerProxy(self.db.host, self.db.port)
        self.server = RestartableDevServer(port=free_port(), db_file=tmp / "temporal.db",
                                           log_file=tmp / "temporal.log", headless=True)
        self.task_queue = f"chaos-{run}"
        self.workers: list[WorkerSlot] = []
        self.client: Client | None = None
        self.faults: list[checks.FaultWindow] = []
        self.chaos_start = 0.0
        self.kills = 0

    def active_faults(self) -> list[checks.FaultWindow]:
        """Faults in effect now."""
        t = self.timeline.now()
        return [f for f in self.faults if f.start <= t and (f.end is None or t < f.end)]

    def _open(self, kind: str, label: str) -> checks.FaultWindow:
        window = checks.FaultWindow(kind=kind, label=label, start=self.timeline.now())
        self.faults.append(window)
        return window

    async def build(self) -> None:
        tl = self.timeline
        await self.db.create()
        self.db_created = True
        engine = connect(self.db.url())
        try:
            await migrate(engine)
        finally:
            await engine.dispose()
        await self.proxy.start()
        tl.note(f"ledger: PostgreSQL database {self.db.name} (migrated), workers reach it "
                f"through the proxy on port {self.proxy.port}")
        try:
            await self.server.start()
        except DevServerError as err:
            raise RigError(f"the Temporal dev server did not start: {err}") from err
        tl.note(f"Temporal dev server at {self.server.address} on {self.server.db_file}")
        self.client = await connect_temporal(Settings(), address=self.server.address,
                                             runtime=QUIET_RUNTIME)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DUECOURSE_", "TEMPORAL_"))}
        env.update(session_key_env())  # the workers seal with the rig's key
        env.update({"TEMPORAL_ADDRESS": self.server.address,
                    "DUECOURSE_DATABASE_URL": self.db.url(host="127.0.0.1",
                                                          port=self.proxy.port),
                    "DUECOURSE_TASK_QUEUE": self.task_queue,
                    "DUECOURSE_LOG_FORMAT": "json", "DUECOURSE_LOG_LEVEL": "INFO",
                    "PYTHONUNBUFFERED": "1"})
        self.workers = [WorkerSlot(f"worker-{i + 1}", env, self.tmp / f"worker-{i + 1}.log",
                                   tl) for i in range(2)]
        for slot in self.workers:
            await slot.spawn()
        for slot in self.workers:
            if not await slot.wait_ready(90):
                raise RigError(f"{slot.name} did not start (python worker.py; someone's "
                               f"edit in progress?). Its log ends with:\n{slot.log_tail()}")
        for slot in self.workers:
            slot.supervise()
        tl.note("2 worker processes up (pids "
                + ", ".join(str(s.process.pid) for s in self.workers if s.process) + ")")

    async def teardown(self) -> list[str]:
        """Stop everything this script started; returns problems met on the way."""
        problems: list[str] = []
        for slot in self.workers:
            try:
                await slot.stop(graceful=False)
            except Exception as err:  # keep tearing down the rest
                problems.append(f"{slot.name}: {err}")
        try:
            await self.server.stop()
        except Exception as err:
            problems.append(f"dev server: {err}")
        await self.proxy.close()
        if self.db_created and not self.args.keep:
            try:
                await self.db.drop()
            except Exception as err:
                problems.append(f"dropping {self.db.name}: {err}")
        self.timeline.close()
        return problems

    # ------------------------------------------------------------------- faults
    async def kill(self, fault: Fault) -> None:
        live = [i for i, s in enumerate(self.workers) if s.alive]
        if not live:
            self.timeline.note("kill skipped: no worker is alive right now")
            return
        index = fault.target if fault.target in live else live[0]
        slot = self.workers[index]
        slot.down_until = time.monotonic() + fault.length
        self.kills += 1
        window = self._open("kill", f"{slot.name} dead (kill #{self.kills})")
        pid = slot.kill()
        self.timeline.note(f"SIGKILL {slot.name} (pid {pid}); the supervisor restarts it in "
                           f"{fault.length:.1f} s")
        await asyncio.sleep(fault.length)
        if not await self._until_up(slot, 90):
            self.timeline.note(f"{slot.name} still not up 90 s after its restart")
        window.end = self.timeline.now()

    async def _until_up(self, slot: WorkerSlot, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if slot.alive and slot.logged_start():
                return True
            await asyncio.sleep(0.2)
        return False

    async def restart_server(self, fault: Fault) -> None:
        window = self._open("restart", "Temporal server down")
        self.timeline.note(f"Temporal dev server stopping (down {fault.length:.1f} s, then "
                           "started again on the same SQLite file and port)")
        await self.server.stop()
        assert self.server.port is not None
        refused = port_in_use(self.server.port)
        await asyncio.sleep(fault.length)
        started = time.monotonic()
        try:
            await self.server.start_again()
        except DevServerError as err:
            raise RigError(f"the dev server did not come back: {err}") from err
        window.end = self.timeline.now()
        self.timeline.note(
            f"Temporal dev server back (start took {time.monotonic() - started:.1f} s"
            + ("; DevServer.start() would have refused: its port check saw the old "
               "server's TIME_WAIT sockets" if refused else "") + ")")

    async def outage(self, fault: Fault) -> None:
        window = self._open("outage", "ledger unreachable")
        dropped = await self.proxy.cut()
        self.timeline.note(f"ledger outage begins: {dropped} connection(s) reset, new ones "
                           f"refused for {fault.length:.0f} s")
        try:
            await asyncio.sleep(fault.length)
        finally:
            await self.proxy.restore()
            window.end = self.timeline.now()
            self.timeline.note("ledger reachable again")

    async def heal(self) -> None:
        """Everything up again: proxy listening, both workers supervised and started."""
        await self.proxy.restore()
        for slot in self.workers:
            slot.down_until = 0.0
            slot.supervise()
        for slot in self.workers:
            if not await self._until_up(slot, 90):
                raise RigError(f"{slot.name} did not come back after healing:\n"
                               f"{slot.log_tail()}")


async def with_retries(call: Callable[[], Awaitable[None]], deadline: float) -> tuple[str, int]:
    """Call until the server accepts it (platforms retry), or give up at `deadline`."""
    tries = 0
    while True:
        tries += 1
        try:
            await asyncio.wait_for(call(), 10)
            return "accepted", tries
        except LoanClosed:
            return "refused: the loan is closed", tries
        except LoanNotFound:
            return "refused: no such loan", tries
        except (RPCError, OSError, TimeoutError, RuntimeError) as err:
            if time.monotonic() > deadline:
                return f"gave up: {err.__class__.__name__}: {str(err)[:80]}", tries
            await asyncio.sleep(1)


async def run_action(rig: Rig, cc: CollectionClient, action: Action) -> None:
    await asyncio.sleep(max(0.0, rig.chaos_start + action.at - rig.timeline.now()))
    calls: dict[str, Callable[[], Awaitable[None]]] = {
        "pay": lambda: cc.report_payment(action.loan_id, action.payload),
        "dispute_opened": lambda: cc.dispute(action.loan_id, action.payload),
        "dispute_verified": lambda: cc.dispute(action.loan_id, action.payload),
        "opt_out_sms": lambda: cc.update_contact_preferences(action.loan_id, action.payload),
        "cease": lambda: cc.update_contact_preferences(action.loan_id, action.payload),
    }
    action.result, action.tries = await with_retries(calls[action.kind],
                                                     time.monotonic() + 90)
    action.landed_at = rig.timeline.now()
    action.landed_wall = datetime.now(UTC)
    action.faults = rig.active_faults()
    if action.faults or action.tries > 1:
        extra = f" after {action.tries} tries" if action.tries > 1 else ""
        during = f" during: {', '.join(f.label for f in action.faults)}" \
            if action.faults else ""
        rig.timeline.note(f"{action.loan_id} {action.label}: {action.result}{extra}{during}")
    else:
        rig.timeline.note(f"{action.loan_id} {action.label}: {action.result}", console=False)


async def run_fault(rig: Rig, fault: Fault) -> None:
    await asyncio.sleep(max(0.0, rig.chaos_start + fault.at - rig.timeline.now()))
    if fault.kind == "kill":
        await rig.kill(fault)
    elif fault.kind == "restart":
        await rig.restart_server(fault)
    else:
        await rig.outage(fault)


async def hand_over(rig: Rig, cc: CollectionClient, scenario: Scenario,
                    policy: Policy) -> None:
    gate = asyncio.Semaphore(8)
    started = time.monotonic()

    async def one(loan: LoanIntake) -> None:
        async with gate:
            result, _ = await with_retries(lambda: _start(cc, loan, policy),
                                           time.monotonic() + 60)
            if result != "accepted":
                raise RigError(f"could not hand over {loan.loan_id}: {result}")

    await asyncio.gather(*(one(loan) for loan in scenario.loans))
    by_country = Counter(loan.jurisdiction for loan in scenario.loans)
    by_kind = Counter(scenario.behaviour.values())
    rig.timeline.note(f"{len(scenario.loans)} loans handed over in "
                      f"{time.monotonic() - started:.1f} s ("
                      + ", ".join(f"{k} {v}" for k, v in sorted(by_country.items())) + "); "
                      + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))


async def _start(cc: CollectionClient, loan: LoanIntake, policy: Policy) -> None:
    await cc.start(loan, policy)


async def settle(rig: Rig, cc: CollectionClient, loans: list[str],
                 limit: float) -> tuple[bool, list[str]]:
    """Wait until no activity is retrying or waiting long and no workflow task fails, on
    two polls in a row (at least 10 s after healing, at most `limit` seconds)."""
    started = time.monotonic()
    calm = 0
    busy: list[str] = []
    while True:
        busy = []
        for loan_id in loans:
            try:
                desc = await asyncio.wait_for(cc.handle(loan_id).describe(), 10)
            except (RPCError, TimeoutError) as err:
                busy.append(f"{loan_id}: describe failed ({err.__class__.__name__})")
                continue
            raw = desc.raw_description
            task = raw.pending_workflow_task
            if raw.HasField("pending_workflow_task") and task.attempt > 1:
                busy.append(f"{loan_id}: workflow task attempt {task.attempt}")
            for act in raw.pending_activities:
                waited = time.time() - act.scheduled_time.ToSeconds() \
                    if act.HasField("scheduled_time") else 0
                if act.attempt > 1 or waited > 20:
                    failure = act.last_failure.message[:100] if act.HasField("last_failure") \
                        else ""
                    busy.append(f"{loan_id}: {act.activity_type.name} attempt {act.attempt}"
                                + (f" ({failure})" if failure else ""))
        elapsed = time.monotonic() - started
        calm = calm + 1 if not busy else 0
        if calm >= 2 and elapsed >= 10:
            rig.timeline.note(f"settled {elapsed:.0f} s after healing: no activity retrying "
                              "or waiting")
            return True, []
        if elapsed > limit:
            rig.timeline.note(f"not settled after {limit:.0f} s: {len(busy)} busy")
            return False, busy
        await asyncio.sleep(3)


def summarize_actions(rig: Rig, actions: list[Action]) -> None:
    kinds = Counter(a.kind for a in actions)
    during = [a for a in actions if a.faults]
    names = {"kill": "a worker dead", "restart": "the server down",
             "outage": "the ledger unreachable"}
    by_fault = Counter(names[kind] for a in during for kind in {f.kind for f in a.faults})
    results = Counter(a.result.split(":")[0] for a in actions)
    rig.timeline.note(
        f"actions: {len(actions)} signals (" + ", ".join(f"{k} {v}" for k, v in
                                                         sorted(kinds.items()))
        + f"); {len(during)} landed during a fault ("
        + ", ".join(f"{k} {v}" for k, v in sorted(by_fault.items())) + "); results: "
        + ", ".join(f"{k} {v}" for k, v in sorted(results.items())))


def chaos_policy() -> Policy:
    """The demo policy's stages (seconds to minutes) with the standard policy's compliance
    choices and no demo clock: the packs' hours and waiting periods as the law has them."""
    return load_policy("demo").model_copy(update={
        "demo": None, "compliance": load_policy("standard").compliance})


async def chaos(args: argparse.Namespace, rig: Rig) -> int:
    tl = rig.timeline
    run_started = time.monotonic()
    scenario = make_scenario(args.loans, rig.run, args.seed, args.duration, args.kills,
                             args.outage_seconds)
    policy = chaos_policy()
    await rig.build()
    assert rig.client is not None
    cc = CollectionClient(rig.client, rig.task_queue)
    await hand_over(rig, cc, scenario, policy)
    rig.chaos_start = tl.now()
    tl.note(f"chaos window of {args.duration:.0f} s begins: " + "; ".join(
        f"{f.kind} at +{f.at:.0f}s" for f in scenario.faults))
    jobs = [asyncio.create_task(run_fault(rig, f)) for f in scenario.faults]
    jobs += [asyncio.create_task(run_action(rig, cc, a)) for a in scenario.actions]
    try:
        done, _ = await asyncio.wait(jobs, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
    for job in done:
        if (err := job.exception()) is not None:
            raise err if isinstance(err, RigError) else RigError(
                f"the chaos schedule broke: {err!r}") from err
    await asyncio.sleep(max(0.0, rig.chaos_start + args.duration - tl.now()))
    summarize_actions(rig, scenario.actions)
    tl.note("healing: ledger reachable, both workers up, server up; worker starts: "
            + ", ".join(f"{w.name} {w.starts} ({w.failed_starts} failed)"
                        for w in rig.workers))
    await rig.heal()
    settled, busy = await settle(rig, cc, [loan.loan_id for loan in scenario.loans],
                                 args.settle)
    statuses = await checks.query_statuses(cc, [loan.loan_id for loan in scenario.loans])
    descriptions = await checks.describe_all(cc, [loan.loan_id for loan in scenario.loans])
    for slot in rig.workers:  # a still ledger for the checks
        await slot.stop(graceful=True)
    tl.note("workers stopped (SIGTERM); checking the ledger directly on PostgreSQL")
    engine = connect(rig.db.url())
    try:
        report = await checks.run_checks(
            engine=engine, client=cc, policy=policy, loans=scenario.loans,
            behaviour=scenario.behaviour, reported=scenario.reported,
            actions=scenario.actions, descriptions=descriptions, statuses=statuses,
            faults=rig.faults, offset=tl.offset, settled=settled, busy=busy)
    finally:
        await engine.dispose()
    print(report.render(), flush=True)
    print(f"\nrun time {time.monotonic() - run_started:.0f} s (seed {args.seed}; "
          f"reproduce the plan with --seed {args.seed}); files in {rig.tmp}"
          + ("" if args.keep else " (removed; --keep keeps them and the database)"),
          flush=True)
    return 0 if report.ok else 1


async def main(args: argparse.Namespace) -> int:
    give_session_keys()  # payloads sealed as in production, with a throwaway key
    run = secrets.token_hex(4)
    tmp = Path(tempfile.mkdtemp(prefix=f"duecourse-chaos-{run}-"))
    print(f"duecourse chaos: {args.loans} loans on the demo policy, seed {args.seed}, "
          f"{args.kills} worker kills, 1 server restart, {args.outage_seconds:g} s ledger "
          f"outage in {args.duration:g} s; files in {tmp}", flush=True)
    rig = Rig(args, tmp, run)
    code = 2
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        code = await chaos(args, rig)
    except RigError as err:
        print(f"\nchaos: the rig could not run: {err}", file=sys.stderr, flush=True)
        code = 2
    except asyncio.CancelledError:
        print("\nchaos: interrupted; cleaning up", file=sys.stderr, flush=True)
        code = 130
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
        problems = await asyncio.shield(rig.teardown())
        for problem in problems:
            print(f"chaos: cleanup: {problem}", file=sys.stderr)
        if args.keep:
            print(f"kept: {tmp} and database {rig.db.name}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return code


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run loans through worker kills, a Temporal restart and a ledger "
                    "outage, then check the ledger (see the module docstring).")
    parser.add_argument("--loans", type=int, default=30, help="loans to hand over (30)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the plan (default: random, printed)")
    parser.add_argument("--kills", type=int, default=5, help="worker SIGKILLs (5)")
    parser.add_argument("--outage-seconds", type=float, default=60,
                        help="length of the ledger outage (60; 0 for none)")
    parser.add_argument("--duration", type=float, default=240,
                        help="seconds of chaos after the hand-over (240)")
    parser.add_argument("--settle", type=float, default=120,
                        help="at most this many seconds to settle after healing (120)")
    parser.add_argument("--postgres", default=os.environ.get("DUECOURSE_CHAOS_POSTGRES",
                                                             DEFAULT_POSTGRES),
                        help="admin DSN of the PostgreSQL server (a database is created "
                             f"and dropped there); default {DEFAULT_POSTGRES}")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (logs, timeline, Temporal DB) and database")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = secrets.randbelow(10**6)
    if args.loans < 1 or args.kills < 0 or args.duration < 60:
        parser.error("need --loans >= 1, --kills >= 0 and --duration >= 60")
    return args


if __name__ == "__main__":
    exit_now(asyncio.run(main(parse_args())))
