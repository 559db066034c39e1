"""The cost benchmark's tables and JSON: per path, the engine beside its minimum and its
floor; under load, the engine beside the floor - each with its target, PASS or MISS.
Targets are duecourse issue 11's; printed, never asserted."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.cost_history import KINDS, LoanCost
from benchmarks.cost_load import FlowFigures, ParkedFigures
from benchmarks.cost_runs import PathRun

ACTIONS_TARGET = 1.2  # billable actions <= 1.2x the minimum, on every path
EVENTS_TARGET = 1.3  # history events <= 1.3x the floor's
THROUGHPUT_TARGET = 0.5  # >= 0.5x the floor's loans/s
CPU_TARGET = 2.5  # worker CPU per loan <= 2.5x the floor's
MEMORY_TARGET = 1.5  # memory per parked loan <= 1.5x the floor's
P99_TARGET = 2.0  # payment to closed p99 <= 2 s under the benchmark's load

_SHORT = {"start": "start", "continue-as-new": "CAN", "children": "child",
          "timers": "timer", "activities": "act", "retries": "retry", "signals": "sig",
          "updates": "upd", "upserts": "ups", "local activities": "LA"}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


@dataclass
class PathFigures:
    """Means per loan of one path's runs."""

    name: str
    story: str
    loans: int
    outcomes: list[str]
    expected: str
    events: float
    parent_events: float
    writes: float
    workflows: float
    actions: dict[str, float]
    billable: float
    minimum: float
    floor_events: float
    floor_writes: float
    floor_billable: float
    formula: str
    why: str
    seconds: float

    @property
    def actions_ratio(self) -> float:
        return _ratio(self.billable, self.minimum)

    @property
    def events_ratio(self) -> float:
        return _ratio(self.events, self.floor_events)

    def as_json(self) -> dict[str, Any]:
        return {"story": self.story, "loans": self.loans, "outcomes": self.outcomes,
                "events": self.events, "parent_events": self.parent_events,
                "writes": self.writes, "workflows": self.workflows,
                "actions": self.actions, "billable": self.billable,
                "minimum": self.minimum, "minimum_formula": self.formula,
                "floor_events": self.floor_events, "floor_writes": self.floor_writes,
                "floor_billable": self.floor_billable,
                "actions_ratio": self.actions_ratio, "events_ratio": self.events_ratio,
                "seconds": self.seconds}


def _mean(costs: list[LoanCost]) -> tuple[LoanCost, float]:
    total = LoanCost()
    for cost in costs:
        total.add(cost)
    return total, float(len(costs))


@dataclass
class PathReport:
    paths: list[PathFigures]

    @staticmethod
    def of(runs: list[PathRun]) -> PathReport:
        grouped: dict[str, list[PathRun]] = defaultdict(list)
        for run in runs:
            grouped[run.path.name].append(run)
        figures = []
        for name, group in grouped.items():
            cost, n = _mean([r.cost for r in group])
            floor, _ = _mean([r.floor for r in group])
            first = group[0]
            figures.append(PathFigures(
                name, first.path.story, len(group),
                [r.facts.outcome or "OPEN" for r in group], first.path.outcome,
                cost.events / n, cost.parent_events / n, cost.writes / n,
                cost.workflows / n, {k: cost.actions[k] / n for k in KINDS},
                cost.billable / n, sum(r.shape.billable for r in group) / n,
                floor.events / n, floor.writes / n, floor.billable / n, first.shape.formula(),
                first.path.why, sum(r.seconds for r in group) / n))
        return PathReport(figures)

    def as_json(self) -> dict[str, Any]:
        return {p.name: p.as_json() for p in self.paths}


def print_paths(report: PathReport) -> None:
    if not report.paths:
        return
    kinds = "".join(f"{_SHORT[k]:>6}" for k in KINDS)
    print(f"\nPER LOAN, BY PATH (billable actions read from every history of the loan)\n"
          f"{'path':<16}{'events':>7}{'parent':>7}{'wfs':>4}{kinds}{'total':>7}"
          f"{'min':>6}{'ratio':>6}  target  {'floor ev':>8}{'ratio':>6}  target")
    for p in report.paths:
        by_kind = "".join(f"{p.actions[k]:>6.1f}" for k in KINDS)
        print(f"{p.name:<16}{p.events:>7.0f}{p.parent_events:>7.0f}{p.workflows:>4.0f}"
              f"{by_kind}{p.billable:>7.1f}{p.minimum:>6.0f}{p.actions_ratio:>6.2f}"
              f"  {verdict(p.actions_ratio <= ACTIONS_TARGET)} <={ACTIONS_TARGET}"
              f"{p.floor_events:>9.0f}{p.events_ratio:>6.2f}"
              f"  {verdict(p.events_ratio <= EVENTS_TARGET)} <={EVENTS_TARGET}")
    print("\nMINIMUM PER PATH (from the run's business facts; the floor workflow runs it)")
    for p in report.paths:
        unexpected = [o for o in p.outcomes if o != p.expected]
        note = f"  [ended {', '.join(unexpected)}, expected {p.expected}]" if unexpected \
            else ""
        print(f"{p.name:<16}{p.story}: {p.formula}{note}\n{'':<16}why: {p.why}; "
              f"{p.seconds:.0f} s to close; ~{p.writes:.0f} history writes")


