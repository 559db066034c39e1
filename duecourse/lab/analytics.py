"""Portfolio analytics from the ledger alone, per strategy, segment, jurisdiction or agent.

Read-only and the same for a simulated ledger and a real one. What each figure means:

- **Scope**: the collection cases opened on or after `since` (00:00 UTC). A loan handed
  over twice is two cases; `loans` counts distinct loans.
- **Observed until**: the latest fact in the ledger (audit_events.occurred_at), never
  after `now`. A simulated ledger ends where its simulation ended, so a case is only
  counted as having reached day N when the ledger has seen day N after its hand-over.
- **Groups**: *strategy* is the case's experiment and arm, "experiment/arm"
  (`collection_cases.experiment` and `.strategy`: two experiments' arms of the same name
  are different groups), or its policy when it was not in an experiment. *segment* is
  the first segment the scorer gave the case (its first `segment_changed` audit event),
  "unscored" without one.
  *jurisdiction* is the loan's. *agent* is the agent the case was last assigned to
  (`agent_assigned`), else the assignee of its first task (which may be a queue, such as
  "agents"), else the agent who first logged a contact or outcome on it, else "none".
- **DPD bucket**: a case's DPD at hand-over is the first stage transition's
  `days_past_due` (0 counts as 1-30); days past due keep counting from the due date while
  a loan is unpaid, so on day 30k after hand-over an open case is at hand-over DPD + 30k.
  A case without a transition has no bucket and is left out of roll and bucket cure rates.
- **Roll rates**: one transition per 30-day period a case was observed whole: a case open
  on day 30k since hand-over is in bucket(DPD + 30k) and on day 30(k+1) it is "cured"
  (closed PAID or SETTLED in the period), "closed" (closed otherwise: written off,
  cancelled) or in bucket(DPD + 30(k+1)), for every k whose period ended by the ledger's
  observed end. A case handed over at DPD 10 and open for 100 days of a ledger is three
  transitions: 1-30 to 31-60, 31-60 to 61-90 and 61-90 to 90+. A row's denominator is
  the periods that started in its bucket; a period not yet over is in no roll rate.
- **Cure**: a case closed PAID or SETTLED. CANCELLED cases (the lender withdrew them:
  they say nothing of the borrower, as in training) are left out of every cure rate.
  Cure rate = cured / cases; by bucket: the roll periods that started in the bucket and
  ended cured / the periods that started there.
- **Recovery**, per currency: payments.applied summed / collection_cases.outstanding_at_open
  summed. The curve at day d is the same ratio over the cases observed for at least d days,
  counting payments with `paid_at` up to d days after `opened_at` (a payment dated before
  hand-over counts on day 0), daily up to the longest observation, at most 365 days.
- **Promise kept**: promises whose latest status is KEPT / (KEPT + BROKEN); active and
  withdrawn promises are undecided and not counted.
- **Plan completion**: plans (agreements of type plan) COMPLETED / (COMPLETED + BROKEN +
  LAPSED); active, cancelled and failed plans are not the borrower's result and are left
  out.
- **Right-party contact**: of our outbound attempts that can report an outcome - calls and
  visits (`contact_attempts` on voice or visit, counted as contacts below), contacts an
  agent logged, and contacts an agent reported without asking first (an outcome on a call
  or visit no pending attempt matches, as `duecourse.domain.contact.outcomes` records it)
  - those whose outcome reached the borrower or a guarantor (reached, refused, right party
  verified, promise taken). An outcome completes the latest earlier pending attempt on its
  channel to the same kind of recipient (and address, when it names one), each attempt at
  most once, so the rate is at most 1. Inbound replies (`borrower_replied`: the borrower
  answered a message or called in) are no attempt of ours: `inbound_replies` counts them.
- **Contacts**: contact attempts sent, made by a person, or in doubt (released after the
  channel was called: it may have delivered and charged them); blocked, deferred, failed,
  cancelled and expired ones reached nobody and cost no channel fee. **Agent tasks**:
  tasks an agent completed (status done). **Cost** = contacts x the cost of their channel +
  tasks x the cost of their kind, from the cost table, in its currency. Cost per unit
  recovered is the cost of the cases in that currency over what they recovered (None
  without any): contacts on a GBP loan do not buy USD.
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
  against the champion arm of the same experiment (the experiment file's champion, else
  the arm named "champion") on recovery rate (per currency when the experiment spans
  several, most common currency first: the verdict speaks of that one), cure rate and
  contacts per loan, with 95% intervals (`duecourse.lab.stats`) and the verdict
  (`duecourse.lab.verdict`). All three are counted within a fixed horizon
  (`horizon_days`, 90 by default) of hand-over, over the cases the ledger observed for
  the whole horizon only: a young case has had less time to pay, and an experiment
  re-weighted or stopped part-way gives its arms different age mixes, so counting each
  case to its own age would compare the arms' ages rather than their treatment. (A young
  case that already closed waits too: taking young cures but not young failures would
  favour the younger arm.) Within the horizon: payments with `paid_at` by its end, cured
  = closed PAID or SETTLED by its end (CANCELLED cases out of the cure rate, as above),
  contacts sent (or attempted) by its end. `champion_cases` / `challenger_cases` say how
  many cases each side had.
- **Segment quality**: the ledger does not say which scorer assigned a segment, so each
  scorer asked for (`scorers`: the scorecard and DUECOURSE_SCORER in the report and the
  API) re-scores the hand-over facts of every case in scope (`since`) whose cure within
  its horizon is known (`duecourse.lab.segment_quality`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duecourse.lab import stats
from duecourse.lab.costs import CostTable, load_costs
from duecourse.lab.experiments import experiment_path, parse_experiment
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
HORIZON_DAYS = 90
RIGHT_PARTY = frozenset({"reached", "refused", "right_party_verified", "promise_taken"})
"""Outcomes of an attempt that reached the person who owes: we spoke with them."""
OWES = frozenset({"debtor", "guarantor"})
REPLIED = "borrower_replied"
CALLED = frozenset({"voice", "visit"})
"""Channels whose attempts report an outcome (a message's reply is inbound)."""
MADE = ("sent", "made_by_person", "in_doubt")
EVENT_KINDS = ("segment_changed", "agent_assigned", "contact_outcome", "contact_logged",
               "dispute_opened", "opted_out", "sms_consent_withdrawn", "cease_communication",
               "contact_violation_reported")


def bucket(dpd: int) -> str:
    """The DPD bucket of `dpd` days past due (0 and below: 1-30)."""
    return "1-30" if dpd <= 30 else "31-60" if dpd <= 60 else "61-90" if dpd <= 90 else "90+"


def rate(part: int, whole: int) -> Rate:
    return Rate(part=part, whole=whole, value=part / whole if whole else None)


@dataclass
class _Attempt:
    """An outbound attempt that can report an outcome, or an outcome reported."""

    at: datetime
    channel: str
    recipient_kind: str
    address: str | None
    result: str | None = None  # an outcome's


@dataclass
class _Case:
    """What the figures need of one case, read from its rows."""

    case_id: str
    loan_id: str
    strategy: str  # the experiment arm, else the policy
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
    contacted_at: list[datetime] = field(default_factory=list)
    attempts: list[_Attempt] = field(default_factory=list)  # calls, visits, agents'
    outcomes: list[_Attempt] = field(default_factory=list)  # in recorded order
    tasks_done: Counter[str] = field(default_factory=Counter)
    promises: dict[str, str] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)
    inbound: int = 0
    complaints: Counter[str] = field(default_factory=Counter)
    opted_out: set[str] = field(default_factory=set)  # channels
    blocks: Counter[str] = field(default_factory=Counter)
    deferrals: Counter[str] = field(default_factory=Counter)
    violations: int = 0

    @property
    def cured(self) -> bool:
        return self.outcome in CURED

    @property
    def cancelled(self) -> bool:
        return self.outcome == "CANCELLED"

    @property
    def recovered(self) -> Decimal:
        return sum((a for _, a in self.payments), Decimal(0))

    def key(self, by: GroupBy) -> str:
        if by == "strategy":
            return f"{self.experiment}/{self.strategy}" if self.experiment else self.strategy
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
        for r in await _rows(conn, of(ca, ca.c.case_id, ca.c.channel, ca.c.status,
                                      ca.c.recipient_kind, ca.c.recipient,
                                      func.coalesce(ca.c.sent_at, ca.c.attempted_at)
                                      .label("at")).where(ca.c.status.in_(MADE))
                             .order_by(ca.c.id)):
            _contact(cases[r["case_id"]], r)
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
                                      ae.c.actor_id, ae.c.data, ae.c.occurred_at)
                             .where(ae.c.kind.in_(EVENT_KINDS)).order_by(ae.c.id)):
            _event(cases[r["case_id"]], r)
        latest = (await conn.execute(of(ae, func.max(ae.c.occurred_at)))).scalar()
        attention = await _attention(conn, scope, now)
    return cases, latest, attention


