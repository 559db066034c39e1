"""The `duecourse` command line: one typer app assembled from small command modules."""

from __future__ import annotations

from collections.abc import Callable

import typer

from duecourse.cli import (
    admin,
    codec,
    compliance,
    desk,
    dev,
    experiments,
    loans,
    ops,
    payload_keys,
    payments,
    platforms,
    replies,
    report,
    retention,
    scorer,
    service,
)
from duecourse.process import run_and_exit

app = typer.Typer(
    name="duecourse",
    help="Loan collection on Temporal: run it, feed it loans, and act on them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _panel(panel: str, *commands: Callable[..., None]) -> None:
    """Register `commands` under one heading of `--help`, each named after its function
    (`legal_decision`: legal-decision)."""
    for command in commands:
        app.command(rich_help_panel=panel)(command)


_panel("Run", dev.dev, dev.env, admin.worker, service.api)
app.add_typer(service.keys, name="keys", rich_help_panel="Run")
app.add_typer(admin.db, name="db", rich_help_panel="Run")
app.add_typer(payload_keys.commands, name="payload-keys", rich_help_panel="Run")
_panel("Run", codec.codec_server, codec.codec_audit)
app.add_typer(platforms.commands, name="platforms", rich_help_panel="Run")
app.add_typer(retention.commands, name="retention", rich_help_panel="Run")
app.add_typer(scorer.commands, name="scorer", rich_help_panel="Run")
app.add_typer(payments.commands, name="payments", rich_help_panel="Ops")
_panel("Loans", admin.start, loans.status, loans.timeline)
_panel("Actions", loans.pay, loans.promise, loans.outcome, loans.legal_decision, loans.cancel)
_panel("Agent desk", desk.plan, desk.settle, desk.settlement_decision, desk.assign, desk.tasks)
app.add_typer(desk.task, name="task", rich_help_panel="Agent desk")
_panel("Agent desk", desk.case_event)
_panel("Compliance", compliance.preferences, compliance.dispute, compliance.hold,
       compliance.life_event, compliance.may_contact, compliance.audit)
app.command("lint-templates", rich_help_panel="Compliance")(compliance.lint)
_panel("Compliance", compliance.migrate_rules)
_panel("Compliance", retention.export)
_panel("Ops", ops.messages, ops.alerts)
app.add_typer(ops.alert, name="alert", rich_help_panel="Ops")
_panel("Ops", ops.loans)
_panel("Ops", replies.replies)
_panel("Ops", report.report)
_panel("Policies", admin.policies)

loan = typer.Typer(help="One loan: status and the actions agents take (also top level).",
                   no_args_is_help=True)
for name, command in (("status", loans.status), ("timeline", loans.timeline),
                      ("pay", loans.pay), ("promise", loans.promise), ("plan", desk.plan),
                      ("settle", desk.settle), ("dispute", compliance.dispute),
                      ("outcome", loans.outcome), ("cancel", loans.cancel)):
    loan.command(name)(command)
app.add_typer(loan, name="loan", rich_help_panel="Loans")
_panel("Policies", admin.policy)
app.add_typer(experiments.commands, name="experiment", rich_help_panel="Policies")
from duecourse.cli.simulate import simulate  # noqa: E402 - the strategy lab

_panel("Strategy lab", simulate)

def main() -> None:
    """Console-script entry point; exits without interpreter finalization (see
    duecourse.process) so a finished command can never crash on the way out."""
    run_and_exit(app)
