"""What the portfolio analytics say, as one document: the shape `duecourse report --json`
prints, `GET /v1/portfolio/analytics` serves, and the HTML report and the /ops page draw.

Counts are integers and amounts `Decimal` per currency; a rate is its numerator and
denominator with the ratio (None when nothing was counted, never a made-up 0). The same
document comes from a simulated ledger and a real one."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

BUCKETS = ("1-30", "31-60", "61-90", "90+")
"""DPD buckets of the roll-rate matrix and the cure rates (the domain reference's)."""

GroupBy = Literal["strategy", "segment", "jurisdiction", "agent"]


class Rate(BaseModel):
    """`part` of `whole`; `value` = part / whole, None when whole is 0."""

    part: int
    whole: int
    value: float | None


class CurvePoint(BaseModel):
    """Share of the amount handed over recovered by `day` days after hand-over."""

    day: int
    recovered: float


class Recovery(BaseModel):
    """Per currency: what was handed over and what came back."""

    currency: str
    handed_over: Decimal
    recovered: Decimal
    rate: float | None
    curve: list[CurvePoint] = Field(default_factory=list)


class Costs(BaseModel):
    """Contacts and their cost (cost per contact per channel and per agent task from the
    lab's cost settings), per cure and per unit recovered."""

    contacts: int
    contacts_by_channel: dict[str, int] = Field(default_factory=dict)
    agent_tasks: int = 0
    cost: Decimal = Decimal("0")
    currency: str = ""
    contacts_per_cure: float | None = None
    cost_per_cure: Decimal | None = None
    cost_per_unit_recovered: Decimal | None = None


class Complaints(BaseModel):
    """The complaint proxy: disputes, opt-outs and cease requests."""

    disputes: int = 0
    opt_outs: int = 0
    cease_requests: int = 0


class Compliance(BaseModel):
    blocks_by_rule: dict[str, int] = Field(default_factory=dict)
    deferrals_by_rule: dict[str, int] = Field(default_factory=dict)
    audit_violations: int = 0


class GroupFigures(BaseModel):
    """One strategy's (segment's, jurisdiction's, agent's) figures."""

    key: str
    loans: int
    cases: int
    closed: int
    outcomes: dict[str, int] = Field(default_factory=dict)  # PAID, SETTLED, WRITTEN_OFF...
    roll_rates: dict[str, dict[str, Rate]] = Field(
        default_factory=dict, description="from bucket -> to bucket (or 'cured') -> rate")
    cure_rate_by_bucket: dict[str, Rate] = Field(default_factory=dict)
    cure_rate: Rate
    recovery: list[Recovery] = Field(default_factory=list)
    promise_kept_rate: Rate
    plan_completion_rate: Rate
    right_party_contact_rate: Rate
    costs: Costs
    complaints: Complaints
    compliance: Compliance
    inbound_replies: int = Field(default=0, description="the borrower replied or called in "
                                 "(not in the right-party contact rate: no attempt of ours)")


class StageCount(BaseModel):
    """The funnel: loans now in each stage (running) or closed by outcome."""

    stage: str
    loans: int


class Difference(BaseModel):
    """Challenger minus champion on one metric, with its 95% confidence interval."""

    metric: str
    champion: float | None
    challenger: float | None
    difference: float | None
    relative: float | None = Field(description="difference / champion")
    ci_low: float | None
    ci_high: float | None
    significant: bool


class Comparison(BaseModel):
    """A challenger against the champion, and the verdict in plain words."""

    champion: str
    challenger: str
    differences: list[Difference]
    verdict: str
    experiment: str = ""
    champion_cases: int = Field(default=0, description="cases observed for the horizon")
    challenger_cases: int = Field(default=0, description="cases observed for the horizon")


class SegmentQuality(BaseModel):
    """How well a scorer's segments predict cure: cure rate per segment and the ranking's
    AUC (0.5 = no better than chance)."""

    scorer: str
    cure_rate_by_segment: dict[str, Rate]
    auc: float | None


class Attention(BaseModel):
    """What needs a person now (for the /ops page): counts, never borrower data."""

    open_alerts: int = 0
    open_tasks: int = 0
    overdue_tasks: int = 0


class PortfolioFigures(BaseModel):
    """The whole document."""

    schema_: Literal["duecourse.portfolio-analytics/1"] = Field(
        default="duecourse.portfolio-analytics/1", alias="schema")
    generated_at: datetime
    since: date | None = None
    group_by: GroupBy
    groups: list[GroupFigures]
    total: GroupFigures
    funnel: list[StageCount] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    horizon_days: int = Field(default=90, description="comparisons count cure, recovery "
                              "and contacts within this many days of hand-over")
    segment_quality: list[SegmentQuality] = Field(default_factory=list)
    attention: Attention = Field(default_factory=Attention)

    model_config = {"populate_by_name": True}
