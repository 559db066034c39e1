"""Portfolio analytics from the ledger alone, per strategy, segment, jurisdiction or agent.

Read-only and the same for a simulated ledger and a real one. What each figure means:

- **Scope**: the collection cases opened on or after `since` (00:00 UTC). A loan handed
  over twice is two cases; `loans` counts distinct loans.
- **Observed until**: the latest fact in the ledger (audit_events.occurred_at), never
  after `now`. A simulated ledger ends where its simulation ended, so a case is only
  counted as having reached day N when the ledger has seen day N after its hand-over.
- **Groups**: *strategy* is the case's experiment arm (`collection_cases.strategy`), or
  its policy when it was not in an experiment. *segment* is the first segment the scorer
  gave the case (its first `segment_changed` audit event), "unscored" without one.
  *jurisdiction* is the loan's. *agent* is the agent the case was last assigned to
  (`agent_assigned`), else the assignee of its first task (which may be a queue, such as
  "agents"), else the agent who first logged a contact or outcome on it, else "none".
- **DPD bucket at hand-over**: the first stage transition's `days_past_due` (0 counts as
  1-30). A case without a transition has no bucket and is left out of roll and bucket
  cure rates.
- **Roll rates**: of the cases in a bucket at hand-over that the ledger has observed for 30
  days, where each was 30 days later: "cured" when it closed PAID or SETTLED by then,
  "closed" when it closed otherwise (written off, cancelled), else the bucket of its DPD
  then (hand-over DPD + 30: days past due keep counting from the due date while a loan is
  unpaid). Cases observed less than 30 days are not in any roll rate yet.
- **Cure**: a case closed PAID or SETTLED. Cure rate = cured / cases; by bucket: cured /
  cases handed over in that bucket.
- **Recovery**, per currency: payments.applied summed / collection_cases.outstanding_at_open
  summed. The curve at day d is the same ratio over the cases observed for at least d days,
  counting payments with `paid_at` up to d days after `opened_at` (a payment dated before
  hand-over counts on day 0), daily up to the longest observation, at most 365 days.
- **Promise kept**: promises whose latest status is KEPT / (KEPT + BROKEN); active and
  withdrawn promises are undecided and not counted.
- **Plan completion**: plans (agreements of type plan) COMPLETED / (COMPLETED + BROKEN +
  LAPSED); active, cancelled and failed plans are not the borrower's result and are left
  out.
- **Right-party contact**: contact outcomes (audit events `contact_outcome`) in which the
  borrower or a guarantor engaged (reached, replied, refused, right party verified,
  promise taken) / contacts made. It can exceed 1 when borrowers call or write in more
  than we contacted them.
- **Contacts**: contact attempts sent or made by a person (blocked, deferred, failed,
  cancelled and expired ones reached nobody and cost no channel fee). **Agent tasks**:
  tasks an agent completed (status done). **Cost** = contacts x the cost of their channel +
  tasks x the cost of their kind, from the cost table, in its currency. Cost per unit
  recovered divides by what was recovered in that currency only (None without it).
- **Complaint proxy**: disputes opened (`dispute_opened`), cease requests
  (`cease_communication`) and opt-outs: the channels of a case opted out of (`opted_out`,
  or `sms_consent_withdrawn` for SMS), each counted once however often it was asked (an
  SMS STOP records both events, and again on each repeated STOP).
- **Compliance**: compliance decisions blocked or deferred, counted by the rule's code.
  **Audit violations** are the violations recorded in the ledger: the rule codes of
  `contact_violation_reported` events (a contact an agent reported that broke a rule,
  which also opens a review task). The independent re-check of every contact
  (`duecourse audit`) is not repeated here: it replays each case's whole history and is
  its own command.
- **Comparisons** (grouping by strategy): within each experiment, each challenger arm
  against the champion arm (the experiment file's champion, else the arm named
  "champion") on recovery rate (per currency when the experiment spans several, most
  common currency first: the verdict speaks of that one), cure rate and contacts per
  loan, with 95% intervals (`duecourse.lab.stats`) and the verdict
  (`duecourse.lab.verdict`).
- **Segment quality**: the ledger does not say which scorer assigned a segment, so each
  scorer asked for (`scorers`: the scorecard and DUECOURSE_SCORER in the report and the
  API) re-scores every case's hand-over facts (`duecourse.lab.segment_quality`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duecourse.lab import stats
from duecourse.lab.costs import CostTable, load_costs
from duecourse.lab.experiments import load_experiment
from duecourse.lab.figures import (
    BUCKETS,
    Attention,
    Comparison,
    Complaints,
    Compliance,
    Costs,
    CurvePoint,
    Difference,
    GroupBy,
    GroupFigures,
    PortfolioFigures,
    Rate,
    Recovery,
    SegmentQuality,
    StageCount,
)
from duecourse.lab.segment_quality import segment_quality
from duecourse.lab.verdict import CONTACTS, CURE, RECOVERY, verdict
from duecourse.settings import Settings
from duecourse.store import tables as t

log = structlog.get_logger(__name__)
SCORECARD = str(Settings.model_fields["scorer"].default)  # the bundled scorecard

CURED = ("PAID", "SETTLED")
ROLL_DAYS = 30
CURVE_DAYS = 365
STAGES = ("REMINDER", "NEGOTIATION", "LEGAL")
OUTCOMES = ("PAID", "SETTLED", "WRITTEN_OFF", "CANCELLED")
ENGAGED = frozenset({"reached", "borrower_replied", "refused", "right_party_verified",
                     "promise_taken"})
MADE = ("sent", "made_by_person")
EVENT_KINDS = ("segment_changed", "agent_assigned", "contact_outcome", "contact_logged",
               "dispute_opened", "opted_out", "sms_consent_withdrawn", "cease_communication",
               "contact_violation_reported")


def bucket(dpd: int) -> str:
    """The DPD bucket of `dpd` days past due (0 and below: 1-30)."""
    return "1-30" if dpd <= 30 else "31-60" if dpd <= 60 else "61-90" if dpd <= 90 else "90+"


def rate(part: int, whole: int) -> Rate:
    return Rate(part=part, whole=whole, value=part / whole if whole else None)


@dataclass
class _Case:
    """What the figures need of one case, read from its rows."""

    case_id: str
    loan_id: str
    strategy: str
    experiment: str | None
    jurisdiction: str
    currency: str
    handed_over: Decimal
    opened_at: datetime
    outcome: str | None
    closed_at: datetime | None
    dpd: int | None = None
    stage: str | None = None
    segment: str = "unscored"
    agent: str | None = None
    first_task_assignee: str | None = None
    first_contact_agent: str | None = None
    payments: list[tuple[datetime, Decimal]] = field(default_factory=list)
    contacts: Counter[str] = field(default_factory=Counter)
    tasks_done: Counter[str] = field(default_factory=Counter)
    promises: dict[str, str] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)
    engaged: int = 0
    complaints: Counter[str] = field(default_factory=Counter)
    opted_out: set[str] = field(default_factory=set)  # channels
    blocks: Counter[str] = field(default_factory=Counter)
    deferrals: Counter[str] = field(default_factory=Counter)
    violations: int = 0

    @property
    def cured(self) -> bool:
        return self.outcome in CURED

    @property
    def recovered(self) -> Decimal:
        return sum((a for _, a in self.payments), Decimal(0))

    def key(self, by: GroupBy) -> str:
        if by == "strategy":
            return self.strategy
        if by == "segment":
            return self.segment
        if by == "jurisdiction":
            return self.jurisdiction
        return self.agent or self.first_task_assignee or self.first_contact_agent or "none"


# ---------------------------------------------------------------------------- reading
def _since(since: date | None) -> datetime | None:
    return None if since is None else datetime.combine(since, time(0), tzinfo=UTC)


def _scope(since: datetime | None) -> Select[Any]:
    q = select(t.collection_cases.c.case_id)
    return q if since is None else q.where(t.collection_cases.c.opened_at >= since)


async def _rows(conn: AsyncConnection, query: Select[Any]) -> Iterable[Any]:
    return (await conn.execute(query)).mappings().all()


async def _load(engine: AsyncEngine, since: datetime | None, now: datetime
                ) -> tuple[dict[str, _Case], datetime | None, Attention]:
    cc, scope = t.collection_cases, _scope(since)

    def of(table: Any, *columns: Any) -> Select[Any]:
        return select(*columns).where(table.c.case_id.in_(scope))

    ae, st, ca, cd = t.audit_events, t.stage_transitions, t.contact_attempts, \
        t.compliance_decisions
    async with engine.connect() as conn:
        cases: dict[str, _Case] = {}
        for r in await _rows(conn, select(cc, t.loans.c.jurisdiction).join(
                t.loans, t.loans.c.loan_id == cc.c.loan_id).where(cc.c.case_id.in_(scope))
                .order_by(cc.c.opened_at, cc.c.case_id)):
            cases[r["case_id"]] = _Case(
                case_id=r["case_id"], loan_id=r["loan_id"],
                strategy=r["strategy"] or r["policy"], experiment=r["experiment"],
                jurisdiction=r["jurisdiction"], currency=r["currency"],
                handed_over=r["outstanding_at_open"], opened_at=r["opened_at"],
                outcome=r["outcome"], closed_at=r["closed_at"])
        for r in await _rows(conn, of(st, st.c.case_id, st.c.to_stage, st.c.days_past_due)
                             .order_by(st.c.id)):
            c = cases[r["case_id"]]
            if c.dpd is None:
                c.dpd = r["days_past_due"]
            if r["to_stage"] is not None:
                c.stage = r["to_stage"]
        for r in await _rows(conn, of(t.payments, t.payments.c.case_id, t.payments.c.paid_at,
                                      t.payments.c.applied)):
            cases[r["case_id"]].payments.append((r["paid_at"], r["applied"]))
        for r in await _rows(conn, of(ca, ca.c.case_id, ca.c.channel).where(
                ca.c.status.in_(MADE))):
            cases[r["case_id"]].contacts[r["channel"]] += 1
        tk = t.tasks
        for r in await _rows(conn, of(tk, tk.c.case_id, tk.c.kind, tk.c.status,
                                      tk.c.assignee).order_by(tk.c.created_at, tk.c.task_id)):
            c = cases[r["case_id"]]
            c.first_task_assignee = c.first_task_assignee or r["assignee"]
            if r["status"] == "done":
                c.tasks_done[r["kind"]] += 1
        pr = t.promises
        for r in await _rows(conn, of(pr, pr.c.case_id, pr.c.promise_id, pr.c.status)
                             .order_by(pr.c.id)):
            cases[r["case_id"]].promises[r["promise_id"]] = r["status"]
        ag = t.agreements
        for r in await _rows(conn, of(ag, ag.c.case_id, ag.c.agreement_id, ag.c.status)
                             .where(ag.c.agreement_type == "plan")):
            cases[r["case_id"]].plans[r["agreement_id"]] = r["status"]
        for r in await _rows(conn, of(cd, cd.c.case_id, cd.c.verdict, cd.c.code, cd.c.rule)
                             .where(cd.c.verdict.in_(("blocked", "deferred")))):
            c = cases[r["case_id"]]
            counter = c.blocks if r["verdict"] == "blocked" else c.deferrals
            counter[r["code"] or r["rule"]] += 1
        for r in await _rows(conn, of(ae, ae.c.case_id, ae.c.kind, ae.c.actor_kind,
                                      ae.c.actor_id, ae.c.data)
                             .where(ae.c.kind.in_(EVENT_KINDS)).order_by(ae.c.id)):
            _event(cases[r["case_id"]], r)
        latest = (await conn.execute(of(ae, func.max(ae.c.occurred_at)))).scalar()
        attention = await _attention(conn, scope, now)
    return cases, latest, attention


def _event(c: _Case, r: Any) -> None:
    """Fold one audit event into the case."""
    kind, details = r["kind"], (r["data"] or {}).get("details") or {}
    agent = r["actor_id"] if r["actor_kind"] == "agent" else None
    if kind == "segment_changed":
        if c.segment == "unscored" and details.get("segment"):
            c.segment = str(details["segment"])
    elif kind == "agent_assigned":
        c.agent = details.get("agent") or c.agent
    elif kind == "contact_logged":
        c.first_contact_agent = c.first_contact_agent or agent
    elif kind == "contact_outcome":
        c.first_contact_agent = c.first_contact_agent or agent
        if details.get("result") in ENGAGED and details.get("recipient_kind") != "third_party":
            c.engaged += 1
    elif kind == "contact_violation_reported":
        c.violations += len(details.get("codes") or []) or 1
    elif kind == "opted_out":
        c.opted_out.add(str(details.get("channel")))
    elif kind == "sms_consent_withdrawn":
        c.opted_out.add("sms")
    else:
        c.complaints[kind] += 1


async def _attention(conn: AsyncConnection, scope: Select[Any], now: datetime) -> Attention:
    alerts = (await conn.execute(select(func.count()).select_from(t.ops_alerts).where(
        t.ops_alerts.c.case_id.in_(scope), t.ops_alerts.c.acknowledged_at.is_(None)))).scalar()
    open_tasks = select(func.count()).select_from(t.tasks).where(
        t.tasks.c.case_id.in_(scope), t.tasks.c.status == "open")
    return Attention(open_alerts=alerts or 0,
                     open_tasks=(await conn.execute(open_tasks)).scalar() or 0,
                     overdue_tasks=(await conn.execute(open_tasks.where(
                         t.tasks.c.due_at < now))).scalar() or 0)


# ---------------------------------------------------------------------------- figures
def _days(since: datetime, until: datetime) -> int:
    return max(0, (until - since) // timedelta(days=1))


def _roll_rates(cases: list[_Case], until: datetime) -> dict[str, dict[str, Rate]]:
    counts: dict[str, Counter[str]] = {b: Counter() for b in BUCKETS}
    horizon = timedelta(days=ROLL_DAYS)
    for c in cases:
        if c.dpd is None or c.opened_at + horizon > until:
            continue
        closed_by = c.closed_at is not None and c.closed_at <= c.opened_at + horizon
        to = ("cured" if c.cured else "closed") if closed_by else bucket(c.dpd + ROLL_DAYS)
        counts[bucket(c.dpd)][to] += 1
    return {b: {to: rate(counts[b][to], sum(counts[b].values()))
                for to in (*BUCKETS, "cured", "closed")} for b in BUCKETS}


def _curve(cases: list[_Case], until: datetime) -> list[CurvePoint]:
    """The recovery curve of same-currency `cases` (see the module docstring)."""
    observed = [min(_days(c.opened_at, until), CURVE_DAYS) for c in cases]
    last = max(observed, default=-1)
    handed = [Decimal(0)] * (last + 2)  # handed[d]: cases observed exactly d days
    paid = [Decimal(0)] * (last + 2)  # difference array of payments per day
    for c, days in zip(cases, observed, strict=True):
        handed[days] += c.handed_over
        for at, amount in c.payments:
            day = _days(c.opened_at, at)
            if day <= days:
                paid[day] += amount
                paid[days + 1] -= amount
    points, denominator, numerator = [], sum(handed, Decimal(0)), Decimal(0)
    for day in range(last + 1):
        numerator += paid[day]
        if denominator > 0:
            points.append(CurvePoint(day=day, recovered=float(numerator / denominator)))
        denominator -= handed[day]
    return points


def _recovery(cases: list[_Case], until: datetime) -> list[Recovery]:
    by: dict[str, list[_Case]] = defaultdict(list)
    for c in cases:
        by[c.currency].append(c)
    out = []
    for currency in sorted(by):
        group = by[currency]
        handed = sum((c.handed_over for c in group), Decimal(0))
        recovered = sum((c.recovered for c in group), Decimal(0))
        out.append(Recovery(currency=currency, handed_over=handed, recovered=recovered,
                            rate=float(recovered / handed) if handed else None,
                            curve=_curve(group, until)))
    return out


def _costs(cases: list[_Case], costs: CostTable, recovery: list[Recovery]) -> Costs:
    channels: Counter[str] = Counter()
    tasks: Counter[str] = Counter()
    for c in cases:
        channels.update(c.contacts)
        tasks.update(c.tasks_done)
    cost = sum((costs.contact(ch) * n for ch, n in channels.items()), Decimal(0)) + \
        sum((costs.task(kind) * n for kind, n in tasks.items()), Decimal(0))
    contacts, cured = sum(channels.values()), sum(c.cured for c in cases)
    recovered = next((r.recovered for r in recovery if r.currency == costs.currency),
                     Decimal(0))
    return Costs(
        contacts=contacts, contacts_by_channel=dict(sorted(channels.items())),
        agent_tasks=sum(tasks.values()), cost=cost, currency=costs.currency,
        contacts_per_cure=contacts / cured if cured else None,
        cost_per_cure=(cost / cured).quantize(Decimal("0.01")) if cured else None,
        cost_per_unit_recovered=(cost / recovered).quantize(Decimal("0.0001"))
        if recovered > 0 else None)


def _count(cases: list[_Case], pick: Callable[[_Case], Counter[str]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in cases:
        total.update(pick(c))
    return dict(sorted(total.items()))


def group_figures(key: str, cases: list[_Case], costs: CostTable,
                  until: datetime) -> GroupFigures:
    """The figures of one group of cases."""
    cured = sum(c.cured for c in cases)
    in_bucket: dict[str, list[_Case]] = {b: [] for b in BUCKETS}
    for c in cases:
        if c.dpd is not None:
            in_bucket[bucket(c.dpd)].append(c)
    promises = [s for c in cases for s in c.promises.values()]
    plans = [s for c in cases for s in c.plans.values()]
    ended_plans = sum(s in ("COMPLETED", "BROKEN", "LAPSED") for s in plans)
    recovery = _recovery(cases, until)
    complaints = _count(cases, lambda c: c.complaints)
    return GroupFigures(
        key=key, loans=len({c.loan_id for c in cases}), cases=len(cases),
        closed=sum(c.outcome is not None for c in cases),
        outcomes=dict(sorted(Counter(c.outcome for c in cases if c.outcome).items())),
        roll_rates=_roll_rates(cases, until),
        cure_rate_by_bucket={b: rate(sum(c.cured for c in group), len(group))
                             for b, group in in_bucket.items()},
        cure_rate=rate(cured, len(cases)),
        recovery=recovery,
        promise_kept_rate=rate(promises.count("KEPT"),
                               promises.count("KEPT") + promises.count("BROKEN")),
        plan_completion_rate=rate(plans.count("COMPLETED"), ended_plans),
        right_party_contact_rate=rate(sum(c.engaged for c in cases),
                                      sum(sum(c.contacts.values()) for c in cases)),
        costs=_costs(cases, costs, recovery),
        complaints=Complaints(
            disputes=complaints.get("dispute_opened", 0),
            opt_outs=sum(len(c.opted_out) for c in cases),
            cease_requests=complaints.get("cease_communication", 0)),
        compliance=Compliance(blocks_by_rule=_count(cases, lambda c: c.blocks),
                              deferrals_by_rule=_count(cases, lambda c: c.deferrals),
                              audit_violations=sum(c.violations for c in cases)))


def _funnel(cases: list[_Case]) -> list[StageCount]:
    counts = Counter(c.outcome or c.stage or "REMINDER" for c in cases)
    order = [*STAGES, *OUTCOMES, *sorted(set(counts) - set(STAGES) - set(OUTCOMES))]
    return [StageCount(stage=s, loans=counts[s]) for s in order if s in counts]


# ---------------------------------------------------------------------------- comparing
def champion_of(experiment: str, arms: Iterable[str],
                experiment_dir: str | None = None) -> str | None:
    """The experiment file's champion arm; the arm named "champion" when there is no such
    file here (an experiment run elsewhere, a file since removed)."""
    try:
        return load_experiment(experiment, experiment_dir).champion.name
    except ValueError:  # ExperimentError: no such file, or one that no longer loads
        return "champion" if "champion" in arms else None


def _difference(metric: str, champion: float | None, challenger: float | None,
                ci: stats.Interval | None) -> Difference:
    diff = None if champion is None or challenger is None else challenger - champion
    return Difference(metric=metric, champion=champion, challenger=challenger,
                      difference=diff,
                      relative=diff / champion if diff is not None and champion else None,
                      ci_low=ci.low if ci else None, ci_high=ci.high if ci else None,
                      significant=ci.significant if ci else False)


def _ratio(cases: list[_Case]) -> float | None:
    handed = sum((c.handed_over for c in cases), Decimal(0))
    return float(sum((c.recovered for c in cases), Decimal(0)) / handed) if handed else None


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def compare(champion: str, challenger: str, a: list[_Case], b: list[_Case]) -> Comparison:
    """`b` (challenger) against `a` (champion)."""
    differences = []
    count = Counter(c.currency for c in a + b)  # the verdict speaks of the most common
    currencies = sorted(count, key=lambda cur: (-count[cur], cur))
    for currency in currencies:
        ca = [c for c in a if c.currency == currency]
        cb = [c for c in b if c.currency == currency]
        ci = stats.ratio_difference(
            [float(c.recovered) for c in ca], [float(c.handed_over) for c in ca],
            [float(c.recovered) for c in cb], [float(c.handed_over) for c in cb])
        metric = RECOVERY if len(currencies) == 1 else f"{RECOVERY}:{currency}"
        differences.append(_difference(metric, _ratio(ca), _ratio(cb), ci))
    cured_a, cured_b = sum(c.cured for c in a), sum(c.cured for c in b)
    differences.append(_difference(
        CURE, cured_a / len(a) if a else None, cured_b / len(b) if b else None,
        stats.proportion_difference(cured_a, len(a), cured_b, len(b))))
    xa = [float(sum(c.contacts.values())) for c in a]
    xb = [float(sum(c.contacts.values())) for c in b]
    differences.append(_difference(CONTACTS, _mean(xa), _mean(xb),
                                   stats.mean_difference(xa, xb)))
    return Comparison(champion=champion, challenger=challenger, differences=differences,
                      verdict=verdict(champion, challenger, differences))


def _comparisons(cases: list[_Case], experiment_dir: str | None) -> list[Comparison]:
    arms: dict[str, dict[str, list[_Case]]] = defaultdict(lambda: defaultdict(list))
    for c in cases:
        if c.experiment:
            arms[c.experiment][c.strategy].append(c)
    out = []
    for experiment in sorted(arms):
        champion = champion_of(experiment, arms[experiment], experiment_dir)
        if champion is None or champion not in arms[experiment]:
            continue
        out += [compare(champion, arm, arms[experiment][champion], group)
                for arm, group in sorted(arms[experiment].items()) if arm != champion]
    return out


def scorers_for(configured: str) -> tuple[str, ...]:
    """The scorers whose segments the report judges: the bundled scorecard and the one
    configured (DUECOURSE_SCORER), once each."""
    return tuple(dict.fromkeys((SCORECARD, configured)))


async def _segment_quality(engine: AsyncEngine, scorers: Sequence[str]
                           ) -> list[SegmentQuality]:
    """Each scorer's segment quality; one that cannot be loaded (a learned scorer without
    its model file) is left out of the report, with a warning, rather than failing it."""
    judged = []
    for name in scorers:
        try:
            judged.append(await segment_quality(engine, name))
        except ValueError as err:
            log.warning("segment quality left out", scorer=name, reason=str(err))
    return judged


async def compute(engine: AsyncEngine, *, by: GroupBy = "strategy", since: date | None = None,
                  costs: CostTable | None = None, now: datetime | None = None,
                  experiment_dir: str | None = None,
                  scorers: Sequence[str] = ()) -> PortfolioFigures:
    """The portfolio's figures grouped `by`, for cases opened from `since` on; costs from
    `costs` (default: the bundled table), experiments' champions from `experiment_dir`
    and the bundled experiment files; how well each of `scorers` assigns segments."""
    costs = costs or load_costs()
    now = now or datetime.now(UTC)
    loaded, latest, attention = await _load(engine, _since(since), now)
    until = min(latest, now) if latest is not None else now
    cases = list(loaded.values())
    groups: dict[str, list[_Case]] = defaultdict(list)
    for c in cases:
        groups[c.key(by)].append(c)
    return PortfolioFigures(
        generated_at=now, since=since, group_by=by,
        groups=[group_figures(k, groups[k], costs, until) for k in sorted(groups)],
        total=group_figures("all", cases, costs, until), funnel=_funnel(cases),
        comparisons=_comparisons(cases, experiment_dir) if by == "strategy" else [],
        segment_quality=await _segment_quality(engine, scorers), attention=attention)
