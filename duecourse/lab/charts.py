"""The report's and the /ops page's charts: pygal SVG, inlined in the page, drawn without
any script.

pygal points its tooltips' JavaScript at a CDN by default; here `js=[]` and the inline
config script it writes anyway is removed, so a chart is plain SVG that renders offline,
under a `script-src 'none'` policy and in a saved file. Each chart carries a title and a
description in words (the figures it shows) for screen readers and for anyone who cannot
see the colours. Colours are the Okabe-Ito palette, distinguishable with colour blindness,
and dark enough against white for the lines and bars to stand out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

import pygal
from pygal.style import Style

from duecourse.lab.figures import BUCKETS, GroupFigures, StageCount
from duecourse.lab.html_formats import NA, number, percent

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#332288", "#E69F00", "#56B4E9",
           "#882255", "#117733", "#44AA99")
MAX_SERIES = len(PALETTE)
"""Charts draw at most this many groups (the largest); the tables list every one."""
RUNNING = ("REMINDER", "NEGOTIATION", "LEGAL")
NO_DATA = "no data yet"

STYLE = Style(
    background="#ffffff", plot_background="#ffffff", foreground="#1f1f1f",
    foreground_strong="#000000", foreground_subtle="#6b6b6b", colors=PALETTE,
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif",
    label_font_size=15, major_label_font_size=15, legend_font_size=15, value_font_size=14,
    title_font_size=18, no_data_font_size=24, opacity=".9", opacity_hover="1",
    stroke_width="3", stroke_width_hover="4", value_colors=("#ffffff",) * len(PALETTE))
SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S)
"""pygal's inline config script; its text is XML-escaped, so no data can end it early."""


@dataclass(frozen=True)
class Chart:
    """One chart: `key` names it in the page (data-chart), `svg` is the markup to inline."""

    key: str
    title: str
    description: str
    svg: str


def _config() -> dict[str, object]:
    return {"style": STYLE, "js": [], "disable_xml_declaration": True,
            "explicit_size": False, "width": 800, "height": 460, "legend_at_bottom": True,
            "truncate_legend": -1, "truncate_label": -1, "print_zeroes": False,
            "no_data_text": NO_DATA, "margin": 12}


def _finish(key: str, chart: pygal.graph.graph.Graph, title: str, description: str) -> Chart:
    """Render without scripts and give the SVG its accessible name and description."""
    svg = SCRIPT.sub("", chart.render(is_unicode=True))
    label = escape(f"{title}. {description}", quote=True)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)
    start = svg.index(">") + 1
    svg = (f"{svg[:start]}<title>{escape(title)}</title><desc>{escape(description)}</desc>"
           f"{svg[start:]}")
    return Chart(key=key, title=title, description=description, svg=svg)


def largest(groups: list[GroupFigures]) -> list[GroupFigures]:
    """The groups a chart draws: the MAX_SERIES with the most cases, in their own order."""
    if len(groups) <= MAX_SERIES:
        return groups
    keep = {g.key for g in sorted(groups, key=lambda g: -g.cases)[:MAX_SERIES]}
    return [g for g in groups if g.key in keep]


def _shown(groups: list[GroupFigures], drawn: list[GroupFigures]) -> str:
    if len(drawn) == len(groups):
        return ""
    return f" The {len(drawn)} largest of {len(groups)} groups are drawn; the tables list all."


def recovery_curves(groups: list[GroupFigures], by: str) -> Chart:
    """Share of the amount handed over recovered by day since hand-over, one line per
    group (and currency, when the portfolio holds several)."""
    drawn = largest(groups)
    currencies = {r.currency for g in groups for r in g.recovery}
    chart = pygal.XY(**_config(), show_dots=False,
                     x_title="days since hand-over", y_title="recovered",
                     value_formatter=lambda y: f"{y:.0f}%",
                     x_value_formatter=lambda x: f"{x:.0f}")
    said = []
    for g in drawn:
        for r in g.recovery:
            if not r.curve:
                continue
            name = g.key if len(currencies) <= 1 else f"{g.key} ({r.currency})"
            chart.add(name, [(p.day, p.recovered * 100) for p in r.curve])
            last = r.curve[-1]
            said.append(f"{name} {percent(last.recovered)} by day {last.day}")
    description = (f"Per {by}: " + "; ".join(said) + "." if said
                   else "Nothing recovered or observed yet.") + _shown(groups, drawn)
    return _finish("recovery-curves", chart, "Recovery curve: share of the amount handed "
                   "over recovered, by days since hand-over", description)


