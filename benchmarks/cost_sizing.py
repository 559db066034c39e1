"""The sizing model of docs/scaling.md, computed from a cost benchmark's JSON.

    python benchmarks/cost.py --json cost.json
    python benchmarks/cost_sizing.py cost.json     # the tables docs/scaling.md shows

Every figure is a measured one (per path: billable actions, history events and writes per
loan life; under load: worker CPU per loan and its events, memory per parked loan) times
the assumptions below, which docs/scaling.md states and a lender should replace with its
own. Little's law turns lives into loan-months: with N loans open and a mean life of L
months, N / L lives end each month.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIX = {"reminders-paid": (0.55, 0.3), "promise-kept": (0.20, 0.7),
       "plan-completed": (0.10, 6.0), "written-off": (0.15, 6.0)}
"""Path -> (share of loans, life in months on the standard policy): most pay within the
15-day reminder window, promises within about three weeks, a 6-instalment plan runs six
monthly instalments, and a write-off comes at 180 days past due."""

PRICE_PER_MILLION = 50.0
"""USD per million Temporal Cloud actions: the published starting (smallest-volume) rate,
docs.temporal.io/cloud/pricing as of 2025; larger volumes cost less, so this is an upper
bound for the action bill (plans' minimums and storage are extra)."""

PEAK = 30.44 * 24 / (22 * 8)
"""Peak-to-mean load: contacts go out in office hours (8 h on about 22 weekdays a month),
so the busy hours carry the month's work: 730.6 h / 176 h = 4.15x the mean."""

UTILISATION = 0.5  # plan cores and shards at half their capacity, for bursts and failover
WRITE_MS = 5.0
"""One history database write (a PostgreSQL commit), in ms: a history shard runs one
persistence operation at a time (history.shardIOConcurrency = 1, the default), so one
shard sustains at most 1000 / WRITE_MS writes/s."""
SHARD_FLOOR = 512  # the usual production minimum: the shard count can never change later
OPEN_PER_SHARD = 10_000
"""Open workflows per shard: Temporal's docs speak of shards "each responsible for tens
of thousands of Workflow Executions" (concepts/what-is-a-history-shard); the low end."""
MONTH_SECONDS = 30.44 * 86_400
OPEN_WORKFLOWS_PER_LOAN = 1.2
"""The loan's own workflow, plus a plan or legal-case child running beside it for part of
some lives (short-lived children, such as event deliveries, hardly count)."""
CACHE = 1000  # workflows a worker keeps cached (the SDK's default max_cached_workflows)
SCALES = (100_000, 1_000_000, 10_000_000)


@dataclass(frozen=True)
class PerLoanMonth:
    """Actions, events and history writes per open loan per month, and per life."""

    actions: float
    events: float
    writes: float
    life_months: float
    actions_per_life: float
    paths: list[str]

    @staticmethod
    def of(paths: dict[str, Any], keys: tuple[str, str, str] = ("billable", "events",
                                                                 "writes")) -> PerLoanMonth:
        """Little's law over the paths measured (the mix renormalised to them)."""
        present = [p for p in MIX if p in paths]
        share = sum(MIX[p][0] for p in present)
        if not present:
            raise SystemExit("the JSON holds no path figures: run cost.py with --paths")
        life = sum(MIX[p][0] * MIX[p][1] for p in present) / share
        actions, events, writes = (sum(MIX[p][0] * paths[p][k] for p in present) / share
                                   for k in keys)
        return PerLoanMonth(actions / life, events / life, writes / life, life, actions,
                            present)


def pow2_at_least(value: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1.0, value))))


def load_events_per_loan(load: dict[str, Any]) -> float:
    """History events per loan of the load run (its costed sample)."""
    return float(next(r["engine"] for r in load["rows"]
                      if r["metric"] == "history events/loan"))


def sizing(figures: dict[str, Any]) -> str:
    """The markdown tables of docs/scaling.md."""
    month = PerLoanMonth.of(figures["paths"])
    floor = PerLoanMonth.of(figures["paths"], ("minimum", "floor_events", "floor_writes"))
    load = figures.get("load")
    lines = [
        f"Measured {figures['at']} ({figures['cpus']} CPUs); paths: "
        f"{', '.join(month.paths)}; mean life L = {month.life_months:.2f} months.",
        "",
        "| per open loan and month | engine | floor | formula |",
        "|---|---:|---:|---|",
        f"| billable actions | {month.actions:.1f} | {floor.actions:.1f} | "
        "sum(share x actions per life) / L |",
        f"| history events | {month.events:.1f} | {floor.events:.1f} | "
        "sum(share x events per life) / L |",
        f"| history writes | {month.writes:.1f} | {floor.writes:.1f} | "
        "sum(share x writes per life) / L |",
        f"| Temporal Cloud, USD | {month.actions * PRICE_PER_MILLION / 1e6:.5f} | "
        f"{floor.actions * PRICE_PER_MILLION / 1e6:.5f} | actions x "
        f"${PRICE_PER_MILLION:g} / 1e6 |",
        f"| Temporal Cloud per loan life, USD | "
        f"{month.actions_per_life * PRICE_PER_MILLION / 1e6:.5f} | "
        f"{floor.actions_per_life * PRICE_PER_MILLION / 1e6:.5f} | "
        "actions per life x price |",
        "",
        "| open loans | actions/month | Cloud USD/month | DB writes/s mean | peak | "
        "history shards | events/s peak | worker cores | worker processes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cpu_per_loan = load["engine"]["cpu_ms_per_loan"] if load else float("nan")
    events_per_loan = load_events_per_loan(load) if load else float("nan")
    per_event = cpu_per_loan / events_per_loan  # worker CPU per history event, ms
    for n in SCALES:
        writes = n * month.writes / MONTH_SECONDS
        events_peak = n * month.events / MONTH_SECONDS * PEAK
        cores = events_peak * per_event / 1000 / UTILISATION
        shards = pow2_at_least(max(SHARD_FLOOR, writes * PEAK * WRITE_MS / 1000 / UTILISATION,
                                   n * OPEN_WORKFLOWS_PER_LOAN / OPEN_PER_SHARD))
        lines.append(
            f"| {n:,} | {n * month.actions / 1e6:,.1f}M | "
            f"{n * month.actions * PRICE_PER_MILLION / 1e6:,.0f} | {writes:,.1f} | "
            f"{writes * PEAK:,.1f} | {shards:,} | {events_peak:,.1f} | {cores:,.2f} | "
            f"{max(1, math.ceil(cores)) if load else 'n/a'} |")
    if load:
        heap = load["engine_parked"]["heap_kib"]
        lines += [
            "",
            f"Worker CPU per history event c = {cpu_per_loan:.1f} ms per loan / "
            f"{events_per_loan:.1f} events per loan = {per_event:.2f} ms. Memory: "
            f"{heap:.0f} KiB per cached "
            f"loan, {heap * CACHE / 1024:.0f} MiB for a worker's default cache of {CACHE} "
            "workflows.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", type=Path, help="the JSON cost.py --json wrote")
    print(sizing(json.loads(parser.parse_args().figures.read_text(encoding="utf-8"))))
