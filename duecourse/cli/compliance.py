"""Compliance commands: audit the ledger, lint templates, record protections, ask first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from duecourse.audit import AuditReport, run_audit
from duecourse.cli.common import (
    CliError,
    Json,
    LoanId,
    Note,
    Reason,
    console,
    ledger,
    parse_instant,
    run,
    temporal,
    user_errors,
)
from duecourse.cli.render import when
from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.compliance import HoldKind, InconvenientTime, Purpose, RecipientKind, requests
from duecourse.domain.policy import Channel
from duecourse.domain.rules import RulesMigration
from duecourse.snapshots import take_snapshot
from duecourse.templates import lint_templates

AgentId = Annotated[str, typer.Option("--agent", help="who records it (kept in the ledger)")]


def _actor(agent: str) -> Actor:
    return Actor(kind=ActorKind.AGENT, id=agent)


def audit(since: Annotated[str | None, typer.Option(
              help="only contacts at or after this ISO 8601 time")] = None,
          as_json: Json = False,
          ) -> None:
    """Re-check every contact in the ledger against the rules; exit 1 on any violation."""
    start = None if since is None else parse_instant(since, "--since")

    async def go() -> AuditReport:
        async with ledger() as book:
            return await run_audit(book, start)

    report = run(go())
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_report(report)
    raise typer.Exit(0 if report.clean else 1)


def _print_report(report: AuditReport) -> None:
    contacts, cases = report.contacts_checked, report.cases
    console.print(f"Audited {contacts} contact{'s' * (contacts != 1)} in {cases} "
                  f"case{'s' * (cases != 1)}"
                  + (f" since {when(report.since)}" if report.since else ""), highlight=False)
    table = Table(title="Engine decisions", title_justify="left")
    table.add_column("decision / rule")
    table.add_column("count", justify="right")
    for key, count in report.decisions.items():
        table.add_row(escape(key), str(count))
    console.print(table)
    if report.unresolved_sends:
        console.print(f"[yellow]{report.unresolved_sends} send(s) not known sent or not[/] "
                      "(in flight now, or stopped after a channel call that may have got "
                      "through: ask the provider about their idempotency keys)")
    if report.clean:
        console.print("[bold green]No violations.[/]")
        return
    n = len(report.violations)
    found = Table(title=f"{n} violation{'s' * (n != 1)}", title_justify="left",
                  title_style="bold red")
    for column in ("loan", "at", "channel", "recipient", "rule", "detail"):
        found.add_column(column)
    for v in report.violations:
        found.add_row(escape(v.loan_id), when(v.at), v.channel, escape(v.recipient),
                      f"[{v.code}] {escape(v.rule)}", escape(v.detail))
    console.print(found)


def lint() -> None:
    """Check every template and required wording for banned phrases; exit 1 if any."""
    problems = lint_templates()
    for p in problems:
        console.print(f"[red]{escape(p.where)}[/]: {escape(repr(p.phrase))} - "
                      f"{escape(p.rule)}", highlight=False)
    if problems:
        raise typer.Exit(1)
    console.print("[green]Templates are clean.[/]")


def preferences(loan_id: LoanId, agent: AgentId,
                opt_out: Annotated[list[Channel] | None, typer.Option(
                    help="channel the borrower opts out of (repeatable)")] = None,
                opt_in: Annotated[list[Channel] | None, typer.Option(
                    help="channel the borrower opts back in to (repeatable)")] = None,
                inconvenient: Annotated[list[str] | None, typer.Option(
                    help="local HH:MM-HH:MM the borrower names inconvenient (repeatable; "
                         "replaces the list)")] = None,
                cease: Annotated[bool, typer.Option(
                    help="the borrower asked us to cease communication")] = False,
                attorney: Annotated[str | None, typer.Option(
                    help="'NAME|CONTACT' of the attorney now representing the borrower")]
                = None,
                esign_consent: Annotated[bool, typer.Option(
                    "--esign-consent", help="the borrower consented to electronic notices "
                    "(E-SIGN, 12 CFR 1006.42)")] = False,
                workplace_prohibited: Annotated[bool, typer.Option(
                    "--workplace-prohibited", help="the borrower's employer prohibits "
                    "contact at work (12 CFR 1006.6(b)(3))")] = False,
                employer_provided: Annotated[list[str] | None, typer.Option(
                    "--employer-provided", help="an email address the employer provided: "
                    "never emailed (12 CFR 1006.22(f)(3); repeatable)")] = None,
                note: Note = "",
                ) -> None:
    """Record the borrower's contact wishes: opt-outs, inconvenient times, cease, attorney,
    E-SIGN consent, an employer's ban on contact at work, employer-provided addresses."""
    windows = None
    if inconvenient is not None:
        windows = []
        for text in inconvenient:
            try:
                start, end = (datetime.strptime(p.strip(), "%H:%M").time()  # noqa: DTZ007
                              for p in text.split("-"))
            except ValueError:
                raise CliError(f"--inconvenient {text!r}: use HH:MM-HH:MM") from None
            windows.append(InconvenientTime(start=start, end=end))
    lawyer = None
    if attorney is not None:
        name, _, contact = attorney.partition("|")
        lawyer = requests.Attorney(name=name.strip(), contact=contact.strip() or "-")
    with user_errors():
        change = requests.PreferenceChange(
            opt_out=opt_out or [], opt_in=opt_in or [], inconvenient_times=windows,
            cease_communication=cease, attorney=lawyer, esign_consent=esign_consent,
            workplace_contact_prohibited=workplace_prohibited,
            employer_provided=employer_provided or [], actor=_actor(agent), note=note)

    async def go() -> None:
        client = await temporal()
        await client.update_contact_preferences(loan_id, change)
        console.print(f"Recorded for loan {escape(loan_id)}.", highlight=False)

    run(go())


