"""Train the learned scorer on a ledger's own outcomes (`duecourse scorer train`).

The ledger does not keep the scorer's inputs (a `segment_changed` event keeps only the
score and reasons, and an unchanged segment records nothing), so each input is rebuilt
from the facts the ledger does keep, as the collection had them at the time: one
observation at hand-over and one at each fact that makes the workflow score again (a
payment, a promise kept or broken, a contact outcome, a plan or settlement changing),
each strictly before the case closed (or reached the horizon below). Contacts and
outcomes are replayed through the same `apply_outcome` the collection and the audit use,
so conversations, failed attempts in a row and a wrong number count as the collection
counted them.

Targets, within a horizon (HORIZON_DAYS after hand-over), for every case whose outcome
within it is known - closed, or open past the horizon by the ledger's latest fact (a
CANCELLED case says nothing about the borrower; one open for less is left out, not counted
as failed): *cure* - the case closed PAID or SETTLED within the horizon; *willingness* -
after the observation the borrower paid something, promised, or agreed a plan or
settlement; *ability* - of the observations a payment followed, the case closed PAID (paid
in full) rather than settled, written off or left owing part. Observations stop at the
close or the horizon, whichever comes first. Each case weighs the same however many
observations it has; the held-out share is whole cases (its observations are alike),
fixed by `random_state`, so the same ledger always gives the same model."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.domain.calendar import days_past_due
from duecourse.domain.case.commands import ContactResult
from duecourse.domain.compliance.model import AttemptResult, ContactEvent, RecipientKind
from duecourse.domain.contact.outcomes import apply_outcome
from duecourse.domain.loan import Borrower
from duecourse.domain.policy import Channel
from duecourse.domain.scoring import ScoreInput
from duecourse.lab.learned_scorer import (
    FEATURES,
    Cutoffs,
    LearnedModel,
    Target,
    features_of,
)
from duecourse.store import tables as t

CURED = ("PAID", "SETTLED")
LEARNABLE = (*CURED, "WRITTEN_OFF")
"""Outcomes that say whether the borrower cured (CANCELLED: the lender withdrew it)."""
MIN_CASES = 10
HORIZON_DAYS = 90
"""Cure counts if the case closed PAID or SETTLED within this many days of hand-over."""
CENT = Decimal("0.01")


class TrainingError(ValueError):
    """The ledger cannot teach a model (too few known cases, or only one outcome)."""


@dataclass(frozen=True)
class Observation:
    """The scorer's input for one case at one moment, and how the case ended."""

    case_id: str
    at: datetime
    facts: ScoreInput
    cured: bool  # closed PAID or SETTLED within the horizon
    willing: bool
    able: bool | None  # paid in full (PAID) rather than part; None: nothing paid after
    handover: bool  # the first observation: the facts the hand-over scored


@dataclass
class _Case:
    """One case's facts from the ledger, oldest first once sorted."""

    row: dict[str, Any]
    borrower: Borrower
    ends: datetime  # the close, or the horizon if that comes first: what is observed
    timeline: list[tuple[datetime, int, str, dict[str, Any]]] = field(default_factory=list)


def _ratio(part: Decimal, whole: Decimal) -> Decimal:
    """As `score_input` rounds it (a zero whole, which intake refuses, as 0)."""
    return (part / whole).quantize(CENT) if whole else Decimal("0.00")


