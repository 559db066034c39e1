"""Commands on one loan: look at it (status, timeline) and act on it (pay, promise, ...)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from temporalio.service import RPCError

from duecourse.cli.common import (
    CliError,
    Currency,
    Json,
    LoanId,
    Note,
    Reason,
    console,
    err_console,
    ledger,
    parse_amount,
    parse_date,
    parse_instant,
    run,
    settings,
    temporal,
    user_errors,
)
from duecourse.cli.render import status_view, timeline_table, when
from duecourse.domain.actor import Role
from duecourse.domain.case import commands
from duecourse.domain.compliance import RecipientKind
from duecourse.domain.contact.outcomes import ReportCheck
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel
from duecourse.payments.providers import reserved_reference
from duecourse.temporal.client import (
    PaymentFate,
    PaymentOutcome,
    PaymentTrace,
    PaymentUnconfirmed,
)


def _currency(given: str | None, loan_currency: str) -> str:
    """The loan's currency unless the operator named one; a mismatch is caught here,
    before the workflow would record it as a rejected payment."""
    if given and given.strip().upper() != loan_currency:
        raise CliError(f"the loan is in {loan_currency}, not {given.strip().upper()}")
    return loan_currency


def status(loan_id: LoanId, as_json: Json = False) -> None:
    """Where a loan stands: stage, balance, next action, promises, stage history."""

    async def go() -> None:
        s = await (await temporal()).status(loan_id)
        if as_json:
            typer.echo(s.model_dump_json(indent=2))
        else:
            console.print(status_view(s))

    run(go())


def timeline(loan_id: LoanId, as_json: Json = False,
             limit: Annotated[int, typer.Option(min=1, help="at most this many entries")] = 1000,
             ) -> None:
    """Everything the ledger recorded for a loan, oldest first."""

    async def go() -> None:
        async with ledger() as book:
            items = await book.timeline(loan_id, limit=limit)
        if not items:
            raise CliError(f"no ledger entries for loan {loan_id}")
        if as_json:
            typer.echo(json.dumps([i.model_dump(mode="json") for i in items], indent=2,
                                  ensure_ascii=False))
        else:
            console.print(timeline_table(loan_id, items))

    run(go())


PAY_WAIT = 10.0
"""Seconds `pay` waits for a worker to apply the payment before saying it is received."""


def pay(loan_id: LoanId,
        amount: Annotated[str, typer.Option(help="amount paid, e.g. 250.00")],
        reference: Annotated[str, typer.Option(help="payment reference (deduplicates)")],
        currency: Currency = None,
        paid_at: Annotated[str | None, typer.Option(help="ISO 8601 with offset; default now")]
        = None, as_json: Json = False,
        wait: Annotated[float, typer.Option(
            min=0, help="seconds to wait for a worker to apply it (0: do not wait)")]
        = PAY_WAIT) -> None:
    """Report a payment the platform received; repeating a reference changes nothing.

    The answer holds while the worker is busy or down: the loan's history (which needs no
    worker) says whether the payment was applied, waits for a worker, or never arrived -
    then retrying with the same reference is safe. A reference applied before is a
    duplicate (exit 0), also once its payment closed the loan."""

    async def go() -> None:
        if (reserved := reserved_reference(settings(), reference)) is not None:
            raise CliError(f"{reserved} (a lost webhook: have the provider send it again)")
        value = parse_amount(amount)
        moment = parse_instant(paid_at, "--paid-at") if paid_at else datetime.now(UTC)
        client = await temporal()
        try:
            known = await client.payment_trace(loan_id, reference)
        except RPCError as err:  # nothing was sent yet
            raise CliError(f"payment {reference} was not reported: Temporal did not answer "
                           f"({err.status.name}: {err.message}); it is safe to retry with the "
                           "same reference") from err
        already = known.fate in (PaymentFate.APPLIED, PaymentFate.RECEIVED)
        money = Money(amount=value, currency=_currency(currency, known.currency))
        try:  # a duplicate is reported too: the ledger keeps every report of a reference
            outcome = await client.report_payment(loan_id, commands.PaymentReport(
                reference=reference, amount=money, paid_at=moment))
        except PaymentUnconfirmed as err:
            if not already:
                raise CliError(err.message) from err
            outcome = PaymentOutcome(reference, "duplicate", known.fate, known.sentence())
        if already or outcome.status == "duplicate":
            _paid(loan_id, "duplicate", outcome.trace or known, None, as_json)
            return
        trace = outcome.trace
        if outcome.status == "accepted" and wait and \
                (trace is None or trace.fate is PaymentFate.RECEIVED):
            with contextlib.suppress(RPCError, LookupError):  # it was received: say so
                trace = await client.await_payment(loan_id, reference, within=wait)
        if outcome.recovered_from:
            err_console.print(f"[yellow]note:[/] Temporal's reply was lost "
                              f"({escape(outcome.recovered_from)}); the loan's history tells "
                              "what happened", highlight=False, soft_wrap=True)
        _paid(loan_id, outcome.status, trace, money, as_json)
        if trace is not None and trace.fate is PaymentFate.RECEIVED and wait:
            err_console.print(f"[yellow]note:[/] no worker processed it within {wait:g} s: "
                              "is `duecourse worker` running?", highlight=False)

    run(go())


def _paid(loan_id: str, status_: str, trace: PaymentTrace | None, money: Money | None,
          as_json: bool) -> None:
    """Say what became of a payment: applied (with the balance), waiting for a worker,
    refused (exit 1), or a duplicate that changed nothing."""
    ref = trace.reference if trace else "?"
    fate = trace.fate if trace else PaymentFate.RECEIVED
    recorded = trace.recorded if trace else None
    if as_json:
        after = {"amount": str(recorded.outstanding_after), "currency": recorded.currency} \
            if recorded else None
        typer.echo(json.dumps({
            "status": status_, "payment": fate.value, "loan_id": loan_id,
            "reference": ref, "detail": trace.sentence() if trace else
            f"payment {ref} is being applied", "outstanding": after,
            "outcome": trace.outcome if trace and recorded else None}, indent=2))
    if fate is PaymentFate.REFUSED and trace is not None:
        raise CliError(trace.sentence())
    if as_json:
        return
    if status_ == "duplicate":
        console.print(f"Duplicate: {escape(trace.sentence() if trace else ref)}; nothing "
                      "changed.", highlight=False, soft_wrap=True)
        err_console.print(f"[yellow]note:[/] outstanding unchanged; a reference is applied "
                          f"once (see `duecourse timeline {escape(loan_id)}`)",
                          highlight=False, soft_wrap=True)
        return
    if recorded is None:
        what = f" of {money}" if money else ""
        console.print(f"Payment [bold]{escape(ref)}[/]{what} was received for loan "
                      f"{escape(loan_id)}; no worker has applied it yet, and it is applied as "
                      "soon as one does. Reporting it again changes nothing.",
                      highlight=False, soft_wrap=True)
        return
    before = Money(amount=recorded.outstanding_after + recorded.applied,
                   currency=recorded.currency)
    after = Money(amount=recorded.outstanding_after, currency=recorded.currency)
    paid = Money(amount=recorded.amount, currency=recorded.currency)
    console.print(f"Payment [bold]{escape(ref)}[/] of {paid} applied to loan "
                  f"{escape(loan_id)}. Outstanding: {before} -> [bold]{after}[/]",
                  highlight=False)
    if trace is not None and trace.outcome:
        console.print(f"Collection closed: [green]{trace.outcome}[/] "
                      f"({escape(trace.close_reason)})", highlight=False)


def promise(loan_id: LoanId,
            amount: Annotated[str, typer.Option(help="promised amount")],
            date_: Annotated[str, typer.Option("--date", help="promised date, YYYY-MM-DD "
                                               "(borrower-local)")],
            agent: Annotated[str, typer.Option(help="id of the agent who agreed it")],
            currency: Currency = None,
            note: Note = "",
            as_json: Json = False) -> None:
    """Record a promise to pay; the workflow's rules may refuse it (reason shown)."""

    async def go() -> None:
        value = parse_amount(amount)
        due = parse_date(date_, "--date")
        client = await temporal()
        loan_currency = (await client.status(loan_id)).outstanding.currency
        accepted = await client.promise_to_pay(loan_id, commands.PromiseRequest(
            amount=Money(amount=value, currency=_currency(currency, loan_currency)),
            due_date=due, actor=Role.AGENT.actor(agent), note=note))
        if as_json:
            typer.echo(accepted.model_dump_json(indent=2))
            return
        console.print(f"Promise [bold]{accepted.promise_id}[/] accepted: {accepted.amount} by "
                      f"{accepted.due_date}; checked at {when(accepted.check_at)}",
                      highlight=False)

    run(go())


