"""`duecourse dev`: everything on one laptop - Temporal dev server, ledger, worker, demo.

Ctrl-C or SIGTERM cancels the one task running it all, so the same unwinding path stops
the worker first and the dev server last, whatever phase we were in.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import SecretStr
from rich.markup import escape
from rich.panel import Panel
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.cli.common import console, err_console, fail, run, safe_url, settings, user_errors
from duecourse.cli.env_file import write_env
from duecourse.cli.mail_catcher import catcher_url, mail_catcher
from duecourse.cli.sms_stub import SENDER as STUB_SENDER
from duecourse.cli.sms_stub import StubSms, sms_stub
from duecourse.demo.script import SCENARIOS
from duecourse.demo.watch import DemoRun
from duecourse.domain.actor import Role
from duecourse.handover import start_with_progress
from duecourse.intake import read_intake_file, with_policy
from duecourse.logs import configure_logging
from duecourse.observability import tracing
from duecourse.observability.prometheus import metrics_runtime
from duecourse.portal.tokens import DEFAULT_SECRET_FILE, ensure_secret_file
from duecourse.runtime import build_worker
from duecourse.security.codec_routes import codec_policy
from duecourse.security.payload_keys import DEFAULT_KEY_FILE, ensure_key_file, ring_from_settings
from duecourse.settings import Settings
from duecourse.store import Ledger, connect, migrate
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient, ensure_search_attributes
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.devserver import DevServer

DEMO_FILE = Path(__file__).resolve().parent.parent / "demo" / "loans.csv"
DEMO_POLICY = "demo"
DEFAULT_PORT = 7233
DEFAULT_METRICS_PORT = 9464
DEFAULT_MAIL_PORT = 1025
MAIL_DIR = "mail"
DEFAULT_SMS_PORT = 8025
UI_KEY_FILE = "temporal-ui-key"


def dev(demo: Annotated[bool, typer.Option(
            help=f"also start the demo loans, on the '{DEMO_POLICY}' policy (minutes, not "
                 "weeks)")] = False,
        port: Annotated[int, typer.Option(help="Temporal frontend (gRPC) port")]
        = DEFAULT_PORT,
        ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = 8233,
        api_port: Annotated[int, typer.Option(
            help="REST API port, also the UI's codec server (0: no API, and the UI shows "
                 "payloads sealed)")] = 8000,
        metrics_port: Annotated[int, typer.Option(
            help="the worker's Prometheus metrics on 127.0.0.1 (0: none; "
                 "DUECOURSE_METRICS_ADDRESS overrides)")] = DEFAULT_METRICS_PORT,
        data_dir: Annotated[Path | None, typer.Option(
            help="Temporal and ledger SQLite files (default: DUECOURSE_DATA_DIR or "
                 ".duecourse)")] = None,
        demo_file: Annotated[Path, typer.Option(help="loans started by --demo")] = DEMO_FILE,
        temporal_bin: Annotated[str | None, typer.Option(
            envvar="DUECOURSE_TEMPORAL_BIN",
            help="the temporal CLI (default: temporal-bin's, then PATH)")] = None,
        mail: Annotated[bool, typer.Option(
            help="send email to a local SMTP catcher that keeps each message as a .eml "
                 "file under the data dir (a dev tool only)")] = False,
        mail_port: Annotated[int, typer.Option(min=1, max=65535,
                                               help="the mail catcher's port on 127.0.0.1")]
        = DEFAULT_MAIL_PORT,
        sms: Annotated[bool, typer.Option(
            help="send SMS through a local gateway stub that echoes each one to the "
                 "console (a dev tool only)")] = False,
        sms_port: Annotated[int, typer.Option(min=1, max=65535,
                                              help="the SMS stub's port on 127.0.0.1")]
        = DEFAULT_SMS_PORT,
        ) -> None:
    """Run a local Temporal dev server, the ledger and a worker; Ctrl-C stops it all."""
    base = settings()
    configure_logging(base.log_format, base.log_level)
    data = (data_dir or base.data_dir).expanduser()
    metrics = base.metrics_address or (f"127.0.0.1:{metrics_port}" if metrics_port else None)
    ui_origins = f"http://localhost:{ui_port},http://127.0.0.1:{ui_port}"  # its own UI's
    cfg = base.model_copy(update={"data_dir": data, "allow_demo_policies": True,  # a sandbox
                                  "metrics_address": metrics, "codec_cors_origins":
                                  f"{base.codec_cors_origins},{ui_origins}",
                                  # the borrower's page pays at the built-in sandbox
                                  **({} if "payment_provider" in base.model_fields_set
                                     else {"payment_provider": "sandbox"}),
                                  # borrower links, checkout returns and opt-out links
                                  # lead to the API this process serves
                                  **({} if "public_url" in base.model_fields_set
                                     or not api_port
                                     else {"public_url": f"http://127.0.0.1:{api_port}"})})
    if mail:
        if base.email_url is not None:
            fail("--mail sends email to a local catcher, and DUECOURSE_EMAIL_URL names a "
                 "real mail server: unset one of them")
        cfg = cfg.model_copy(update={"email_url": SecretStr(catcher_url(mail_port))})
    if sms and base.sms_url:
        fail("--sms sends SMS to a local stub, and DUECOURSE_SMS_URL names a real "
             "gateway: unset one of them")
    with user_errors():  # a setting to fix stops it before any server starts
        if not cfg.payload_keys and not cfg.payload_key_file:
            ensure_key_file(data / DEFAULT_KEY_FILE)  # the embedded default is sealed too
        if not cfg.portal_secret and not cfg.portal_secret_file:
            ensure_secret_file(data / DEFAULT_SECRET_FILE)  # borrower page links work
        ring_from_settings(cfg)
        tracing.exporting(cfg)
        codec_policy(cfg)
    server = DevServer(binary=temporal_bin, port=port, ui_port=ui_port,
                       namespace=cfg.temporal_namespace, db_file=data / "temporal.db",
                       log_file=data / "temporal.log")
    run(_until_signalled(_serve(server, cfg, demo_file if demo else None, api_port,
                                mail_port if mail else 0, sms_port if sms else 0)))


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
                 api_port: int = 0, mail_port: int = 0, sms_port: int = 0) -> None:
    engine = connect(cfg.ledger_url)
    try:
        await migrate(engine)
        if api_port:  # ops on this machine see decoded payloads; nobody else can reach it
            token = await _ui_codec_key(KeyStore(engine), cfg.data_dir / UI_KEY_FILE)
            server.ui_codec_endpoint = f"http://127.0.0.1:{api_port}/codec/ui/{token}"
        with console.status("Starting the Temporal dev server..."):
            await server.start()
        try:
            await _run(server, cfg, engine, demo_file, api_port, mail_port, sms_port)
        finally:
            await asyncio.to_thread(tracing.shutdown)  # batched spans leave before we do
            await server.stop()
    finally:
        await engine.dispose()


async def _ui_codec_key(keys: KeyStore, path: Path) -> str:
    """The key the Temporal UI decodes payloads with: the one saved under the data dir
    while it is valid, else a new one (revoking it in the ledger stops the UI decoding).
    Its role is codec, which opens payloads and nothing else: anyone who loads the UI can
    read it from the UI's settings."""
    token = _read_token(path)
    if token and await keys.verify(token) is not None:
        return token
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    _, token = await keys.create(f"temporal-ui-{stamp}", Role.CODEC)
    _write_token(path, token)
    return token