@dataclass
class _Replay:
    """What the collection knew of a case so far (the inputs of `score_input`)."""

    case: _Case
    outstanding: Decimal
    paid: Decimal = Decimal(0)
    payments: int = 0
    promises: dict[str, str] = field(default_factory=dict)
    plans_broken: set[str] = field(default_factory=set)
    history: list[ContactEvent] = field(default_factory=list)
    refusals: int = 0
    dispute_opened: datetime | None = None
    dispute_verified: datetime | None = None

    def apply(self, at: datetime, what: str, row: dict[str, Any]) -> bool:
        """Take one fact; True when the workflow would score again after it."""
        if what == "payment":
            self.payments += 1
            self.paid += row["amount"]
            self.outstanding = row["outstanding_after"]
            return True
        if what == "promise":
            self.promises[row["promise_id"]] = row["status"]
            return row["status"] in ("KEPT", "BROKEN")
        if what == "contact":
            try:
                channel, kind = Channel(row["channel"]), RecipientKind(row["recipient_kind"])
            except ValueError:  # a channel this version does not know: not a contact it
                return False  # could have counted
            self.history.append(ContactEvent(at=at, channel=channel, address=row["recipient"],
                                             recipient_kind=kind))
            return False
        data = row["data"]
        details = data.get("details") or {}
        if what == "agreement":
            if data.get("agreement_type") == "plan" and data.get("status") == "BROKEN":
                self.plans_broken.add(str(data.get("agreement_id")))
            return data.get("status") not in (None, "ACTIVE", "PENDING_APPROVAL", "ACCEPTED")
        if what == "dispute_opened":
            self.dispute_opened = at
        elif what == "dispute_verified":
            self.dispute_verified = at
        elif what == "contact_outcome":
            self._outcome(at, details)
            return True
        return False

    def _outcome(self, at: datetime, details: dict[str, Any]) -> None:
        try:
            result = ContactResult(details.get("result", ""))
            channel = Channel(details["channel"])
            kind = RecipientKind(details.get("recipient_kind") or (
                "third_party" if details.get("third_party") else "debtor"))
        except (ValueError, KeyError):  # not an outcome the collection would have taken
            return
        if result is ContactResult.REFUSED and kind is RecipientKind.DEBTOR:
            self.refusals += 1
        applied = apply_outcome(self.history, at, channel, kind, details.get("address"),
                                details.get("person"), result, self.case.borrower)
        if applied.added is not None:
            self.history.append(applied.added)

    def facts(self, at: datetime) -> ScoreInput:
        """`Collection.score_input` from the replayed facts."""
        row, debtor = self.case.row, RecipientKind.DEBTOR
        attempts = [e for e in self.history if e.recipient_kind is debtor
                    and e.channel in (Channel.VOICE, Channel.SMS)]
        in_a_row = 0
        for event in reversed(attempts):
            if event.result not in (AttemptResult.FAILED, AttemptResult.UNANSWERED):
                break
            in_a_row += 1
        opened, verified = self.dispute_opened, self.dispute_verified
        return ScoreInput(
            loan_id=row["loan_id"],
            days_past_due=days_past_due(row["due_date"], at, self.case.borrower.timezone),
            outstanding_ratio=_ratio(self.outstanding, row["principal"]),
            payments=self.payments,
            paid_amount_ratio=_ratio(self.paid, row["outstanding_at_open"]),
            promises_kept=sum(s == "KEPT" for s in self.promises.values()),
            promises_broken=sum(s == "BROKEN" for s in self.promises.values()),
            plans_broken=len(self.plans_broken),
            conversations=sum(e.result is AttemptResult.ANSWERED for e in self.history),
            refusals=self.refusals, failed_attempts_in_a_row=in_a_row,
            invalid_contact=any(e.result is AttemptResult.FAILED and e.channel is Channel.VOICE
                                for e in attempts[-3:]),
            disputed=opened is not None and (verified is None or verified < opened))


_EVENTS = ("contact_outcome", "agreement", "dispute_opened", "dispute_verified")
_ENGAGED = ("payment", "promise", "agreement")
"""Facts that show willingness when they come after an observation."""


