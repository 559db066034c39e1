"""Agent desk commands: plans, settlements, assignment, the work queue, legal case events."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from duecourse.cli.common import (
    CliError,
    Json,
    LoanId,
    Note,
    OnlyLoan,
    Reason,
    console,
    ledger,
    parse_amount,
    parse_date,
    run,
    temporal,
)
from duecourse.cli.render import when
from duecourse.domain.actor import PERSON_ROLES, Role
from duecourse.domain.agreements import terms
from duecourse.domain.legal.case import CaseEvent, CaseEventKind
from duecourse.domain.money import Money, minor_units
from duecourse.domain.work.queue import TaskCompletion

By = Annotated[str, typer.Option("--by", help="your id (kept in the ledger)")]


def person_role(text: str) -> Role:
    """A role a person acts in: the CLI acts for people, never as a platform."""
    if text not in PERSON_ROLES:
        raise ValueError(f"{text!r} is not one of "
                         f"{', '.join(repr(r.value) for r in PERSON_ROLES)}.")
    return Role(text)


As = Annotated[Role, typer.Option("--role", help="the role you act in", parser=person_role,
                                  metavar=f"<{'|'.join(PERSON_ROLES)}>")]


def even_schedule(total: Decimal, count: int, first: date, every: int,
                  currency: str) -> list[terms.InstalmentSpec]:
    """`count` equal instalments, the last absorbing the rounding remainder."""
    if count < 1:
        raise CliError("--instalments must be at least 1")
    step = Decimal(1).scaleb(-minor_units(currency))
    part = (total / count).quantize(step, rounding="ROUND_DOWN")
    amounts = [part] * (count - 1) + [total - part * (count - 1)]
    return [terms.InstalmentSpec(due_date=first + timedelta(days=every * i),
                           amount=Money(amount=a, currency=currency))
            for i, a in enumerate(amounts)]


def plan(loan_id: LoanId, by: By,
         instalments: Annotated[int | None, typer.Option(
             help="split the outstanding balance into this many equal instalments")] = None,
         first: Annotated[str | None, typer.Option(help="first due date (YYYY-MM-DD)")] = None,
         every: Annotated[int, typer.Option(help="days between instalments")] = 30,
         schedule: Annotated[str | None, typer.Option(
             help="explicit 'YYYY-MM-DD:AMOUNT,...' instead of an even split")] = None,
         role: As = Role.AGENT,
         note: Note = "",
         as_json: Json = False) -> None:
    """Agree an instalment plan; the policy's limits decide (reason shown when refused)."""

    async def go() -> None:
        client = await temporal()
        status = await client.status(loan_id)
        currency = status.outstanding.currency
        if schedule:
            specs = []
            for part in schedule.split(","):
                day, _, amount = part.strip().partition(":")
                specs.append(terms.InstalmentSpec(
                    due_date=parse_date(day, "--schedule"),
                    amount=Money(amount=parse_amount(amount), currency=currency)))
        elif instalments and first:
            specs = even_schedule(status.outstanding.amount, instalments,
                                  parse_date(first, "--first"), every, currency)
        else:
            raise CliError("give --instalments and --first, or --schedule")
        accepted = await client.propose_plan(loan_id, terms.PlanProposal(
            instalments=specs, actor=role.actor(by), note=note))
        if as_json:
            typer.echo(accepted.model_dump_json(indent=2))
            return
        table = Table(title=f"Plan {accepted.plan_id} accepted for loan {escape(loan_id)} "
                            f"({accepted.total})", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("due")
        table.add_column("amount", justify="right")
        for item in accepted.instalments:
            table.add_row(str(item.number), str(item.due_date), f"{item.amount:,} {currency}")
        console.print(table)

    run(go())


def settle(loan_id: LoanId, by: By,
           amount: Annotated[str, typer.Option(help="what the borrower pays to settle")],
           pay_by: Annotated[str, typer.Option("--pay-by", help="YYYY-MM-DD")],
           role: As = Role.AGENT,
           note: Note = "",
           as_json: Json = False) -> None:
    """Offer a settlement: accepted within your limit, else it waits for a supervisor."""

    async def go() -> None:
        client = await temporal()
        currency = (await client.status(loan_id)).outstanding.currency
        result = await client.offer_settlement(loan_id, terms.SettlementOffer(
            amount=Money(amount=parse_amount(amount), currency=currency),
            pay_by=parse_date(pay_by, "--pay-by"), actor=role.actor(by), note=note))
        if as_json:
            typer.echo(result.model_dump_json(indent=2))
            return
        extra = (f"; waiting for a supervisor (task {result.task_id})"
                 if result.needs_approval else "")
        console.print(f"Settlement {result.settlement_id} {result.status.lower()}: "
                      f"{result.amount}, {result.discount:.1%} discount{extra}",
                      highlight=False)

    run(go())


def settlement_decision(loan_id: LoanId, by: By,
                        approve: Annotated[bool, typer.Option("--approve/--reject")],
                        reason: Reason,
                        ) -> None:
    """A supervisor approves or rejects a settlement beyond an agent's limit."""

    async def go() -> None:
        result = await (await temporal()).decide_settlement(
            loan_id, terms.SettlementDecision(approve=approve, reason=reason,
                                              actor=Role.SUPERVISOR.actor(by)))
        console.print(f"Settlement {result.settlement_id}: {result.status.lower()}",
                      highlight=False)

    run(go())


def assign(loan_id: LoanId, by: By,
           to: Annotated[str, typer.Option("--to", help="the agent who takes the loan")],
           role: As = Role.SUPERVISOR) -> None:
    """Assign or reassign a loan (agents may take unassigned loans for themselves)."""

    async def go() -> None:
        result = await (await temporal()).assign_agent(
            loan_id, terms.Assignment(agent_id=to, actor=role.actor(by)))
        before = f" (was {result.previous})" if result.previous else ""
        console.print(f"Loan {escape(loan_id)} assigned to {result.assigned_agent}{before}",
                      highlight=False)

    run(go())


def tasks(assignee: Annotated[str | None, typer.Option(help="an agent id or a queue")] = None,
          loan: OnlyLoan = None,
          all_: Annotated[bool, typer.Option("--all", help="include done and cancelled")]
          = False,
          as_json: Json = False) -> None:
    """The work queue, soonest due first."""

    async def go() -> list[dict[str, object]]:
        async with ledger() as book:
            return await book.tasks(assignee=assignee, status=None if all_ else "open",
                                    loan_id=loan)

    rows = run(go())
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=f"{len(rows)} task{'s' * (len(rows) != 1)}", title_justify="left")
    for column in ("task", "loan", "kind", "assignee", "due (UTC)", "status"):
        table.add_column(column, overflow="fold")
    for r in rows:
        state = str(r["status"]) + (" (escalated)" if r["escalated_at"] else "")
        table.add_row(escape(str(r["task_id"])), escape(str(r["loan_id"])), str(r["kind"]),
                      escape(str(r["assignee"])), when(r["due_at"], ""),  # type: ignore[arg-type]
                      state + (f": {r['outcome']}" if r["outcome"] else ""))
    console.print(table)