def observed(group: GroupFigures) -> list[str]:
    """The DPD buckets at hand-over with cases observed for the roll (whole > 0)."""
    return [b for b in BUCKETS
            if any(r.whole for r in group.roll_rates.get(b, {}).values())]


def destinations(group: GroupFigures) -> list[str]:
    seen = {to for row in group.roll_rates.values() for to in row}
    order = ["cured", *BUCKETS, "closed"]
    return [d for d in order if d in seen] + sorted(seen - set(order))


def roll_rates(group: GroupFigures) -> Chart:
    """The roll-rate matrix as stacked bars: for each DPD bucket at hand-over, where its
    loans were 30 days later (cured, a bucket, or closed otherwise)."""
    froms = observed(group)
    drawn = froms[::-1]  # horizontal bars stack upwards: the first bucket on top
    tos = destinations(group)
    chart = pygal.HorizontalStackedBar(**_config(), x_title="share of the bucket's loans",
                                       value_formatter=lambda v: f"{v:.0f}%",
                                       print_values=False, range=(0, 100))
    chart.x_labels = [f"from {b} (n={next(iter(group.roll_rates[b].values())).whole})"
                      for b in drawn]
    for to in tos:
        values = []
        for b in drawn:
            rate = group.roll_rates[b].get(to)
            values.append(rate.value * 100 if rate is not None and rate.value is not None
                          else None)
        chart.add(to if to in ("cured", "closed") else f"to {to}", values)
    said = [f"from {b}: " + ", ".join(f"{percent(r)} {to}" for to, r in
                                       group.roll_rates[b].items() if r.part) for b in froms]
    description = ("; ".join(said) + "." if said
                   else "No loan observed 30 days after hand-over yet.")
    return _finish(f"roll-rates-{group.key}", chart,
                   f"Roll rates for {group.key}: where each DPD bucket was 30 days later",
                   description)


def funnel(stages: list[StageCount]) -> Chart:
    """Loans by stage now: the running ones per stage and the closed ones per outcome, in
    two colours."""
    chart = pygal.HorizontalStackedBar(**_config(), print_values=True,
                                       x_title="loans", value_formatter=lambda v: f"{v:.0f}")
    drawn = stages[::-1]  # horizontal bars stack upwards: the first stage on top
    chart.x_labels = [s.stage for s in drawn]
    chart.add("running", [s.loans if s.stage in RUNNING else None for s in drawn])
    chart.add("closed", [None if s.stage in RUNNING else s.loans for s in drawn])
    description = ("; ".join(f"{s.stage} {s.loans:,}" for s in stages) + "."
                   if stages else "No loans yet.")
    return _finish("funnel", chart, "Funnel: loans by stage (running) and by outcome "
                   "(closed)", description)


def contacts_per_cure(groups: list[GroupFigures], by: str) -> Chart:
    """How many contacts each cure took, per group: the efficiency side of the strategy."""
    drawn = largest(groups)
    chart = pygal.Bar(**_config(), print_values=True, y_title="contacts per cure",
                      value_formatter=lambda v: f"{v:.1f}", show_legend=False)
    chart.x_labels = [g.key for g in drawn]
    chart.add("contacts per cure", [g.costs.contacts_per_cure for g in drawn])
    said = [f"{g.key} {number(g.costs.contacts_per_cure)}" for g in drawn]
    none = f" ({NA}: no cure yet)" if any(g.costs.contacts_per_cure is None for g in drawn) \
        else ""
    description = f"Per {by}: " + "; ".join(said) + none + "." + _shown(groups, drawn)
    return _finish("contacts-per-cure", chart, "Contacts per cure", description)


def cure_by_bucket(groups: list[GroupFigures], by: str) -> Chart:
    """Cure rate by DPD bucket at hand-over, grouped bars per group."""
    drawn = largest(groups)
    chart = pygal.Bar(**_config(), y_title="cured", value_formatter=lambda v: f"{v:.0f}%")
    chart.x_labels = [f"DPD {b}" for b in BUCKETS]
    said = []
    for g in drawn:
        values = [g.cure_rate_by_bucket[b].value if b in g.cure_rate_by_bucket else None
                  for b in BUCKETS]
        chart.add(g.key, [v * 100 if v is not None else None for v in values])
        if g.cure_rate_by_bucket:
            said.append(f"{g.key}: " + ", ".join(
                f"{b} {percent(g.cure_rate_by_bucket[b])}" for b in BUCKETS
                if b in g.cure_rate_by_bucket))
    description = (f"Per {by}: " + "; ".join(said) + "." if said
                   else "No case has a DPD bucket yet.") + _shown(groups, drawn)
    return _finish("cure-by-bucket", chart, "Cure rate by DPD bucket at hand-over",
                   description)
