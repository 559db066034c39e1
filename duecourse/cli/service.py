"""The REST API server and its keys."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn
from rich.markup import escape
from rich.table import Table

from duecourse.api import create_app
from duecourse.cli.common import CliError, console, fail, ledger, run, settings, user_errors
from duecourse.cli.render import when
from duecourse.domain.actor import Role
from duecourse.logs import configure_logging
from duecourse.observability import tracing
from duecourse.security.codec_routes import codec_policy
from duecourse.security.payload_keys import ring_from_settings
from duecourse.store.keys import ApiKey, KeyStore
from duecourse.temporal.connection import options_for


def api(host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port (OpenAPI at /docs)")] = 8000) -> None:
    """Serve the REST API against TEMPORAL_ADDRESS and the ledger; Ctrl-C stops it."""
    cfg = settings()
    configure_logging(cfg.log_format, cfg.log_level)
    with user_errors():  # a setting to fix stops it here in one sentence, not in uvicorn
        ring_from_settings(cfg)
        options_for(cfg)
        tracing.exporting(cfg)
        codec_policy(cfg)
    uvicorn.run(create_app(cfg), host=host, port=port, log_config=None)


keys = typer.Typer(help="API keys (only a hash is stored; a key is shown once).",
                   no_args_is_help=True)


@keys.command("create")
def create(name: Annotated[str, typer.Option(
               help="who the key is for: a person's key acts as this name in the ledger; a "
                    "platform key's name is a label (letters, digits and . _ @ -)")],
           role: Annotated[str, typer.Option(help=" / ".join(Role))],
           platform: Annotated[str | None, typer.Option(
               help="the platform a platform key acts for (`duecourse platforms create`); "
                    "default: the platform named like the key, created if need be")] = None,
           ) -> None:
    """Create a key and print it once."""

    async def go() -> tuple[ApiKey, str]:
        async with ledger(settings()) as book:
            try:
                return await KeyStore(book.engine).create(name, role, platform)
            except ValueError as err:
                raise CliError(str(err)) from None

    _show(*run(go()))


@keys.command("rotate")
def rotate(key_id: Annotated[str, typer.Argument(help="the platform key's id (keys list)")],
           name: Annotated[str | None, typer.Option(
               help="the new key's name; default: the platform's id and a random suffix")]
           = None,
           revoke_old: Annotated[bool, typer.Option(
               "--revoke-old", help="revoke the old key at once (default: keep it live "
                                    "until `keys revoke`, while clients move over)")] = False,
           ) -> None:
    """Give a platform a new key; its loans and webhooks stay its own."""

    async def go() -> tuple[ApiKey, str]:
        async with ledger(settings()) as book:
            store = KeyStore(book.engine)
            try:
                new = await store.rotate(key_id, name)
            except ValueError as err:
                raise CliError(str(err)) from None
            if revoke_old:
                await store.revoke(key_id)
            return new

    _show(*run(go()))
    console.print(f"[dim]Key {escape(key_id)} was revoked.[/]" if revoke_old else
                  f"[dim]Key {escape(key_id)} stays live until `duecourse keys revoke "
                  f"{escape(key_id)}`.[/]", highlight=False)


def _show(key: ApiKey, token: str) -> None:
    platform = f", platform {key.platform_id}" if key.platform_id else ""
    console.print(f"{escape(key.name)} ({key.role}{escape(platform)}, id {key.key_id}): "
                  f"{token}", highlight=False, soft_wrap=True)
    console.print("[dim]Store it now: it cannot be shown again.[/]")


@keys.command("list")
def list_keys(platform: Annotated[str | None, typer.Option(
                  help="only this platform's keys")] = None) -> None:
    """List keys (never their secrets)."""

    async def go() -> Table:
        async with ledger(settings()) as book:
            items = await KeyStore(book.engine).list(platform)
        table = Table(title=f"{len(items)} API key{'s' * (len(items) != 1)}",
                      title_justify="left")
        table.add_column("id", no_wrap=True, min_width=16)  # `keys rotate` and `revoke` take it
        for column in ("name", "role", "platform", "created (UTC)", "revoked (UTC)"):
            table.add_column(column)
        for k in items:
            table.add_row(k.key_id, escape(k.name), k.role, escape(k.platform_id or ""),
                          when(k.created_at, ""), when(k.revoked_at, ""))
        return table

    console.print(run(go()))


@keys.command("revoke")
def revoke(key: Annotated[str, typer.Argument(help="the key's id, or its name")]) -> None:
    """Revoke a key at once."""

    async def go() -> bool:
        async with ledger(settings()) as book:
            return await KeyStore(book.engine).revoke(key)

    if not run(go()):
        fail(f"no live key with id or name {key!r} (see `duecourse keys list`)")
    console.print(f"Key {escape(key)} revoked.", highlight=False)
