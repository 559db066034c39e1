"""The portfolio figures as HTML people look at: the report file (`duecourse report
--html`) and the /ops page, from one set of templates and charts.

The report is one self-contained document: its CSS and its charts (SVG) are inline, it
loads nothing and runs no script, so it opens from a mail attachment or an offline disk
as it was written. Templates are autoescaped: strategy names and other labels from the
ledger cannot inject markup."""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from duecourse.lab import charts, html_formats
from duecourse.lab.figures import BUCKETS, PortfolioFigures

BY_LABELS = {"strategy": "strategy", "segment": "segment", "jurisdiction": "jurisdiction",
             "agent": "agent"}
KEY_HOURS = 8
"""How long the /ops page keeps an API key (its cookie's Max-Age)."""
REFRESH_SECONDS = 60
"""The /ops page reloads itself this often (a meta refresh: no script)."""


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("duecourse.lab", "templates"),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(
        pct=html_formats.percent, counted=html_formats.counted, num=html_formats.number,
        money=html_formats.money, metric=html_formats.metric_label,
        level=html_formats.level, diff=html_formats.difference, ci=html_formats.interval,
        when=_when)
    env.globals.update(buckets=BUCKETS, destinations=charts.destinations, observed=charts.observed,
                       outcome_names=_outcome_names, channel_names=_channel_names,
                       rule_names=_rule_names)
    return env



def _outcome_names(f: PortfolioFigures) -> list[str]:
    return sorted({o for g in f.groups for o in g.outcomes} | set(f.total.outcomes))


def _channel_names(f: PortfolioFigures) -> list[str]:
    return sorted(set(f.total.costs.contacts_by_channel)
                  | {c for g in f.groups for c in g.costs.contacts_by_channel})


def _rule_names(f: PortfolioFigures) -> list[str]:
    c = f.total.compliance
    return sorted(set(c.blocks_by_rule) | set(c.deferrals_by_rule))


ENV = _environment()


def report_charts(f: PortfolioFigures) -> list[charts.Chart]:
    """The report's main charts, in reading order."""
    by = BY_LABELS[f.group_by]
    return [charts.recovery_curves(f.groups, by), charts.funnel(f.funnel),
            charts.contacts_per_cure(f.groups, by), charts.cure_by_bucket(f.groups, by)]


def render_report(figures: PortfolioFigures) -> str:
    """The whole HTML document for `figures`: tables, charts, the verdicts."""
    roll = [charts.roll_rates(g) for g in charts.largest(figures.groups) if charts.observed(g)]
    return ENV.get_template("report.html").render(
        f=figures, by_label=BY_LABELS[figures.group_by], charts=report_charts(figures),
        roll_charts=roll)


def render_ops_page(figures: PortfolioFigures, who: str, logout_path: str) -> str:
    """The /ops page: what needs attention, the KPIs, the live funnel, per strategy."""
    by = BY_LABELS[figures.group_by]
    running = sum(s.loans for s in figures.funnel if s.stage in charts.RUNNING)
    return ENV.get_template("ops.html").render(
        f=figures, by_label=by, who=who, logout_path=logout_path, running=running,
        refresh_seconds=REFRESH_SECONDS,
        charts=[charts.funnel(figures.funnel), charts.recovery_curves(figures.groups, by)])


def render_key_form(session_path: str, problem: str = "") -> str:
    """The /ops sign-in form: no figures at all, only why (when a key was refused)."""
    return ENV.get_template("ops_key.html").render(session_path=session_path,
                                                   problem=problem, hours=KEY_HOURS)
