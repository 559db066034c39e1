"""What every command shares: consoles, settings, connections and user-error handling.

User errors (unknown loan, rejected update, bad input, unreachable server) end as one red
line on stderr and exit code 1; only real bugs show a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from temporalio.service import RPCError

from duecourse.intake import IntakeFileError, format_validation_error
from duecourse.policies import UnknownPolicy
from duecourse.settings import Settings, get_settings
from duecourse.store import Ledger, connect, migrate
from duecourse.temporal.client import ActionRejected, CollectionClient, LoanClosed, LoanNotFound
from duecourse.temporal.client import connect as connect_temporal
from duecourse.temporal.devserver import DevServerError

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


class CliError(Exception):
    """A user-facing problem: printed as one red line, exit code 1."""


USER_ERRORS = (CliError, LoanNotFound, LoanClosed, ActionRejected, IntakeFileError,
               UnknownPolicy, DevServerError)


def fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn user errors raised inside the block into a red line and exit code 1."""
    try:
        yield
    except USER_ERRORS as err:
        fail(str(err))
    except ValidationError as err:
        fail(format_validation_error(err))
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
        return asyncio.run(coro)


def settings() -> Settings:
    return get_settings()


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


async def temporal(cfg: Settings) -> CollectionClient:
    """A CollectionClient for the configured server and task queue."""
    try:
        client = await connect_temporal(cfg.temporal_address, cfg.temporal_namespace)
    except Exception as err:  # the SDK raises RuntimeError with the transport's reason
        raise CliError(f"cannot connect to Temporal at {cfg.temporal_address} (namespace "
                       f"{cfg.temporal_namespace}): {err}") from err
    return CollectionClient(client, cfg.task_queue)


@asynccontextmanager
async def ledger(cfg: Settings) -> AsyncIterator[Ledger]:
    """The migrated ledger (so a fresh database answers instead of failing)."""
    engine = connect(cfg.ledger_url)
    try:
        await migrate(engine)
        yield Ledger(engine)
    finally:
        await engine.dispose()


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
