"""`duecourse retention ...` (pseudonymise what is kept past its period, manage the key,
verify a pseudonym) and `duecourse export BORROWER_ID` (a borrower's access request)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from duecourse.cli.common import CliError, console, fail, ledger, parse_date, run, settings
from duecourse.store.borrower_export import AmbiguousBorrower, UnknownBorrower, export_borrower
from duecourse.store.pseudonyms import (
    DEFAULT_KEY_FILE,
    RetentionKeyError,
    add_key,
    keys_from_settings,
)
from duecourse.store.retention import RetentionError, RunSummary, retention_periods, run_retention

commands = typer.Typer(help="Retention: pseudonymise closed cases kept past their period.",
                       no_args_is_help=True)


@commands.command("run")
def run_command(
        dry_run: Annotated[bool, typer.Option("--dry-run", help="count what is due; change "
                                              "nothing")] = False,
        as_of: Annotated[str | None, typer.Option(help="the day to judge retention on "
                                                  "(YYYY-MM-DD; default: today, UTC)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Pseudonymise the personal data of closed cases past their retention period."""
    today = datetime.now(UTC).date()
    day = today if as_of is None else parse_date(as_of, "--as-of")
    if day > today and not dry_run:
        fail(f"--as-of {day} is in the future: a real run judges retention on today or "
             "earlier (use --dry-run to see what will be due)")
    cfg = settings()
    try:
        periods = retention_periods(cfg.retention_years)
        keys = None if dry_run else keys_from_settings(cfg)
    except (RetentionError, RetentionKeyError) as err:
        fail(str(err))

    async def go() -> RunSummary:
        async with ledger(cfg) as book:
            return await run_retention(book.engine, keys, periods, day, dry_run)

    summary = run(go())
    if as_json:
        typer.echo(json.dumps(_summary_json(summary), indent=2))
        return
    verb = "would pseudonymise" if dry_run else "pseudonymised"
    console.print(f"Retention {summary.run_id} as of {day}: {verb} {summary.pseudonymised} "
                  f"case{'s' * (summary.pseudonymised != 1)}"
                  + ("" if dry_run else f" ({summary.values_replaced} values, "
                     f"{summary.loans_completed} loans complete)"), highlight=False)
    console.print(f"kept: {summary.open_cases} open, {summary.loan_still_open} with an open "
                  f"case on their loan, {summary.within_period} within their period; "
                  f"{summary.already_done} pseudonymised before", highlight=False)
    if summary.unmatched:
        console.print(f"{verb} {summary.unmatched} replies and receipts of no loan, older "
                      "than the longest period", highlight=False)
    for jurisdiction, count in sorted(summary.no_period.items()):
        console.print(f"[yellow]kept {count} case(s) in {jurisdiction}: no retention period "
                      "(set DUECOURSE_RETENTION_YEARS)[/]", highlight=False)


def _summary_json(summary: RunSummary) -> dict[str, object]:
    return {"run_id": summary.run_id, "as_of": summary.as_of.isoformat(),
            "dry_run": summary.dry_run, "pseudonymised": summary.pseudonymised,
            "values_replaced": summary.values_replaced,
            "loans_completed": summary.loans_completed, "already_done": summary.already_done,
            "kept_open": summary.open_cases, "kept_loan_open": summary.loan_still_open,
            "kept_within_period": summary.within_period,
            "kept_no_period": dict(summary.no_period), "cases": summary.cases,
            "unmatched_inbound": summary.unmatched}


@commands.command("new-key")
def new_key(file: Annotated[Path | None, typer.Option(
        help=f"key file to append to (default: the setting, else <data dir>/"
             f"{DEFAULT_KEY_FILE})")] = None) -> None:
    """Add a new pseudonymisation key (new pseudonyms use it; older ones still verify)."""
    cfg = settings()
    path = file or cfg.retention_key_file or cfg.data_dir / DEFAULT_KEY_FILE
    try:
        key_id = add_key(path)
    except RetentionKeyError as err:
        fail(str(err))
    console.print(f"added key {key_id} to {path} (keep a copy where auditors can use it: "
                  "without it no pseudonym can be verified)", highlight=False)


@commands.command("verify")
def verify(value: Annotated[str, typer.Argument(help="the original value, exactly as it "
                                                "was stored (phones in E.164)")],
           pseudonym: Annotated[str, typer.Argument(help="hmac:<key id>:<hex> from the "
                                                    "ledger")]) -> None:
    """Check that a pseudonym in the ledger was made from VALUE; exit 1 if not."""
    try:
        same = keys_from_settings(settings()).matches(value, pseudonym)
    except RetentionKeyError as err:
        fail(str(err))
    if not same:
        fail("the pseudonym was not made from that value")
    console.print("[green]matches[/]")


def export(borrower_id: Annotated[str, typer.Argument(help="the platform's borrower id")],
           out: Annotated[Path | None, typer.Option(
               help="write the JSON here (readable by you only); default: stdout")] = None,
           platform: Annotated[str | None, typer.Option(
               help="the platform whose borrower this is (needed when platforms share the "
                    "borrower id)")] = None) -> None:
    """A borrower's data for an access request (GDPR Art. 15, PIPL), as JSON."""

    async def go() -> dict[str, object]:
        async with ledger() as book:
            try:
                return await export_borrower(book.engine, borrower_id, datetime.now(UTC),
                                             platform)
            except (UnknownBorrower, AmbiguousBorrower) as err:
                raise CliError(str(err)) from None

    document = run(go())
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    loans = document["loans"]
    count = len(loans) if isinstance(loans, list) else 0
    console.print(f"wrote {count} loan{'s' * (count != 1)} of borrower {borrower_id} to {out}",
                  highlight=False)