task = typer.Typer(help="Work on one task.", no_args_is_help=True)


@task.command("complete")
def complete(task_id: Annotated[str, typer.Argument(help="the task's id")], by: By,
             outcome: Annotated[str, typer.Option(help="what came of it")],
             role: As = Role.AGENT,
             note: Note = "") -> None:
    """Complete a task with its outcome; the loan's workflow acts on it."""

    async def go() -> None:
        async with ledger() as book:
            found = await book.task(task_id)
        if found is None:
            raise CliError(f"no task {task_id} in the ledger")
        loan_id = str(found["loan_id"])
        result = await (await temporal()).complete_task(loan_id, TaskCompletion(
            task_id=task_id, outcome=outcome, actor=role.actor(by), note=note))
        console.print(f"Task {result.task_id} ({result.kind}) done: {result.outcome}; loan "
                      f"{escape(loan_id)} is in {result.stage}", highlight=False)

    run(go())


def case_event(loan_id: LoanId, by: By,
               kind: Annotated[CaseEventKind, typer.Option(help="what happened")],
               on: Annotated[str, typer.Option("--on", help="YYYY-MM-DD")],
               amount: Annotated[str | None, typer.Option(help="judgment/recovered")] = None,
               outcome: Annotated[str | None, typer.Option(
                   help="when closed: paid, settled, written_off or withdrawn")] = None,
               details: Annotated[str, typer.Option(help="court, case number...")] = "",
               role: As = Role.OPS) -> None:
    """Record what happened in the legal case (filed, hearing, judgment, ...)."""

    async def go() -> None:
        client = await temporal()
        currency = (await client.status(loan_id)).outstanding.currency
        event = CaseEvent(kind=kind, occurred_on=parse_date(on, "--on"), actor=role.actor(by),
                          details=details, outcome=outcome,  # type: ignore[arg-type]
                          amount=Money(amount=parse_amount(amount), currency=currency)
                          if amount else None)
        case = await client.record_case_event(loan_id, event)
        console.print(f"{case.case_ref}: {kind.value} recorded; phase {case.phase}",
                      highlight=False)

    run(go())
