"""Ops views: what was sent to borrowers (and what the rules held back), the alerts that
need a person, and the portfolio as Temporal's visibility store sees it.

`messages` and `alerts` read the ledger only (never creating one); `loans` lists from
visibility and asks each listed running loan for its status, a few at a time.
"""

from __future__ import annotations

import getpass
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from duecourse.cli.common import (
    CliError,
    Json,
    OnlyLoan,
    console,
    ledger,
    run,
    settings,
    temporal,
    user_errors,
)
from duecourse.cli.render import STAGE_STYLE, relative, when
from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.case.state import Stage
from duecourse.domain.policy import Channel, Segment
from duecourse.store.ops_queries import (
    Acknowledgement,
    AlertNotFound,
    AlertView,
    MessageView,
    acknowledge,
    list_alerts,
    list_messages,
)
from duecourse.temporal.portfolio_query import (
    InvalidFilter,
    LoanFilters,
    PortfolioRow,
    parse_choice,
    portfolio_rows,
)

Limit = Annotated[int, typer.Option(min=1, max=1000, help="at most this many rows")]
STATUS_STYLE = {"sent": "green", "made_by_person": "green", "blocked": "red",
                "failed": "red", "deferred": "yellow", "in_doubt": "yellow"}
AGO = re.compile(r"(\d{1,6})\s*([mhdw])")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 date-time with its offset, a date (midnight UTC) or a span ago
    (`90m`, `12h`, `7d`, `2w`)."""
    value = text.strip()
    if match := AGO.fullmatch(value.lower()):
        span = timedelta(**{UNITS[match[2]]: int(match[1])})
        return (now or datetime.now(UTC)) - span
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"--since {text!r} is not a time: give an ISO 8601 date-time with "
                       "its offset (2026-12-01T08:00:00+08:00), a date (2026-12-01, midnight "
                       "UTC) or a span ago (90m, 12h, 7d, 2w)") from None
    if len(value) == 10:  # a bare date
        return moment.replace(tzinfo=UTC)
    if moment.tzinfo is None:
        raise CliError(f"--since {text!r} needs a UTC offset, e.g. {value}Z")
    return moment


def _channel(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return parse_choice(Channel, text, "channel").value
    except InvalidFilter as err:
        raise CliError(str(err)) from None


def _reason(m: MessageView) -> str:
    text = m.reason
    if m.status == "deferred" and m.until is not None:
        text += f"; asked again at {when(m.until)}"
    if m.decided_by and not m.decided_by.startswith("system:"):
        text += f" (asked by {m.decided_by})"
    return text


def _body(m: MessageView) -> str:
    if m.body is None:
        return m.error or "-"
    titled = m.subject and m.channel in (Channel.EMAIL, Channel.LETTER)  # an SMS has none
    return f"{m.subject}\n\n{m.body}" if titled else m.body


def messages(loan: OnlyLoan = None,
             channel: Annotated[str | None, typer.Option(
                 help="sms, email, voice, letter or visit")] = None,
             since: Annotated[str | None, typer.Option(
                 help="from this time on: ISO 8601, a date, or a span ago (12h, 7d)")] = None,
             limit: Limit = 50, as_json: Json = False) -> None:
    """What was sent to borrowers, blocked or deferred: the body and the rule that decided.

    Newest first; bodies only of messages that went (or may have gone) out."""
    with user_errors():
        start = parse_since(since) if since else None
        chosen = _channel(channel)

    async def go() -> list[MessageView]:
        async with ledger() as book:
            return await list_messages(book.engine, loan_id=loan, channel=chosen,
                                       since=start, limit=limit)

    rows = run(go())
    if as_json:
        typer.echo(json.dumps([m.model_dump(mode="json") for m in rows], indent=2))
        return
    title = _count(len(rows), "message") + (f" of loan {escape(loan)}" if loan else "") \
        + (f" since {when(start)}" if start else "")
    table = Table(title=title, title_justify="left", show_lines=True)
    for column in ("time (UTC)", "loan", "channel", "to", "status", "template / step",
                   "decided by", "message"):
        table.add_column(column, overflow="fold", ratio=3 if column == "message" else None)
    for m in rows:
        style = STATUS_STYLE.get(m.status, "dim")
        table.add_row(when(m.at, ""), escape(m.loan_id), m.channel,
                      m.recipient_kind.replace("_", " "), f"[{style}]{m.status}[/]",
                      escape(f"{m.template or '-'} / {m.step}"), escape(_reason(m)),
                      escape(_body(m)))
    console.print(table)


def _alert_state(a: AlertView) -> str:
    if a.open:
        return "[bold yellow]open[/]"
    note = f": {escape(a.note)}" if a.note else ""
    return f"acknowledged by {escape(a.acknowledged_by or '?')} at {when(a.acknowledged_at)}" \
        + note


def alerts(open_only: Annotated[bool, typer.Option(
               "--open", help="only alerts nobody has acknowledged")] = False,
           loan: OnlyLoan = None,
           limit: Limit = 100, as_json: Json = False) -> None:
    """Ops alerts, newest first: what the workflows could not settle alone."""

    async def go() -> list[AlertView]:
        async with ledger() as book:
            return await list_alerts(book.engine, open_only=open_only, loan_id=loan,
                                     limit=limit)

    rows = run(go())
    if as_json:
        typer.echo(json.dumps([a.model_dump(mode="json") for a in rows], indent=2))
        return
    table = Table(title=_count(len(rows), "open alert" if open_only else "alert"),
                  title_justify="left", show_lines=True)
    for column in ("id", "raised (UTC)", "loan", "alert", "state"):
        table.add_column(column, overflow="fold", justify="right" if column == "id" else
                         "left")
    for a in rows:
        table.add_row(str(a.alert_id), when(a.raised_at, ""), escape(a.loan_id),
                      f"[bold]{escape(a.subject)}[/]\n{escape(a.body)}", _alert_state(a))
    console.print(table)


alert = typer.Typer(help="Work on one ops alert.", no_args_is_help=True)


def _me() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "ops"


@alert.command("ack")
def ack(alert_id: Annotated[str, typer.Argument(metavar="ID", help="the alert's id")],
        by: Annotated[str | None, typer.Option(
            help="who acknowledges it (default: your login name)")] = None,
        note: Annotated[str, typer.Option(help="what was done about it")] = "") -> None:
    """Acknowledge an alert: it leaves `alerts --open`; the timeline says who and when."""
    who = (by or _me()).strip()
    with user_errors():
        if not alert_id.strip().isdigit() or not 1 <= int(alert_id) <= 2_147_483_647:
            raise CliError(f"an alert id is a number (see `duecourse alerts`), got "
                           f"{alert_id!r}")
        if not 1 <= len(who) <= 128:
            raise CliError("--by must be 1 to 128 characters")
        if len(note) > 1000:
            raise CliError(f"--note is at most 1000 characters, got {len(note)}")

    async def go() -> Acknowledgement:
        async with ledger() as book:
            try:
                return await acknowledge(book, int(alert_id), Actor(kind=ActorKind.OPS,
                                                                     id=who), note.strip())
            except AlertNotFound as err:
                raise CliError(f"{err} (see `duecourse alerts`)") from None

    done = run(go())
    sentence = done.sentence[0].upper() + done.sentence[1:] + "."
    console.print(escape(sentence), style="yellow" if done.already else None, highlight=False)


def _filters(stage: str | None, segment: str | None, agent: str | None,
             needs_attention: bool, all_: bool) -> LoanFilters:
    try:
        return LoanFilters(
            stage=parse_choice(Stage, stage, "stage") if stage else None,
            segment=parse_choice(Segment, segment, "segment") if segment else None,
            agent=agent, needs_attention=needs_attention, open_only=not all_)
    except InvalidFilter as err:
        raise CliError(str(err)) from None


def _balance(r: PortfolioRow) -> str:
    if r.outstanding is not None:
        return str(r.outstanding)
    return f"~{r.indexed_outstanding} (indexed)" if r.indexed_outstanding else "-"


def _next(r: PortfolioRow, now: datetime) -> tuple[str, str]:
    if r.next_action is None or r.next_action_at is None:
        return escape(r.note or "-"), "-"
    at = r.next_action_at
    return escape(r.next_action), f"{when(at, '')} ({relative(at, now)})"


def loans(stage: Annotated[str | None, typer.Option(
              help="REMINDER, NEGOTIATION or LEGAL")] = None,
          segment: Annotated[str | None, typer.Option(
              help="self_cure, cant_pay, wont_pay or unreachable")] = None,
          agent: Annotated[str | None, typer.Option(help="the assigned agent")] = None,
          needs_attention: Annotated[bool, typer.Option(
              "--needs-attention", help="only loans that cannot go on by themselves")]
          = False,
          all_: Annotated[bool, typer.Option("--all", help="include closed loans")] = False,
          limit: Annotated[int, typer.Option(min=1, max=500, help="at most this many loans")]
          = 50,
          as_json: Json = False) -> None:
    """The portfolio from Temporal's search: stage, DPD, balance, next action and when.

    Open loans unless --all; figures from each loan's status (a few queries at a time)."""
    with user_errors():
        filters = _filters(stage, segment, agent, needs_attention, all_)
    cfg = settings()

    async def go() -> list[PortfolioRow]:
        return await portfolio_rows(await temporal(cfg), filters, limit=limit)

    rows = run(go())
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    if not rows:
        console.print(f"No loans match (asked Temporal at {cfg.temporal_address}, namespace "
                      f"{cfg.temporal_namespace}; search attributes lag the workflows by a "
                      "moment).", highlight=False)
        return
    now = datetime.now(UTC)
    table = Table(title=_count(len(rows), "loan"), title_justify="left")
    for column in ("loan", "stage", "DPD", "balance", "next action", "at (UTC)", "agent",
                   "segment"):
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("DPD", "balance") else "left")
    for r in rows:
        if r.outcome:
            stage_text = f"[dim]{r.outcome}[/]"
        else:
            stage_text = f"[{STAGE_STYLE.get(r.stage or '', 'white')}]{r.stage or '-'}[/]"
        if r.needs_attention:
            stage_text += " [bold red]needs attention[/]"
        action, at = _next(r, now)
        table.add_row(escape(r.loan_id), stage_text,
                      "-" if r.days_past_due is None else str(r.days_past_due),
                      escape(_balance(r)), action, at, escape(r.assigned_agent or "-"),
                      escape(r.segment or "-"))
    console.print(table)
