"""`duecourse dev`: everything on one laptop - Temporal dev server, ledger, worker, demo.

Ctrl-C or SIGTERM cancels the one task running it all, so the same unwinding path stops
the worker first and the dev server last, whatever phase we were in.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.markup import escape
from rich.panel import Panel
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.cli.common import console, err_console, run, safe_url, settings
from duecourse.cli.env_file import write_env
from duecourse.demo.script import SCENARIOS
from duecourse.demo.watch import DemoRun
from duecourse.handover import start_with_progress
from duecourse.intake import read_intake_file, with_policy
from duecourse.logs import configure_logging
from duecourse.runtime import build_worker
from duecourse.settings import Settings
from duecourse.store import Ledger, connect, migrate
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient, ensure_search_attributes
from duecourse.temporal.client import connect as connect_temporal
from duecourse.temporal.devserver import DevServer

DEMO_FILE = Path(__file__).resolve().parent.parent / "demo" / "loans.csv"
DEMO_POLICY = "demo"
DEFAULT_PORT = 7233


def dev(demo: Annotated[bool, typer.Option(
            help=f"also start the demo loans, on the '{DEMO_POLICY}' policy (minutes, not "
                 "weeks)")] = False,
        port: Annotated[int, typer.Option(help="Temporal frontend (gRPC) port")]
        = DEFAULT_PORT,
        ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = 8233,
        api_port: Annotated[int, typer.Option(help="REST API port (0: no API)")] = 8000,
        data_dir: Annotated[Path | None, typer.Option(
            help="Temporal and ledger SQLite files (default: DUECOURSE_DATA_DIR or "
                 ".duecourse)")] = None,
        demo_file: Annotated[Path, typer.Option(help="loans started by --demo")] = DEMO_FILE,
        temporal_bin: Annotated[str | None, typer.Option(
            envvar="DUECOURSE_TEMPORAL_BIN",
            help="the temporal CLI (default: temporal-bin's, then PATH)")] = None,
        ) -> None:
    """Run a local Temporal dev server, the ledger and a worker; Ctrl-C stops it all."""
    base = settings()
    configure_logging(base.log_format, base.log_level)
    data = (data_dir or base.data_dir).expanduser()
    cfg = base.model_copy(update={"data_dir": data, "allow_demo_policies": True})  # a sandbox
    server = DevServer(binary=temporal_bin, port=port, ui_port=ui_port,
                       namespace=cfg.temporal_namespace, db_file=data / "temporal.db",
                       log_file=data / "temporal.log")
    run(_until_signalled(_serve(server, cfg, demo_file if demo else None, api_port)))


async def _until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` until it ends or SIGINT/SIGTERM cancels it (a clean stop, exit 0)."""
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    stopping = False

    def on_signal(sig: signal.Signals) -> None:
        nonlocal stopping
        if stopping:
            err_console.print("[yellow]still shutting down...[/]")
            return
        stopping = True
        err_console.print(f"\n[bold]{sig.name}[/]: stopping worker and dev server...")
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await task
    except asyncio.CancelledError:
        if not stopping:
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    err_console.print("Stopped.")


async def _serve(server: DevServer, cfg: Settings, demo_file: Path | None,
                 api_port: int = 0) -> None:
    with console.status("Starting the Temporal dev server..."):
        await server.start()
    try:
        cfg = cfg.model_copy(update={"temporal_address": server.address})
        client = await connect_temporal(server.address, cfg.temporal_namespace)
        await ensure_search_attributes(client)  # no-op when --search-attribute did it
        engine = connect(cfg.ledger_url)
        try:
            await migrate(engine)
            async with build_worker(client, Ledger(engine), cfg), \
                    _api(cfg, client, engine, api_port):
                env_file = write_env(cfg, f"http://127.0.0.1:{api_port}" if api_port
                                     else None)
                _banner(server, cfg, demo_file, api_port, env_file)
                story: asyncio.Future[object] | None = None
                if demo_file is not None:
                    story = await _start_demo(CollectionClient(client, cfg.task_queue),
                                              demo_file, cfg, engine)
                console.print("Worker running. Press [bold]Ctrl-C[/] to stop.")
                try:
                    await asyncio.Future()  # until cancelled by a signal
                finally:
                    if story is not None:
                        story.cancel()
        finally:
            await engine.dispose()
    finally:
        await server.stop()