async def _known_cases(engine: AsyncEngine, horizon: timedelta,
                       since: datetime | None = None) -> dict[str, _Case]:
    """Every case (opened from `since` on, when given) whose cure within `horizon` is
    known, with its facts: closed (but not CANCELLED), or open for longer than `horizon`
    by the ledger's latest fact."""
    c, ln = t.collection_cases, t.loans
    a, p, pr, ca = t.audit_events, t.payments, t.promises, t.contact_attempts
    query = (select(c.c.case_id, c.c.loan_id, c.c.due_date, c.c.outstanding_at_open,
                    c.c.opened_at, c.c.closed_at, c.c.outcome, ln.c.principal, ln.c.borrower)
             .join(ln, ln.c.loan_id == c.c.loan_id)
             .where(or_(c.c.outcome.in_(LEARNABLE), c.c.outcome.is_(None)))
             .order_by(c.c.case_id))
    if since is not None:
        query = query.where(c.c.opened_at >= since)
    async with engine.connect() as conn:
        as_of = (await conn.execute(select(func.max(a.c.occurred_at)))).scalar()
        cases: dict[str, _Case] = {}
        for r in (await conn.execute(query)).mappings():
            until = r["opened_at"] + horizon
            if r["closed_at"] is None and (as_of is None or until > _aware(as_of)):
                continue  # still open and younger than the horizon: not known yet
            ends = until if r["closed_at"] is None else min(r["closed_at"], until)
            cases[r["case_id"]] = _Case(dict(r), Borrower.model_construct(**r["borrower"]),
                                        ends)
        sources: list[tuple[str, int, Any]] = [
            ("payment", 0, select(p.c.case_id, p.c.id, p.c.amount, p.c.outstanding_after,
                                  p.c.recorded_at.label("at"))),
            ("promise", 0, select(pr.c.case_id, pr.c.id, pr.c.promise_id, pr.c.status,
                                  pr.c.occurred_at.label("at"))),
            ("event", 2, select(a.c.case_id, a.c.id, a.c.kind, a.c.data,
                                a.c.occurred_at.label("at")).where(a.c.kind.in_(_EVENTS))),
            # delivered contacts, when their send passed its last check (as the audit)
            ("contact", 1, select(ca.c.case_id, ca.c.id, ca.c.channel, ca.c.recipient,
                                  ca.c.recipient_kind, ca.c.fenced_at, ca.c.scheduled_for)
             .where(ca.c.status.in_(("sent", "made_by_person")))),
        ]
        for what, order, source in sources:
            for r in (await conn.execute(source)).mappings():
                case = cases.get(r["case_id"])
                if case is None:
                    continue
                at = r.get("at") or r.get("fenced_at") or r["scheduled_for"]
                kind = r["kind"] if what == "event" else what
                case.timeline.append((at, order, kind, dict(r)))
    for case in cases.values():
        case.timeline.sort(key=lambda item: (item[0], item[1], item[3]["id"]))
    return cases


