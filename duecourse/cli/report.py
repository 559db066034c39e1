"""`duecourse report`: the portfolio analytics (duecourse.lab.analytics) of a ledger, real
or simulated, as a table, as JSON (`--json`, the document the API serves) or as one
self-contained HTML file (`--html`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from duecourse.cli.common import (
    CliError,
    console,
    ledger,
    parse_date,
    run,
    settings,
    user_errors,
)
from duecourse.cli.common import ledger_url as ledger_url_of
from duecourse.lab.analytics import compute, scorers_for
from duecourse.lab.costs import CostsFileError, CostTable, load_costs
from duecourse.lab.figures import GroupBy, GroupFigures, PortfolioFigures, Rate

GROUPS: tuple[str, ...] = get_args(GroupBy)


def _rate(r: Rate) -> str:
    return "-" if r.value is None else f"{r.value:.1%}"


def _recovery(g: GroupFigures) -> str:
    return "\n".join(f"{'-' if r.rate is None else f'{r.rate:.1%}'} {r.currency}"
                     for r in g.recovery) or "-"


def _per_cure(g: GroupFigures) -> str:
    c = g.costs
    if c.contacts_per_cure is None or c.cost_per_cure is None:
        return "-"
    return f"{c.contacts_per_cure:.1f}, {c.cost_per_cure} {c.currency}"


def _flags(g: GroupFigures) -> str:
    complaints = g.complaints.disputes + g.complaints.opt_outs + g.complaints.cease_requests
    return (f"{complaints}, {sum(g.compliance.blocks_by_rule.values())}, "
            f"{g.compliance.audit_violations}")


COLUMNS = ("cured", "recovered", "kept", "reached", "per cure", "flags")


def _print(f: PortfolioFigures) -> None:
    since = f" for cases opened since {f.since}" if f.since else ""
    table = Table(title=f"Portfolio by {f.group_by}{since}", title_justify="left",
                  box=box.SIMPLE_HEAD, caption_justify="left", caption=(
                      "cured: share of cases paid or settled; recovered: share of the "
                      "amount handed over; kept: promises kept; reached: right-party "
                      "contacts per contact made; per cure: contacts and cost; flags: "
                      "complaints (disputes, opt-outs, cease requests), contacts blocked "
                      "by the rules, recorded rule breaches"))
    table.add_column(f"{f.group_by} (loans)", no_wrap=True)
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for g in [*f.groups, f.total]:
        table.add_row(f"{escape(g.key)} ({g.loans})", _rate(g.cure_rate), _recovery(g),
                      _rate(g.promise_kept_rate), _rate(g.right_party_contact_rate),
                      _per_cure(g), _flags(g),
                      end_section=bool(f.groups) and g is f.groups[-1])
    console.print(table)
    for c in f.comparisons:
        console.print(escape(c.verdict), highlight=False)
    if not f.groups:
        console.print("No collection cases in this ledger" + since + ".")


def _cost_table(path: Path | None) -> CostTable:
    try:
        return load_costs(path)
    except CostsFileError as err:
        raise CliError(f"{err} (DUECOURSE_COSTS_FILE)") from None


def report(
        ledger_url: Annotated[str | None, typer.Option(
            "--ledger", help="the ledger: a database URL, a SQLite file, or a directory "
            "holding ledger.db (`duecourse simulate --out DIR`); default: the configured "
            "one")] = None,
        since: Annotated[str | None, typer.Option(
            help="only cases handed over on or after this date (YYYY-MM-DD, UTC)")] = None,
        by: Annotated[str, typer.Option(
            help="group by strategy, segment, jurisdiction or agent")] = "strategy",
        as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")
                           ] = False,
        html: Annotated[Path | None, typer.Option(
            help="write the report as one self-contained HTML file here")] = None,
) -> None:
    """Portfolio analytics: roll, cure and recovery rates, costs, complaints and
    compliance per strategy (segment, jurisdiction, agent), and each challenger against
    its champion with 95% confidence intervals."""
    with user_errors():
        if by not in GROUPS:
            raise CliError(f"--by {by!r} is not a grouping; use one of {', '.join(GROUPS)}")
        day = None if since is None else parse_date(since, "--since")
        cfg = settings()
        url = ledger_url_of(ledger_url)
        if url:
            cfg = cfg.model_copy(update={"database_url": url})
        costs = _cost_table(cfg.costs_file)

    async def go() -> PortfolioFigures:
        async with ledger(cfg) as book:
            return await compute(book.engine, by=by, since=day,  # type: ignore[arg-type]
                                 costs=costs, experiment_dir=cfg.experiment_dir,
                                 scorers=scorers_for(cfg.scorer))

    figures = run(go())
    if html is not None:
        from duecourse.lab.report_html import render_report  # the charts load only here

        with user_errors():
            html.write_text(render_report(figures), encoding="utf-8")
        if not as_json:
            console.print(f"Wrote {escape(str(html))}", highlight=False)
    if as_json:
        typer.echo(figures.model_dump_json(by_alias=True, indent=2))
    elif html is None:
        _print(figures)