def outcome(loan_id: LoanId,
            channel: Annotated[Channel, typer.Option(help="how the contact happened")],
            result: Annotated[commands.ContactResult, typer.Option(help="what came of it")],
            agent: Annotated[str, typer.Option(help="id of the agent reporting it")],
            note: Note = "",
            address: Annotated[str | None, typer.Option(
                help="the number or address used (default: the borrower's)")] = None,
            third_party: Annotated[bool, typer.Option(
                "--third-party", help="it was with a third party, not the borrower")] = False,
            guarantor: Annotated[bool, typer.Option(
                "--guarantor", help="it was with the loan's guarantor (their calls and "
                "conversations count for them)")] = False,
            person: Annotated[str | None, typer.Option(
                help="who, when a guarantor or third party has several numbers")] = None,
            recontact_invited: Annotated[bool, typer.Option(
                "--recontact-invited", help="the third party asked to be contacted again, "
                "or their earlier answer proved wrong (15 USC 1692b(3))")] = False,
            collectors: Annotated[int, typer.Option(
                min=1, max=10, help="people on a home visit (CN: at least 2)")] = 1,
            recording: Annotated[str | None, typer.Option(
                help="the call's recording: an https URL or the dialer's id")] = None,
            ) -> None:
    """Record what came of a contact (an engaged borrower moves the loan to negotiation)."""
    with user_errors():
        if third_party and guarantor:
            raise CliError("--third-party and --guarantor exclude each other")
        report = commands.ContactOutcomeReport(
            channel=channel, result=result, actor=Role.AGENT.actor(agent),
            note=note, address=address, third_party=third_party,
            recipient_kind=RecipientKind.GUARANTOR if guarantor else None, person=person,
            recontact_invited=recontact_invited, collectors=collectors, recording=recording)

    async def go() -> None:
        client = await temporal()
        check = await client.record_contact_outcome(loan_id, report)
        recorded = f"Recorded {result.value} via {channel.value} for loan {escape(loan_id)}"
        if check is None:  # no worker answered: the stage could not be told either
            console.print(f"{recorded}.", highlight=False)
            err_console.print("[yellow]note:[/] the contact could not be checked against the "
                              "rules now (no worker answered); the loan reviews it when it "
                              "runs, and the audit checks it", highlight=False, soft_wrap=True)
            return
        s = await client.status(loan_id)
        console.print(f"{recorded}; stage is now [bold]{s.stage}[/]", highlight=False)
        if check.broke_rules:  # recorded all the same (exit 0), but nobody may miss it
            err_console.print(_broke_rules(check), highlight=False, soft_wrap=True)

    run(go())