async def _start_demo(client: CollectionClient, demo_file: Path, cfg: Settings,
                      engine: AsyncEngine) -> asyncio.Future[object] | None:
    """Hand the demo loans over, then play their scripted stories in the background."""
    now = datetime.now(UTC)
    rows = with_policy(read_intake_file(demo_file, now), DEMO_POLICY)
    await start_with_progress(client, rows, console, now=now, policy_dir=cfg.policy_dir,
                              ledger=engine, allow_demo=True)
    loans = [r.loan for r in rows if r.loan is not None and r.loan.loan_id in SCENARIOS]
    if not loans:
        return None
    console.print(
        f"[bold]The demo:[/] {len(loans)} loans play scripted borrowers, agents and a "
        "supervisor; each reaches its ending within about ten minutes (the demo policy "
        "compresses days to seconds: never use it for real borrowers).", highlight=False)
    return asyncio.ensure_future(DemoRun(client, loans, console).run())


@asynccontextmanager
async def _api(cfg: Settings, client: Client, engine: AsyncEngine,
               port: int) -> AsyncIterator[None]:
    """The REST API in this process, sharing the worker's client and ledger."""
    if not port:
        yield
        return
    services = Services(client=CollectionClient(client, cfg.task_queue),
                        ledger=Ledger(engine), keys=KeyStore(engine), settings=cfg)
    server = uvicorn.Server(uvicorn.Config(create_app(cfg, services), host="127.0.0.1",
                                           port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        server.should_exit = True
        await task


def _banner(server: DevServer, cfg: Settings, demo_file: Path | None,
            api_port: int, env_file: Path) -> None:
    env = [f"# the CLI reads {env_file} from this directory; elsewhere:",
           f"export DUECOURSE_DATA_DIR={env_file.parent}"]
    loan = "DEMO-CN-1001" if demo_file is not None else "<loan-id>"
    lines = [
        f"Temporal UI   [link={server.ui_url}]{server.ui_url}[/link]",
        f"Temporal      {server.address} (namespace {escape(cfg.temporal_namespace)})",
        f"Task queue    {escape(cfg.task_queue)}",
        f"Ledger        {escape(safe_url(cfg.ledger_url))}",
        *([f"REST API      http://127.0.0.1:{api_port}/docs  (duecourse keys create "
           "--name me --role ops)"] if api_port else []),
        "",
        "[bold]In another terminal:[/]",
        *[f"  {escape(e)}" for e in env],
        "  duecourse loans                      # the portfolio: stage, DPD, next action",
        f"  duecourse messages --loan {loan}   # what we sent, and the rule that decided",
        "  duecourse alerts --open              # what needs ops now",
        f"  duecourse timeline {loan}",
        f"  duecourse pay {loan} --amount 100 --reference PAY-1",
        "  duecourse start examples/loans.csv",
    ]
    console.print(Panel("\n".join(lines), title="duecourse dev", title_align="left"),
                  highlight=False)


def env() -> None:
    """Print `export` lines for the settings `duecourse dev` runs with (eval them in a
    shell in another directory, or for tools that do not read the env file)."""
    from duecourse.cli.common import fail
    from duecourse.cli.env_file import env_path, read_env

    path = env_path(Settings().data_dir)
    if not path.is_file():
        fail(f"no env file at {path}: `duecourse dev` writes it when it starts (or set "
             "DUECOURSE_DATA_DIR to the data dir it uses)")
    for key, value in read_env(path).items():
        typer.echo(f"export {key}={shlex.quote(value)}")
