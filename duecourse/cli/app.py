"""The `duecourse` command line: one typer app assembled from small command modules."""

from __future__ import annotations

import typer

from duecourse.cli import admin, compliance, desk, dev, loans, ops, service
from duecourse.process import run_and_exit

app = typer.Typer(
    name="duecourse",
    help="Loan collection on Temporal: run it, feed it loans, and act on them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

app.command(rich_help_panel="Run")(dev.dev)
app.command(rich_help_panel="Run")(dev.env)
app.command(rich_help_panel="Run")(admin.worker)
app.command(rich_help_panel="Run")(service.api)
app.add_typer(service.keys, name="keys", rich_help_panel="Run")
app.add_typer(admin.db, name="db", rich_help_panel="Run")
app.command(rich_help_panel="Loans")(admin.start)
app.command(rich_help_panel="Loans")(loans.status)
app.command(rich_help_panel="Loans")(loans.timeline)
app.command(rich_help_panel="Actions")(loans.pay)
app.command(rich_help_panel="Actions")(loans.promise)
app.command(rich_help_panel="Actions")(loans.outcome)
app.command("legal-decision", rich_help_panel="Actions")(loans.legal_decision)
app.command(rich_help_panel="Actions")(loans.cancel)
app.command(rich_help_panel="Agent desk")(desk.plan)
app.command(rich_help_panel="Agent desk")(desk.settle)
app.command("settlement-decision", rich_help_panel="Agent desk")(desk.settlement_decision)
app.command(rich_help_panel="Agent desk")(desk.assign)
app.command(rich_help_panel="Agent desk")(desk.tasks)
app.add_typer(desk.task, name="task", rich_help_panel="Agent desk")
app.command("case-event", rich_help_panel="Agent desk")(desk.case_event)
app.command(rich_help_panel="Compliance")(compliance.preferences)
app.command(rich_help_panel="Compliance")(compliance.dispute)
app.command(rich_help_panel="Compliance")(compliance.hold)
app.command("life-event", rich_help_panel="Compliance")(compliance.life_event)
app.command("may-contact", rich_help_panel="Compliance")(compliance.may_contact)
app.command(rich_help_panel="Compliance")(compliance.audit)
app.command("lint-templates", rich_help_panel="Compliance")(compliance.lint)
app.command("migrate-rules", rich_help_panel="Compliance")(compliance.migrate_rules)
app.command(rich_help_panel="Ops")(ops.messages)
app.command(rich_help_panel="Ops")(ops.alerts)
app.add_typer(ops.alert, name="alert", rich_help_panel="Ops")
app.command("loans", rich_help_panel="Ops")(ops.loans)
app.command(rich_help_panel="Policies")(admin.policies)

loan = typer.Typer(help="One loan: status and the actions agents take (also top level).",
                   no_args_is_help=True)
for name, command in (("status", loans.status), ("timeline", loans.timeline),
                      ("pay", loans.pay), ("promise", loans.promise), ("plan", desk.plan),
                      ("settle", desk.settle), ("dispute", compliance.dispute),
                      ("outcome", loans.outcome), ("cancel", loans.cancel)):
    loan.command(name)(command)
app.add_typer(loan, name="loan", rich_help_panel="Loans")
app.command(rich_help_panel="Policies")(admin.policy)


def main() -> None:
    """Console-script entry point; exits without interpreter finalization (see
    duecourse.process) so a finished command can never crash on the way out."""
    run_and_exit(app)