def _broke_rules(check: ReportCheck) -> str:
    """The warning an agent gets for a contact that broke rules: each rule and its legal
    reference, and where the violation went for review."""
    n = len(check.violations)
    head = "This contact broke a rule" if n == 1 else f"This contact broke {n} rules"
    lines = [f"[bold red]{head}[/] [red](at {escape(check.local_time)}):[/]"]
    lines += [f"[red]  - {escape(v.detail)} ({escape(v.rule)})[/]" for v in check.violations]
    where = f"task {escape(check.review_task)}" if check.review_task else "the ledger"
    lines.append(f"[yellow]It is recorded as a violation to review: {where}.[/]")
    return "\n".join(lines)


def legal_decision(loan_id: LoanId,
                   supervisor: Annotated[str, typer.Option(help="supervisor id")],
                   approve: Annotated[bool, typer.Option("--approve/--reject",
                                                         help="refer to litigation or not")],
                   reason: Reason,
                   ) -> None:
    """A supervisor approves or rejects referring the loan to litigation."""

    async def go() -> None:
        client = await temporal()
        result = await client.decide_legal_referral(loan_id, commands.LegalDecision(
            approve=approve, reason=reason, actor=Role.SUPERVISOR.actor(supervisor)))
        verdict = "approved" if result.approved else "rejected"
        console.print(f"Legal referral {verdict} for loan {escape(loan_id)}: stage "
                      f"{result.stage}, legal phase {result.legal_phase or '-'}",
                      highlight=False)

    run(go())


def cancel(loan_id: LoanId,
           reason: Annotated[str, typer.Option(help="why the loan leaves collection")],
           ) -> None:
    """Withdraw a loan from collection (e.g. restructured elsewhere)."""

    async def go() -> None:
        client = await temporal()
        await client.cancel(loan_id, commands.CancelRequest(reason=reason))
        console.print(f"Cancellation sent for loan {escape(loan_id)}.", highlight=False)

    run(go())
