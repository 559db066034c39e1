"""`duecourse codec-server` (the codec routes served alone) and `duecourse codec-audit`
(who read or sealed payloads through them)."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn
from pydantic import TypeAdapter
from rich.markup import escape
from rich.table import Table

from duecourse.cli.common import (
    CliError,
    Json,
    console,
    ledger,
    missing_ledger,
    parse_instant,
    run,
    settings,
)
from duecourse.cli.render import when
from duecourse.logs import configure_logging
from duecourse.security.codec_app import create_codec_app
from duecourse.security.codec_routes import CodecSettingsError, codec_policy
from duecourse.security.payload_keys import PayloadKeyError, ring_from_settings
from duecourse.store.payload_access import PayloadAccess, PayloadAccessLog


def codec_server(host: Annotated[str, typer.Option(help="interface to listen on")]
                 = "127.0.0.1",
                 port: Annotated[int, typer.Option(help="port")] = 8234) -> None:
    """Serve Temporal's codec protocol at /codec (decode, encode) for the Temporal UI and
    CLI, to API keys with a role in DUECOURSE_CODEC_ROLES; Ctrl-C stops it."""
    cfg = settings()
    try:  # refuse at start what would refuse every request
        ring = ring_from_settings(cfg)
        policy = codec_policy(cfg)
    except (PayloadKeyError, CodecSettingsError) as err:
        raise CliError(str(err)) from None
    if problem := missing_ledger(cfg.ledger_url):
        raise CliError(problem)
    configure_logging(cfg.log_format, cfg.log_level)
    console.print(f"Codec server  http://{host}:{port}/codec  (payload keys "
                  f"{', '.join(ring.key_ids)}; roles "
                  f"{', '.join(r.value for r in policy.roles) or 'none'}; browser origins "
                  f"{', '.join(sorted(policy.origins)) or 'none'})", highlight=False,
                  soft_wrap=True)
    uvicorn.run(create_codec_app(cfg), host=host, port=port, log_config=None)


def codec_audit(limit: Annotated[int, typer.Option(min=1, help="at most this many rows")] = 50,
                refused: Annotated[bool, typer.Option(
                    "--refused", help="only refused requests")] = False,
                since: Annotated[str | None, typer.Option(
                    help="only requests at or after this ISO 8601 time")] = None,
                as_json: Json = False) -> None:
    """Who decoded or encoded payloads through the codec server, newest first (refused
    requests too); never any payload content."""
    start = None if since is None else parse_instant(since, "--since")

    async def go() -> list[PayloadAccess]:
        async with ledger() as book:
            return await PayloadAccessLog(book.engine).recent(limit, refused_only=refused,
                                                              since=start)

    rows = run(go())
    if as_json:
        typer.echo(TypeAdapter(list[PayloadAccess]).dump_json(rows, indent=2).decode())
        return
    table = Table(title=f"{len(rows)} codec request{'s' * (len(rows) != 1)}",
                  title_justify="left")
    for column in ("at (UTC)", "operation", "answer", "key", "role", "namespace",
                   "payloads", "sealed with", "origin", "reason"):
        table.add_column(column)
    for r in rows:
        answer = f"{r.status} " + ("allowed" if r.allowed else "refused")
        key = f"{r.key_name} ({r.key_id})" if r.key_id else "-"
        table.add_row(when(r.occurred_at, ""), r.operation, answer, escape(key), r.role or "-",
                      escape(r.namespace or "-"), str(r.payload_count),
                      escape(", ".join(r.payload_key_ids) or "-"), escape(r.origin or "-"),
                      escape(r.reason or ""))
    console.print(table)