def _read_token(path: Path) -> str | None:
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def _write_token(path: Path, token: str) -> None:
    """Readable by this machine's user only: the key decodes every borrower's payloads."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")


async def _run(server: DevServer, cfg: Settings, engine: AsyncEngine,
               demo_file: Path | None, api_port: int, mail_port: int = 0,
               sms_port: int = 0) -> None:
    cfg = cfg.model_copy(update={"temporal_address": server.address})
    runtime = metrics_runtime(cfg.metrics_address) if cfg.metrics_address else None
    client = await connect_temporal(cfg, address=server.address, runtime=runtime)
    await ensure_search_attributes(client)  # no-op when --search-attribute did it
    async with _mail(cfg, mail_port), _sms(cfg, sms_port) as cfg, \
            build_worker(client, Ledger(engine), cfg), _api(cfg, client, engine, api_port):
        env_file = write_env(cfg, f"http://127.0.0.1:{api_port}" if api_port
                             else None)
        _banner(server, cfg, demo_file, api_port, env_file, mail_port, sms_port)
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
async def _mail(cfg: Settings, port: int) -> AsyncIterator[None]:
    """The mail catcher while the worker runs (`--mail`), one console line a message."""
    if not port:
        yield
        return

    def report(subject: str, path: Path) -> None:
        console.print(f"[bold]mail[/] {escape(subject)} -> {escape(str(path))}",
                      highlight=False)

    async with mail_catcher(cfg.data_dir / MAIL_DIR, port, report):
        yield


@asynccontextmanager
async def _sms(cfg: Settings, port: int) -> AsyncIterator[Settings]:
    """The SMS stub while the worker runs (`--sms`): yields the settings that route SMS to
    it, one console line a message."""
    if not port:
        yield cfg
        return

    def echo(message: StubSms) -> None:
        console.print(f"[bold]sms[/] to {escape(message.to)}: {escape(message.text)}",
                      highlight=False)

    async with sms_stub(port, echo) as stub:
        yield cfg.model_copy(update={"sms_url": stub.url, "sms_profile": "generic",
                                     "sms_token": SecretStr(stub.token),
                                     "sms_account": None, "sms_from": STUB_SENDER})


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
            api_port: int, env_file: Path, mail_port: int = 0, sms_port: int = 0) -> None:
    env = [f"# the CLI reads {env_file} from this directory; elsewhere:",
           f"export DUECOURSE_DATA_DIR={env_file.parent}"]
    loan = "DEMO-CN-1001" if demo_file is not None else "<loan-id>"
    lines = [
        f"Temporal UI   [link={server.ui_url}]{server.ui_url}[/link]",
        f"Temporal      {server.address} (namespace {escape(cfg.temporal_namespace)})",
        f"Task queue    {escape(cfg.task_queue)}",
        f"Ledger        {escape(safe_url(cfg.ledger_url))}",
        *([f"REST API      http://127.0.0.1:{api_port}/docs  (duecourse keys create "
           "--name me --role ops)",
           f"Codec server  http://127.0.0.1:{api_port}/codec  (the UI decodes payloads with "
           f"the codec key in {escape(str(cfg.data_dir / UI_KEY_FILE))})"] if api_port else
          ["Codec server  none (--api-port 0): the UI shows payloads sealed"]),
        f"Payload keys  {escape(ring_from_settings(cfg).source)}",
        *([f"Mail catcher  smtp://127.0.0.1:{mail_port}: each email sent is a .eml file in "
           f"{escape(str(cfg.data_dir / MAIL_DIR))}"] if mail_port else []),
        *([f"SMS stub      http://127.0.0.1:{sms_port}/v1/messages: each SMS sent is echoed "
           "here"] if sms_port else []),
        *(["Payments      reconciled daily at 02:30 UTC, each difference an ops alert "
           "(duecourse payments schedule)"] if cfg.payment_provider != "none" else []),
        *([f"Metrics       http://{cfg.metrics_address}/metrics (worker)"
           + (f", http://127.0.0.1:{api_port}/metrics (API)" if api_port else "")]
          if cfg.metrics_address else []),
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