@dataclass
class LoadReport:
    engine: FlowFigures
    floor: FlowFigures
    engine_cost: LoanCost  # summed over a sample of the flow's loans
    floor_cost: LoanCost
    engine_parked: ParkedFigures
    floor_parked: ParkedFigures

    sampled: int  # loans of the flow whose histories were costed

    def per_loan(self, cost: LoanCost) -> dict[str, float]:
        n = max(1, self.sampled)
        return {"billable": cost.billable / n, "events": cost.events / n,
                "writes": cost.writes / n}

    def rows(self) -> list[tuple[str, float, float, float, str]]:
        """(metric, engine, floor, engine/floor, target verdict)."""
        e, f = self.engine, self.floor
        ec, fc = self.per_loan(self.engine_cost), self.per_loan(self.floor_cost)
        throughput = _ratio(e.loans_per_second, f.loans_per_second)
        cpu = _ratio(e.cpu_ms_per_loan, f.cpu_ms_per_loan)
        ep, fp = self.engine_parked, self.floor_parked
        memory = _ratio(ep.heap_kib, fp.heap_kib)
        return [
            ("throughput, loans/s", e.loans_per_second, f.loans_per_second, throughput,
             f"{verdict(throughput >= THROUGHPUT_TARGET)} >={THROUGHPUT_TARGET}x"),
            ("worker CPU, ms/loan", e.cpu_ms_per_loan, f.cpu_ms_per_loan, cpu,
             f"{verdict(cpu <= CPU_TARGET)} <={CPU_TARGET}x"),
            ("server CPU, ms/loan", e.server_cpu_ms_per_loan, f.server_cpu_ms_per_loan,
             _ratio(e.server_cpu_ms_per_loan, f.server_cpu_ms_per_loan), ""),
            ("memory, heap KiB/parked loan", ep.heap_kib, fp.heap_kib, memory,
             f"{verdict(memory <= MEMORY_TARGET)} <={MEMORY_TARGET}x"),
            ("memory, RSS KiB/parked loan", ep.rss_kib, fp.rss_kib,
             _ratio(ep.rss_kib, fp.rss_kib), "(noisy)"),
            ("pay to closed p50, s", e.pay_to_closed_p50, f.pay_to_closed_p50,
             _ratio(e.pay_to_closed_p50, f.pay_to_closed_p50), ""),
            ("pay to closed p99, s", e.pay_to_closed_p99, f.pay_to_closed_p99,
             _ratio(e.pay_to_closed_p99, f.pay_to_closed_p99),
             f"{verdict(e.pay_to_closed_p99 <= P99_TARGET)} <={P99_TARGET} s"),
            ("billable actions/loan", ec["billable"], fc["billable"],
             _ratio(ec["billable"], fc["billable"]), ""),
            ("history events/loan", ec["events"], fc["events"],
             _ratio(ec["events"], fc["events"]), ""),
            ("history writes/loan", ec["writes"], fc["writes"],
             _ratio(ec["writes"], fc["writes"]), ""),
        ]

    def as_json(self) -> dict[str, Any]:
        return {"engine": self.engine.as_json(), "floor": self.floor.as_json(),
                "engine_parked": asdict(self.engine_parked),
                "floor_parked": asdict(self.floor_parked),
                "rows": [{"metric": m, "engine": e, "floor": f, "ratio": r, "target": t}
                         for m, e, f, r, t in self.rows()]}


def print_load(report: LoadReport) -> None:
    for name, flow in (("engine", report.engine), ("floor", report.floor)):
        if flow.unclosed:
            print(f"\n!! {flow.unclosed} of {flow.loans} {name} loans had not closed "
                  "when the benchmark stopped waiting: their figures are missing below")
    print(f"\nUNDER LOAD: {report.engine.loans} loans handed over, contacted once, paid "
          f"(engine: demo policy; floor: {report.floor.loans} trivial loans of that shape);"
          f" {report.engine_parked.loans} parked each (engine: standard policy)\n"
          f"{'metric':<36}{'engine':>10}{'floor':>10}{'ratio':>8}  target")
    for metric, engine, floor, ratio, target in report.rows():
        print(f"{metric:<36}{engine:>10.2f}{floor:>10.2f}{ratio:>8.2f}  {target}")
