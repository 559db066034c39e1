"""What every command shares: consoles, settings, connections and user-error handling.

User errors (unknown loan, rejected update, bad input, unreachable server) end as one red
line on stderr and exit code 1; only real bugs show a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from temporalio.service import RPCError

from duecourse.cli.env_file import cli_settings
from duecourse.intake import IntakeFileError, format_validation_error
from duecourse.observability import tracing
from duecourse.observability.prometheus import MetricsAddressError
from duecourse.observability.tracing import TracingSettingsError
from duecourse.plain_words import plain_reason
from duecourse.policies import UnknownPolicy
from duecourse.security.codec_routes import CodecSettingsError
from duecourse.security.payload_codec import PayloadKeyUnknown, PayloadTampered
from duecourse.security.payload_keys import PayloadKeyError, ring_from_settings
from duecourse.settings import Settings
from duecourse.store import Ledger, connect, migrate
from duecourse.temporal.client import ActionRejected, CollectionClient, LoanClosed, LoanNotFound
from duecourse.temporal.connection import TemporalConfigError
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.devserver import DevServerError

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)

# The arguments and options several commands take, each worded once.
LoanId = Annotated[str, typer.Argument(help="the platform's loan id")]
Json = Annotated[bool, typer.Option("--json", help="print JSON instead of text")]
Note = Annotated[str, typer.Option(help="free text for the ledger")]
Reason = Annotated[str, typer.Option(help="why (kept in the ledger)")]
Currency = Annotated[str | None, typer.Option(help="default: the loan's")]
OnlyLoan = Annotated[str | None, typer.Option(help="only this loan")]


class CliError(Exception):
    """A user-facing problem: printed as one red line, exit code 1."""


USER_ERRORS = (CliError, LoanNotFound, LoanClosed, ActionRejected, IntakeFileError,
               UnknownPolicy, DevServerError, PayloadKeyError, PayloadKeyUnknown,
               PayloadTampered, TemporalConfigError, TracingSettingsError,
               MetricsAddressError, CodecSettingsError)
"""PayloadKeyError, TemporalConfigError, TracingSettingsError, MetricsAddressError and
CodecSettingsError name the setting to fix;
PayloadKeyUnknown and PayloadTampered name a payload's key id."""


def fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn user errors raised inside the block into a red line and exit code 1."""
    try:
        yield
    except LoanNotFound as err:  # say where we looked: another server is the usual cause
        cfg = settings()
        fail(f"{err} (asked Temporal at {cfg.temporal_address}, namespace "
             f"{cfg.temporal_namespace}; {where_settings_came_from()})")
    except USER_ERRORS as err:
        fail(str(err))
    except ValidationError as err:
        fail(plain_reason(format_validation_error(err)))
    except RPCError as err:
        fail(f"Temporal error ({err.status.name}): {err.message}")
    except (OperationalError, OSError) as err:
        fail(f"ledger database unavailable: {getattr(err, 'orig', None) or err}")
    except RuntimeError as err:
        if "Failed client connect" not in str(err):  # the SDK's unreachable-server error
            raise
        fail(f"cannot connect to Temporal: {err}")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine under `user_errors`."""
    with user_errors():
        try:
            return asyncio.run(coro)
        finally:  # the CLI exits through os._exit: batched spans leave now or never
            tracing.shutdown()


def settings() -> Settings:
    """The environment's settings, completed by the env file `duecourse dev` wrote."""
    return cli_settings()[0]


def where_settings_came_from() -> str:
    path = cli_settings()[1]
    return f"settings from {path} and the environment" if path else \
        "settings from the environment (no env file: `duecourse dev` writes one)"


def parse_amount(text: str, what: str = "amount") -> Decimal:
    """A positive, finite decimal; money never passes through float."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise CliError(f"{what} {text!r} is not a number (use digits and a decimal point, "
                       "e.g. 1250.50)") from None
    if not amount.is_finite():
        raise CliError(f"{what} must be a finite number, got {text!r}")
    if amount <= 0:
        raise CliError(f"{what} must be greater than zero, got {text!r}")
    return amount


def parse_instant(text: str, option: str) -> datetime:
    """An ISO 8601 date-time with its offset (without one it could be any of 24 hours)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} {text!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise CliError(f"{option} {text!r} needs a UTC offset, e.g. {text}+08:00 or {text}Z")
    return moment


def parse_date(text: str, option: str) -> date:
    """A calendar date, YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


async def temporal(cfg: Settings | None = None) -> CollectionClient:
    """A CollectionClient for the server and task queue of `cfg` (default: `settings()`)."""
    cfg = cfg or settings()
    ring = ring_from_settings(cfg)  # PayloadKeyError before connecting: a setting to fix
    try:
        client = await connect_temporal(cfg, ring=ring)
    except (TemporalConfigError, TracingSettingsError):
        raise  # a setting to fix, said in its own sentence
    except Exception as err:  # the SDK raises RuntimeError with the transport's reason
        raise CliError(f"cannot connect to Temporal at {cfg.temporal_address} (namespace "
                       f"{cfg.temporal_namespace}; {where_settings_came_from()}): "
                       f"{err}") from err
    return CollectionClient(client, cfg.task_queue)


def missing_ledger(url: str) -> str | None:
    """Why a SQLite ledger cannot be used: its file does not exist (a read must never
    create an empty one and report "0 tasks")."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or \
            parsed.database == ":memory:" or Path(parsed.database).is_file():
        return None
    return (f"no ledger at {parsed.database} ({where_settings_came_from()}): start "
            "`duecourse dev`, point DUECOURSE_DATABASE_URL or DUECOURSE_DATA_DIR at an "
            "existing ledger, or create an empty one with `duecourse db upgrade`")


@asynccontextmanager
async def ledger(cfg: Settings | None = None, create: bool = False) -> AsyncIterator[Ledger]:
    """The migrated ledger of `cfg` (default: `settings()`; an older schema is brought up
    to date). An SQLite file that does not exist is refused unless `create`."""
    cfg = cfg or settings()
    problem = None if create else missing_ledger(cfg.ledger_url)
    if problem:
        raise CliError(problem)
    engine = connect(cfg.ledger_url)
    try:
        await migrate(engine)
        yield Ledger(engine)
    finally:
        await engine.dispose()


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def ledger_url(given: str | None) -> str | None:
    """A `--ledger` value: an SQLAlchemy URL as given; a path to a SQLite file (or to a
    directory holding ledger.db, as `duecourse simulate --out DIR` writes) as its
    aiosqlite URL; None as None (the configured ledger)."""
    if given is None or "://" in given:
        return given
    path = Path(given).expanduser()
    if path.is_dir():
        path = path / "ledger.db"
    if not path.is_file():
        raise CliError(f"--ledger {given}: no ledger file there (give a SQLite file, a "
                       "directory holding ledger.db, or a database URL)")
    return f"sqlite+aiosqlite:///{path.resolve().as_posix()}"
