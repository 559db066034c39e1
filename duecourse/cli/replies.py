"""`duecourse replies`: what borrowers (and strangers) wrote back, for review - above all
the replies from numbers no loan knows, which touch nothing until a person looks."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from duecourse.cli.common import Json, console, ledger, run
from duecourse.cli.render import when
from duecourse.inbound.store import InboundStore
from duecourse.store.borrower_export import plain

SHOWN = ("id", "received_at", "profile", "sender", "text", "loan_id", "outcome")


def replies(unknown: Annotated[bool, typer.Option(
                "--unknown", help="only replies from numbers no loan knows")] = False,
            limit: Annotated[int, typer.Option(min=1, max=1000,
                                               help="at most this many rows")] = 100,
            as_json: Json = False) -> None:
    """SMS replies, newest first, with what was done about each."""

    async def go() -> list[dict[str, Any]]:
        async with ledger() as book:
            return (await InboundStore(book.engine).replies(unknown_only=unknown))[:limit]

    rows = [{k: r.get(k) for k in SHOWN} for r in run(go())]
    if as_json:
        typer.echo(json.dumps([plain(r) for r in rows], indent=2, ensure_ascii=False))
        return
    title = f"replies: {len(rows)}" + (" from numbers no loan knows" if unknown else "")
    table = Table(title=title,
                  title_justify="left", show_lines=True)
    for column in ("id", "received (UTC)", "from", "text", "loan", "outcome"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), when(r["received_at"], ""), escape(r["sender"]),
                      escape(r["text"]), escape(r["loan_id"] or "-"),
                      escape(r["outcome"] or "pending"))
    console.print(table)