def dispute(loan_id: LoanId, agent: AgentId,
            verified: Annotated[bool, typer.Option(
                "--verified/--opened", help="verification sent, or a dispute opened")],
            reason: Annotated[str, typer.Option(help="what the borrower disputes / sent")],
            written: Annotated[bool, typer.Option(
                "--written", help="the dispute was made in writing (US law stops collection "
                "only for a written dispute within the validation period)")] = False,
            as_json: Json = False,
            ) -> None:
    """A dispute freezes collection until verification is sent (US law: a written dispute
    within the validation period; the policy may freeze on any)."""
    with user_errors():
        change = requests.DisputeChange(action="verified" if verified else "opened",
                                        actor=_actor(agent), reason=reason, written=written)

    async def go() -> None:
        client = await temporal()
        await client.dispute(loan_id, change)
        s = await client.status(loan_id)
        if as_json:
            typer.echo(s.model_dump_json(indent=2))
            return
        how = " (in writing)" if change.written else ""
        console.print(f"Dispute {change.action}{how} for loan {escape(loan_id)}; "
                      f"frozen: {escape(s.frozen or 'no')}", highlight=False)

    run(go())


def hold(loan_id: LoanId, agent: AgentId,
         kind: Annotated[HoldKind, typer.Option(help="kind of hold")],
         end: Annotated[bool, typer.Option("--end/--start", help="end or start it")] = False,
         days: Annotated[int | None, typer.Option(help="length (hardship holds)")] = None,
         reference: Annotated[str, typer.Option(help="e.g. the Insolvency Service ref")] = "",
         ) -> None:
    """Start or end a hardship, breathing-space, mental-health-crisis or mental-capacity
    hold. Ending a GB crisis moratorium means its treatment ended: it runs on 30 days."""
    with user_errors():
        request = requests.HoldRequest(action="end" if end else "start", kind=kind,
                                       days=days, reference=reference, actor=_actor(agent))

    async def go() -> None:
        s = await (await temporal()).hold(loan_id, request)
        console.print(f"Hold {request.action}ed for loan {escape(loan_id)}; frozen: "
                      f"{escape(s.frozen or 'no')}", highlight=False)

    run(go())


def life_event(loan_id: LoanId, agent: AgentId,
               kind: Annotated[str, typer.Option(help="bankruptcy or deceased")],
               reference: Annotated[str, typer.Option(help="case or certificate ref")] = "",
               ) -> None:
    """Bankruptcy or death: all contact stops."""
    if kind not in ("bankruptcy", "deceased"):
        raise CliError("--kind must be bankruptcy or deceased")
    event = requests.LifeEvent(kind=kind, actor=_actor(agent),  # type: ignore[arg-type]
                               reference=reference)

    async def go() -> None:
        await (await temporal()).life_event(loan_id, event)
        console.print(f"Recorded {kind} for loan {escape(loan_id)}.", highlight=False)

    run(go())