def _aware(moment: Any) -> datetime:
    """An instant from an expression SQLAlchemy did not type (SQLite: text, naive UTC)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _contact(c: _Case, r: Any) -> None:
    """Count one contact attempt; keep it when it is one that reports an outcome."""
    at = _aware(r["at"])
    c.contacts[r["channel"]] += 1
    c.contacted_at.append(at)
    if r["channel"] in CALLED or r["status"] == "made_by_person":
        c.attempts.append(_Attempt(at=at, channel=r["channel"],
                                   recipient_kind=r["recipient_kind"],
                                   address=r["recipient"]))


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
        if details.get("result") == REPLIED:
            c.inbound += 1
        elif details.get("channel") in CALLED:
            c.outcomes.append(_Attempt(
                at=r["occurred_at"], channel=str(details["channel"]),
                recipient_kind=str(details.get("recipient_kind") or (
                    "third_party" if details.get("third_party") else "debtor")),
                address=details.get("address"), result=str(details.get("result"))))
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


def _periods(c: _Case, until: datetime) -> Iterator[tuple[str, str]]:
    """(bucket at the start, where the case was at the end) of each 30-day period since
    hand-over that the ledger observed whole, while the case was open at its start."""
    if c.dpd is None:
        return
    period, k = timedelta(days=ROLL_DAYS), 0
    while c.opened_at + (k + 1) * period <= until:
        start = bucket(c.dpd + k * ROLL_DAYS)
        if c.closed_at is not None and c.closed_at <= c.opened_at + (k + 1) * period:
            yield start, "cured" if c.cured else "closed"
            return
        k += 1
        yield start, bucket(c.dpd + k * ROLL_DAYS)


def _roll_rates(cases: list[_Case], until: datetime) -> dict[str, dict[str, Rate]]:
    counts: dict[str, Counter[str]] = {b: Counter() for b in BUCKETS}
    for c in cases:
        for start, end in _periods(c, until):
            counts[start][end] += 1
    return {b: {to: rate(counts[b][to], sum(counts[b].values()))
                for to in (*BUCKETS, "cured", "closed")} for b in BUCKETS}


def _cure_by_bucket(cases: list[_Case], until: datetime) -> dict[str, Rate]:
    """Per bucket: the roll periods that started there and ended cured, of those that
    started there (CANCELLED cases left out)."""
    cured: Counter[str] = Counter()
    started: Counter[str] = Counter()
    for c in cases:
        if c.cancelled:
            continue
        for start, end in _periods(c, until):
            started[start] += 1
            cured[start] += end == "cured"
    return {b: rate(cured[b], started[b]) for b in BUCKETS}


def _right_party(c: _Case) -> tuple[int, int]:
    """(attempts that reached the person who owes, attempts that can report an outcome)
    of one case: each outcome completes the latest earlier pending attempt it matches,
    else it is a contact the agent made without asking (an attempt of its own)."""
    timeline = sorted([(a.at, 0, i) for i, a in enumerate(c.attempts)] +
                      [(o.at, 1, i) for i, o in enumerate(c.outcomes)])
    pending: list[_Attempt] = []
    reached = made = 0
    for _, is_outcome, i in timeline:
        if not is_outcome:
            pending.append(c.attempts[i])
            made += 1
            continue
        o = c.outcomes[i]
        match = next((a for a in reversed(pending) if a.channel == o.channel and
                      a.recipient_kind == o.recipient_kind and
                      o.address in (None, a.address)), None)
        if match is None:
            made += 1
        else:
            pending.remove(match)
        reached += o.result in RIGHT_PARTY and o.recipient_kind in OWES
    return reached, made


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


def _cost(c: _Case, costs: CostTable) -> Decimal:
    return sum((costs.contact(ch) * n for ch, n in c.contacts.items()), Decimal(0)) + \
        sum((costs.task(kind) * n for kind, n in c.tasks_done.items()), Decimal(0))


def _costs(cases: list[_Case], costs: CostTable, recovery: list[Recovery]) -> Costs:
    channels: Counter[str] = Counter()
    tasks: Counter[str] = Counter()
    for c in cases:
        channels.update(c.contacts)
        tasks.update(c.tasks_done)
    cost = sum((_cost(c, costs) for c in cases), Decimal(0))
    local = sum((_cost(c, costs) for c in cases if c.currency == costs.currency), Decimal(0))
    contacts, cured = sum(channels.values()), sum(c.cured for c in cases)
    recovered = next((r.recovered for r in recovery if r.currency == costs.currency),
                     Decimal(0))
    return Costs(
        contacts=contacts, contacts_by_channel=dict(sorted(channels.items())),
        agent_tasks=sum(tasks.values()), cost=cost, currency=costs.currency,
        contacts_per_cure=contacts / cured if cured else None,
        cost_per_cure=(cost / cured).quantize(Decimal("0.01")) if cured else None,
        cost_per_unit_recovered=(local / recovered).quantize(Decimal("0.0001"))
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
    right_party = [_right_party(c) for c in cases]
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
        cure_rate_by_bucket=_cure_by_bucket(cases, until),
        cure_rate=rate(cured, sum(not c.cancelled for c in cases)),
        recovery=recovery,
        promise_kept_rate=rate(promises.count("KEPT"),
                               promises.count("KEPT") + promises.count("BROKEN")),
        plan_completion_rate=rate(plans.count("COMPLETED"), ended_plans),
        right_party_contact_rate=rate(sum(r for r, _ in right_party),
                                      sum(m for _, m in right_party)),
        inbound_replies=sum(c.inbound for c in cases),
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
    """The experiment file's champion arm, read without checking its policies (they may
    live in a policy directory the report was not told of); the arm named "champion" when
    there is no such file here (an experiment run elsewhere, a file since removed) - else
    None, with a warning: the comparison is left out rather than guessed."""
    try:
        return parse_experiment(experiment_path(experiment, experiment_dir)).champion.name
    except ValueError as err:  # ExperimentError: no such file, or one that does not parse
        if "champion" in arms:
            return "champion"
        log.warning("experiment left out of the comparisons", experiment=experiment,
                    reason=str(err))
        return None


def _difference(metric: str, champion: float | None, challenger: float | None,
                ci: stats.Interval | None) -> Difference:
    diff = None if champion is None or challenger is None else challenger - champion
    return Difference(metric=metric, champion=champion, challenger=challenger,
                      difference=diff,
                      relative=diff / champion if diff is not None and champion else None,
                      ci_low=ci.low if ci else None, ci_high=ci.high if ci else None,
                      significant=ci.significant if ci else False)


@dataclass(frozen=True)
class _Within:
    """One case as the comparison counts it: what happened within the horizon."""

    currency: str
    handed_over: Decimal
    recovered: Decimal
    cured: bool
    cancelled: bool
    contacts: int


def _within(cases: list[_Case], horizon: timedelta, until: datetime) -> list[_Within]:
    """The cases observed for the whole horizon, counted to its end."""
    out = []
    for c in cases:
        end = c.opened_at + horizon
        if end > until:
            continue  # too young: its horizon has not passed
        out.append(_Within(
            currency=c.currency, handed_over=c.handed_over,
            recovered=sum((a for at, a in c.payments if at <= end), Decimal(0)),
            cured=c.cured and c.closed_at is not None and c.closed_at <= end,
            cancelled=c.cancelled, contacts=sum(at <= end for at in c.contacted_at)))
    return out


def _ratio(cases: list[_Within]) -> float | None:
    handed = sum((c.handed_over for c in cases), Decimal(0))
    return float(sum((c.recovered for c in cases), Decimal(0)) / handed) if handed else None


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def compare(champion: str, challenger: str, a: list[_Case], b: list[_Case], *,
            until: datetime, horizon_days: int = HORIZON_DAYS,
            experiment: str = "") -> Comparison:
    """`b` (challenger) against `a` (champion), each case counted within `horizon_days`
    of its hand-over, of those observed that long by `until`."""
    horizon = timedelta(days=horizon_days)
    wa, wb = _within(a, horizon, until), _within(b, horizon, until)
    differences = []
    count = Counter(c.currency for c in wa + wb)  # the verdict speaks of the most common
    currencies = sorted(count, key=lambda cur: (-count[cur], cur))
    for currency in currencies:
        ca = [c for c in wa if c.currency == currency]
        cb = [c for c in wb if c.currency == currency]
        ci = stats.ratio_difference(
            [float(c.recovered) for c in ca], [float(c.handed_over) for c in ca],
            [float(c.recovered) for c in cb], [float(c.handed_over) for c in cb])
        metric = RECOVERY if len(currencies) == 1 else f"{RECOVERY}:{currency}"
        differences.append(_difference(metric, _ratio(ca), _ratio(cb), ci))
    na, nb = sum(not c.cancelled for c in wa), sum(not c.cancelled for c in wb)
    cured_a, cured_b = sum(c.cured for c in wa), sum(c.cured for c in wb)
    differences.append(_difference(
        CURE, cured_a / na if na else None, cured_b / nb if nb else None,
        stats.proportion_difference(cured_a, na, cured_b, nb)))
    xa, xb = [float(c.contacts) for c in wa], [float(c.contacts) for c in wb]
    differences.append(_difference(CONTACTS, _mean(xa), _mean(xb),
                                   stats.mean_difference(xa, xb)))
    return Comparison(champion=champion, challenger=challenger, differences=differences,
                      verdict=verdict(champion, challenger, differences, horizon_days),
                      experiment=experiment, champion_cases=len(wa),
                      challenger_cases=len(wb))


def _comparisons(cases: list[_Case], experiment_dir: str | None, until: datetime,
                 horizon_days: int) -> list[Comparison]:
    arms: dict[str, dict[str, list[_Case]]] = defaultdict(lambda: defaultdict(list))
    for c in cases:
        if c.experiment:
            arms[c.experiment][c.strategy].append(c)
    out = []
    for experiment in sorted(arms):
        champion = champion_of(experiment, arms[experiment], experiment_dir)
        if champion is None or champion not in arms[experiment]:
            continue
        out += [compare(champion, arm, arms[experiment][champion], group, until=until,
                        horizon_days=horizon_days, experiment=experiment)
                for arm, group in sorted(arms[experiment].items()) if arm != champion]
    return out


def scorers_for(configured: str) -> tuple[str, ...]:
    """The scorers whose segments the report judges: the bundled scorecard and the one
    configured (DUECOURSE_SCORER), once each."""
    return tuple(dict.fromkeys((SCORECARD, configured)))


async def _segment_quality(engine: AsyncEngine, scorers: Sequence[str],
                           since: datetime | None) -> list[SegmentQuality]:
    """Each scorer's segment quality; one that cannot be loaded (a learned scorer without
    its model file) is left out of the report, with a warning, rather than failing it."""
    judged = []
    for name in scorers:
        try:
            judged.append(await segment_quality(engine, name, since=since))
        except ValueError as err:
            log.warning("segment quality left out", scorer=name, reason=str(err))
    return judged


async def compute(engine: AsyncEngine, *, by: GroupBy = "strategy", since: date | None = None,
                  costs: CostTable | None = None, now: datetime | None = None,
                  experiment_dir: str | None = None, scorers: Sequence[str] = (),
                  horizon_days: int = HORIZON_DAYS) -> PortfolioFigures:
    """The portfolio's figures grouped `by`, for cases opened from `since` on; costs from
    `costs` (default: the bundled table), experiments' champions from `experiment_dir`
    and the bundled experiment files, arms compared within `horizon_days` of hand-over;
    how well each of `scorers` assigns segments."""
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or \
            horizon_days < 1:
        raise ValueError(f"horizon_days must be a whole number of days, at least 1, not "
                         f"{horizon_days!r}")
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
        comparisons=_comparisons(cases, experiment_dir, until, horizon_days)
        if by == "strategy" else [], horizon_days=horizon_days,
        segment_quality=await _segment_quality(engine, scorers, _since(since)),
        attention=attention)