def _aware(moment: datetime) -> datetime:
    """An aggregate's instant (SQLite hands MAX() back as text's naive datetime) in UTC."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _observe(case: _Case) -> list[Observation]:
    """The case's observations: at hand-over, then after each fact that rescored it,
    before it closed or reached the horizon."""
    row, ends = case.row, case.ends
    opened, closed = row["opened_at"], row["closed_at"]
    within = closed is not None and closed <= ends  # closed by the horizon
    cured = within and row["outcome"] in CURED
    engaged = [at for at, _, what, _ in case.timeline if what in _ENGAGED and at <= ends]
    paid = [at for at, _, what, _ in case.timeline if what == "payment" and at <= ends]
    in_full = within and row["outcome"] == "PAID"
    replay = _Replay(case, outstanding=row["outstanding_at_open"])
    moments: list[tuple[datetime, ScoreInput]] = [(opened, replay.facts(opened))]
    for at, _, what, fact in case.timeline:
        if at >= ends:
            break
        if replay.apply(at, what, fact) and at >= opened:
            facts = replay.facts(at)
            if moments[-1][0] == at:
                moments[-1] = (at, facts)
            else:
                moments.append((at, facts))
    return [Observation(case_id=row["case_id"], at=at, facts=facts, cured=cured,
                        willing=any(e > at for e in engaged),
                        able=in_full if any(e > at for e in paid) else None,
                        handover=i == 0)
            for i, (at, facts) in enumerate(moments)]


async def observations(engine: AsyncEngine, handover_only: bool = False,
                       horizon_days: int = HORIZON_DAYS,
                       since: datetime | None = None) -> list[Observation]:
    """The observations of every case (opened from `since` on, when given) whose cure
    within `horizon_days` is known (or only each hand-over's), case by case."""
    cases = await _known_cases(engine, timedelta(days=horizon_days), since)
    rows = [o for case in cases.values() for o in _observe(case)]
    return [o for o in rows if o.handover] if handover_only else rows


# ------------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class Trained:
    """A model and what to tell the person who trained it."""

    model: LearnedModel
    top: list[tuple[str, float]]  # cure coefficients, largest |value| first


def _fit(x: Any, y: Any, w: Any, random_state: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=random_state).fit(
        x, y, sample_weight=w)


def _target(z: Any, y: Any, w: Any, train: Any, test: Any,
            random_state: int) -> Target | None:
    """Fit one target on the `train` rows, judge it on the `test` rows; None when the
    training rows hold only one kind (nothing to learn)."""
    from sklearn.metrics import roc_auc_score

    if len(set(y[train].tolist())) < 2:
        return None
    fitted = _fit(z[train], y[train], w[train], random_state)
    auc = None
    if len(set(y[test].tolist())) == 2:
        auc = float(roc_auc_score(y[test], fitted.predict_proba(z[test])[:, 1],
                                  sample_weight=w[test]))
    return Target(coefficients=[float(c) for c in fitted.coef_[0]],
                  intercept=float(fitted.intercept_[0]), rows=len(train),
                  positives=int(y[train].sum()), auc=auc)


def fit(rows: list[Observation], source: str, random_state: int = 0,
        test_share: float = 0.25, cutoffs: Cutoffs | None = None,
        now: datetime | None = None, horizon_days: int = HORIZON_DAYS) -> Trained:
    """Fit cure, and where the rows have both kinds willingness and ability, on
    standardised features; AUCs are on the held-out cases."""
    import numpy as np
    from sklearn.model_selection import GroupShuffleSplit
    from sklearn.preprocessing import StandardScaler

    cases = sorted({o.case_id for o in rows})
    cured = {o.case_id for o in rows if o.cured}
    if len(cases) < MIN_CASES:
        raise TrainingError(f"the ledger has {len(cases)} case(s) whose cure is known "
                            f"(closed, or open past the {horizon_days}-day horizon): "
                            f"training needs {MIN_CASES}")
    if not cured or len(cured) == len(cases):
        raise TrainingError(f"all {len(cases)} cases whose cure is known "
                            f"{'cured' if cured else 'did not cure'} within "
                            f"{horizon_days} days: training needs both kinds")
    per_case: dict[str, int] = defaultdict(int)
    for o in rows:
        per_case[o.case_id] += 1
    x = np.array([features_of(o.facts) for o in rows])
    y = np.array([int(o.cured) for o in rows])
    willing = np.array([int(o.willing) for o in rows])
    able = np.array([int(bool(o.able)) for o in rows])
    paid_after = np.array([o.able is not None for o in rows])
    w = np.array([1 / per_case[o.case_id] for o in rows])
    groups = np.array([o.case_id for o in rows])
    train, test = next(GroupShuffleSplit(n_splits=1, test_size=test_share,
                                         random_state=random_state).split(x, y, groups))
    if len(set(y[train].tolist())) < 2:  # a tiny ledger's split: learn from every case
        train, test = np.arange(len(rows)), np.arange(0)
    with np.errstate(invalid="ignore"):  # a constant feature's weighted variance can
        # round to just below 0; its scale is then 1, as for any constant feature
        scaler = StandardScaler().fit(x[train], sample_weight=w[train])
    z = scaler.transform(x)
    cure = _target(z, y, w, train, test, random_state)
    assert cure is not None  # both kinds are in `train`: checked above
    will = _target(z, willing, w, train, test, random_state)
    ability = _target(z, able, w, train[paid_after[train]], test[paid_after[test]],
                      random_state)
    model = LearnedModel(
        features=list(FEATURES), means=[float(m) for m in scaler.mean_],
        scales=[float(s) for s in scaler.scale_], cure=cure, willingness=will,
        ability=ability,
        cutoffs=cutoffs or Cutoffs(), trained_at=now or datetime.now(UTC),
        horizon_days=horizon_days, rows=len(rows), cases=len(cases),
        held_out_cases=len(set(groups[test].tolist())),
        random_state=random_state, source=source)
    top = sorted(zip(FEATURES, cure.coefficients, strict=True),
                 key=lambda item: (-abs(item[1]), FEATURES.index(item[0])))
    return Trained(model=model, top=top)


def describe_source(url: str) -> str:
    """The ledger's dialect and database, never its credentials."""
    parsed = make_url(url)
    return f"{parsed.get_backend_name()}:{parsed.database or ''}"


async def train(engine: AsyncEngine, source: str, random_state: int = 0,
                cutoffs: Cutoffs | None = None, horizon_days: int = HORIZON_DAYS) -> Trained:
    """Read the ledger's observations and fit the model."""
    rows = await observations(engine, horizon_days=horizon_days)
    return fit(rows, source, random_state, cutoffs=cutoffs, horizon_days=horizon_days)
