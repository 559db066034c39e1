"""`duecourse payments reconcile`: the payment provider's books against the ledger for one
UTC day (duecourse.payments.reconcile); exit code 1 when they differ, so a daily job can
alert on it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape

from duecourse.cli.common import CliError, console, ledger, parse_date, run, settings
from duecourse.payments.base import ProviderError
from duecourse.payments.providers import PaymentSettingsError, provider_from_settings
from duecourse.payments.reconcile import Reconciliation
from duecourse.payments.reconcile import reconcile as compare

commands = typer.Typer(help="Payments borrowers make through the payment provider.",
                       no_args_is_help=True)


async def _reconcile(day_text: str | None) -> Reconciliation:
    cfg = settings()
    try:
        provider = provider_from_settings(cfg)
    except PaymentSettingsError as err:
        raise CliError(str(err)) from None
    if provider is None:
        raise CliError("no payment provider is configured (DUECOURSE_PAYMENT_PROVIDER is "
                       "none): there is nothing to reconcile")
    day = parse_date(day_text, "--date") if day_text else \
        (datetime.now(UTC) - timedelta(days=1)).date()
    async with ledger(cfg) as books:
        try:
            return await compare(provider, books.engine, day)
        except ProviderError as err:
            raise CliError(str(err)) from None


@commands.command("reconcile")
def reconcile_command(
        date: Annotated[str | None, typer.Option(
            "--date", help="the UTC day, YYYY-MM-DD; default yesterday")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List provider payments the ledger does not know, and ledger payments the provider
    does not show as paid."""
    report = run(_reconcile(date))
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        console.print(f"{report.provider} on {report.day}: {report.provider_paid} paid at the "
                      f"provider, {report.ledger_paid} received by loans")
        for title, rows in (("Paid at the provider, unknown to the ledger",
                             report.unknown_to_ledger),
                            ("In the ledger, not paid at the provider",
                             report.unknown_to_provider)):
            console.print(f"{title}: {len(rows) or 'none'}")
            for d in rows:
                console.print(f"  {escape(d.reference)}  {d.amount.amount} "
                              f"{d.amount.currency}  {escape(d.why)}", highlight=False)
    if not report.clean:
        raise typer.Exit(1)
