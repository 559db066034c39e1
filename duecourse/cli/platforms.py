"""`duecourse platforms`: the tenants that own loans and webhooks, above their API keys.

A platform outlives its keys (`duecourse keys create --role platform --platform P`, `keys
rotate`, `keys revoke`); disabling it refuses all of its keys at once (403) while its loans
keep running.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from duecourse.cli.common import CliError, console, fail, ledger, run, settings
from duecourse.cli.render import when
from duecourse.store.keys import KeyStore
from duecourse.store.platforms import Platform, PlatformStore

commands = typer.Typer(help="Platforms (tenants): they own loans and webhooks; keys act "
                            "for them.", no_args_is_help=True)

PlatformArg = Annotated[str, typer.Argument(help="the platform's id")]


@commands.command("create")
def create(platform_id: Annotated[str, typer.Argument(
               help="its id: the owner of its loans and the actor in the ledger (letters, "
                    "digits and . _ @ -)")],
           name: Annotated[str | None, typer.Option(
               help="a display name (default: the id)")] = None) -> None:
    """Add a platform; then give it a key with `duecourse keys create --platform`."""

    async def go() -> Platform:
        async with ledger(settings()) as book:
            try:
                return await PlatformStore(book.engine).create(platform_id, name)
            except ValueError as err:
                raise CliError(str(err)) from None

    made = run(go())
    console.print(f"Platform {escape(made.platform_id)} ({escape(made.name)}) created; "
                  f"give it a key: duecourse keys create --name NAME --role platform "
                  f"--platform {escape(made.platform_id)}", highlight=False, soft_wrap=True)


@commands.command("list")
def list_platforms() -> None:
    """List platforms with their live keys."""

    async def go() -> Table:
        async with ledger(settings()) as book:
            items = await PlatformStore(book.engine).list()
            keys = await KeyStore(book.engine).list()
        live: dict[str, int] = {}
        for k in keys:
            if k.platform_id and k.revoked_at is None:
                live[k.platform_id] = live.get(k.platform_id, 0) + 1
        table = Table(title=f"{len(items)} platform{'s' * (len(items) != 1)}",
                      title_justify="left")
        for column in ("id", "name", "live keys", "created (UTC)", "disabled (UTC)"):
            table.add_column(column)
        for p in items:
            table.add_row(escape(p.platform_id), escape(p.name), str(live.get(p.platform_id, 0)),
                          when(p.created_at, ""), when(p.disabled_at, ""))
        return table

    console.print(run(go()))


@commands.command("disable")
def disable(platform_id: PlatformArg) -> None:
    """Refuse all of the platform's keys at once (403); its loans keep running."""
    _switch(platform_id, enable=False)


@commands.command("enable")
def enable(platform_id: PlatformArg) -> None:
    """Admit a disabled platform's live keys again."""
    _switch(platform_id, enable=True)


def _switch(platform_id: str, enable: bool) -> None:
    async def go() -> bool:
        async with ledger(settings()) as book:
            store = PlatformStore(book.engine)
            return await (store.enable if enable else store.disable)(platform_id)

    state = "enabled" if enable else "disabled"
    if not run(go()):
        fail(f"no platform {platform_id!r} that is not {state} already (see "
             "`duecourse platforms list`)")
    console.print(f"Platform {escape(platform_id)} {state}.", highlight=False)
