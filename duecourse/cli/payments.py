"""`duecourse payments reconcile`: the payment provider's books against the ledger for one
UTC day (duecourse.payments.reconcile); exit code 1 when they differ, so a daily job can
alert on it. `duecourse payments schedule`: the Temporal Schedule that runs it every day
by itself, each difference an ops alert (duecourse.payments.schedule)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape
from temporalio.service import RPCError, RPCStatusCode

from duecourse.cli.common import CliError, console, ledger, parse_date, run, settings, temporal
from duecourse.payments.base import ProviderError
from duecourse.payments.providers import PaymentSettingsError, provider_from_settings
from duecourse.payments.reconcile import Reconciliation
from duecourse.payments.reconcile import reconcile as compare
from duecourse.payments.schedule import ensure_schedule
from duecourse.temporal.reconciliation import RECONCILIATION_SCHEDULE

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


@dataclass
class ScheduleView:
    created: bool
    spec: str
    paused: bool
    note: str
    task_queue: str
    next_runs: list[str]
    recent: list[str]


async def _schedule(create: bool) -> ScheduleView:
    cfg = settings()
    client = (await temporal(cfg)).client
    created = create and await ensure_schedule(client, cfg.task_queue) == "created"
    try:
        d = await client.get_schedule_handle(RECONCILIATION_SCHEDULE).describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise CliError(f"no schedule {RECONCILIATION_SCHEDULE} on this Temporal "
                           "namespace: a worker with a payment provider creates it when "
                           "it starts, or run `duecourse payments schedule --create`") \
                from None
        raise
    cals = d.schedule.spec.calendars
    spec = ", ".join(f"daily at {c.hour[0].start:02d}:{c.minute[0].start:02d} "
                     f"{d.schedule.spec.time_zone_name or 'UTC'}" for c in cals) or \
        ", ".join(d.schedule.spec.cron_expressions) or "custom (see the Temporal UI)"
    action = d.schedule.action
    return ScheduleView(
        created=created, spec=spec, paused=d.schedule.state.paused,
        note=d.schedule.state.note or "",
        task_queue=getattr(action, "task_queue", None) or "",
        next_runs=[t.isoformat() for t in d.info.next_action_times[:3]],
        recent=[f"{a.scheduled_at.isoformat()} {getattr(a.action, 'workflow_id', '')}"
                for a in d.info.recent_actions[-3:]])


@commands.command("schedule")
def schedule_command(
        create: Annotated[bool, typer.Option(
            "--create", help="create it when missing (a worker with a payment provider "
                             "creates it when it starts)")] = False) -> None:
    """Show the Temporal Schedule that reconciles yesterday's payments every day and raises
    an ops alert per difference."""
    view = run(_schedule(create))
    state = "paused" if view.paused else "active"
    console.print(f"{RECONCILIATION_SCHEDULE}: {view.spec}, {state}, task queue "
                  f"{escape(view.task_queue)}" + (" (created now)" if view.created else ""),
                  highlight=False)
    console.print(f"Next runs: {', '.join(view.next_runs) or 'none'}", highlight=False)
    console.print(f"Recent runs: {'; '.join(view.recent) or 'none yet'}", highlight=False)
