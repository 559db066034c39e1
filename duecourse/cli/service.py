"""The REST API server and its keys."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn
from rich.markup import escape
from rich.table import Table

from duecourse.api import create_app
from duecourse.cli.common import CliError, console, ledger, run, settings
from duecourse.cli.render import when
from duecourse.domain.actor import Role
from duecourse.logs import configure_logging
from duecourse.store.keys import KeyStore


def api(host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port (OpenAPI at /docs)")] = 8000) -> None:
    """Serve the REST API against TEMPORAL_ADDRESS and the ledger; Ctrl-C stops it."""
    cfg = settings()
    configure_logging(cfg.log_format, cfg.log_level)
    uvicorn.run(create_app(cfg), host=host, port=port, log_config=None)


keys = typer.Typer(help="API keys (only a hash is stored; a key is shown once).",
                   no_args_is_help=True)


@keys.command("create")
def create(name: Annotated[str, typer.Option(
               help="who the key is for: kept as the actor and, for a platform, as the owner "
                    "of the loans it hands over (letters, digits and . _ @ -)")],
           role: Annotated[str, typer.Option(help=" / ".join(Role))]) -> None:
    """Create a key and print it once."""

    async def go() -> str:
        async with ledger(settings()) as book:
            try:
                key, token = await KeyStore(book.engine).create(name, role)
            except ValueError as err:
                raise CliError(str(err)) from None
        return f"{key.name} ({key.role}): {token}"

    console.print(run(go()), highlight=False, soft_wrap=True)
    console.print("[dim]Store it now: it cannot be shown again.[/]")


@keys.command("list")
def list_keys() -> None:
    """List keys (never their secrets)."""

    async def go() -> Table:
        async with ledger(settings()) as book:
            items = await KeyStore(book.engine).list()
        table = Table(title=f"{len(items)} API key{'s' * (len(items) != 1)}",
                      title_justify="left")
        for column in ("name", "role", "created (UTC)", "revoked (UTC)"):
            table.add_column(column)
        for k in items:
            table.add_row(escape(k.name), k.role, when(k.created_at, ""),
                          when(k.revoked_at, ""))
        return table

    console.print(run(go()))


@keys.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="the key's name")]) -> None:
    """Revoke a key at once."""

    async def go() -> bool:
        async with ledger(settings()) as book:
            return await KeyStore(book.engine).revoke(name)

    if not run(go()):
        raise CliError(f"no live key named {name!r}")
    console.print(f"Key {escape(name)} revoked.", highlight=False)