def may_contact(loan_id: LoanId, agent: AgentId,
                channel: Annotated[Channel, typer.Option(help="how you want to contact")],
                third_party: Annotated[bool, typer.Option(
                    help="contact someone other than the borrower (location only)")] = False,
                guarantor: Annotated[bool, typer.Option(
                    help="contact the loan's guarantor (give --address)")] = False,
                address: Annotated[str | None, typer.Option(
                    help="the number or address to use (default: the borrower's)")] = None,
                person: Annotated[str | None, typer.Option(
                    help="who, when a guarantor or third party has several numbers (the "
                         "call limits count per person)")] = None,
                at_workplace: Annotated[bool, typer.Option(
                    "--at-workplace", help="a call to a work number or a visit at work")]
                = False,
                collectors: Annotated[int, typer.Option(help="people on a visit")] = 1,
                dial: Annotated[bool, typer.Option(
                    "--dial", help="voice: when allowed, place the call through the dialer "
                    "(DUECOURSE_VOICE_URL) with the decision attached")] = False,
                ) -> None:
    """Ask before calling or visiting: allowed now (and logged), or deferred / blocked."""
    if dial:
        if channel is not Channel.VOICE or at_workplace or collectors != 1:
            raise CliError("--dial places a voice call: use --channel voice, without "
                           "--at-workplace or --collectors")
        _dial(loan_id, agent, RecipientKind.THIRD_PARTY if third_party else (
            RecipientKind.GUARANTOR if guarantor else RecipientKind.DEBTOR), address, person)
        return
    kind = RecipientKind.THIRD_PARTY if third_party else (
        RecipientKind.GUARANTOR if guarantor else RecipientKind.DEBTOR)
    with user_errors():
        if third_party and guarantor:
            raise CliError("--third-party and --guarantor exclude each other")
        request = requests.ContactRequest(
            channel=channel, actor=_actor(agent), collectors=collectors, recipient_kind=kind,
            purpose=Purpose.LOCATION if third_party else Purpose.COLLECTION,
            discloses_debt=not third_party, address=address, person=person,
            at_workplace=at_workplace)

    async def go() -> None:
        decision = await (await temporal()).request_contact(loan_id, request)
        text = {"allowed": "[bold green]allowed now[/] (logged)",
                "deferred": f"[yellow]not now[/]: earliest {when(decision.until)}"
                if decision.until else "[yellow]not now[/]",
                "blocked": "[bold red]blocked[/]"}[decision.verdict]
        console.print(f"{channel.value} contact for loan {escape(loan_id)}: {text}"
                      + (f"\n  {escape(decision.detail)} [{escape(decision.rule)}]"
                         if decision.code else ""), highlight=False)
        if not decision.allowed:
            raise typer.Exit(1)

    run(go())


def _dial(loan_id: str, agent: str, kind: RecipientKind, address: str | None,
          person: str | None) -> None:
    """`may-contact --dial`: the API's click to dial (duecourse.desk_calls)."""
    from duecourse.channels.routing import ChannelSettingError
    from duecourse.cli.common import settings
    from duecourse.desk_calls import DialerFailed, place_call, verdict_sentence

    async def go() -> None:
        async with ledger() as book:
            try:
                placed = await place_call(await temporal(), book, settings(), loan_id,
                                          _actor(agent), address=address,
                                          recipient_kind=kind, person=person)
            except ChannelSettingError as err:
                raise CliError(str(err)) from None
            except DialerFailed as err:
                raise CliError(f"{err} - the engine allowed and logged the call: dial by "
                               "hand or ask again") from None
        text = verdict_sentence(placed.decision)
        if placed.call_id:
            text += f"; the dialer is calling (call {placed.call_id})"
        elif placed.by_hand:
            text += "; no dialer is configured (DUECOURSE_VOICE_URL): dial by hand"
        console.print(f"voice call for loan {escape(loan_id)}: {escape(text)}",
                      highlight=False)
        if not placed.decision.allowed:
            raise typer.Exit(1)

    with user_errors():
        run(go())


def migrate_rules(loan_id: LoanId,
                  reason: Reason,
                  who: Annotated[str, typer.Option("--by", help="the ops person doing it")],
                  ) -> None:
    """Move a running loan to the rule pack, holidays and time zone rules installed now.

    A loan keeps the rules it was handed over with (so upgrades never rewrite its past);
    this is the explicit, recorded way to give it newer ones.
    """
    async def go() -> None:
        client = await temporal()
        basis = await client.rules(loan_id)
        snapshot = take_snapshot(basis.jurisdiction, basis.zone, basis.overrides,  # type: ignore[arg-type]
                                 datetime.now(UTC))
        status = await client.migrate_rules(loan_id, RulesMigration(
            rules=snapshot, actor=Actor(kind=ActorKind.OPS, id=who), reason=reason))
        before = basis.current.pack.title if basis.current else "the pack of its start"
        console.print(f"Loan {escape(loan_id)} now runs on {escape(snapshot.pack.title)} "
                      f"(was {escape(before)}); rule pack {escape(status.rule_pack)}.",
                      highlight=False)

    run(go())
