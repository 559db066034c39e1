"""Treatment by segment: a transparent points scorecard over loan and behaviour data.

Every point is explained in `reasons`, so an agent (or a regulator) can see why a loan is
treated as it is. Replace it by naming another `module:function` in DUECOURSE_SCORER.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel

from duecourse.domain.policy import Segment


class ScoreInput(BaseModel):
    loan_id: str
    days_past_due: int
    outstanding_ratio: Decimal  # outstanding / principal
    payments: int
    paid_amount_ratio: Decimal  # paid / outstanding at hand-over
    promises_kept: int
    promises_broken: int
    plans_broken: int
    conversations: int  # answered calls or replies
    refusals: int
    failed_attempts_in_a_row: int
    invalid_contact: bool
    disputed: bool


class ScoreResult(BaseModel):
    segment: Segment
    score: int
    reasons: list[str]


def scorecard(inp: ScoreInput) -> ScoreResult:
    points: list[tuple[int, str]] = []

    def add(value: int, why: str) -> None:
        points.append((value, why))

    if inp.days_past_due <= 7:
        add(15, "early (DPD <= 7)")
    elif inp.days_past_due > 30:
        add(-10, "late (DPD > 30)")
    if inp.outstanding_ratio <= Decimal("0.3"):
        add(10, "small balance left")
    if inp.payments:
        add(15, f"{inp.payments} payment(s) made")
    if inp.promises_kept:
        add(20 * inp.promises_kept, f"{inp.promises_kept} promise(s) kept")
    if inp.promises_broken:
        add(-25 * inp.promises_broken, f"{inp.promises_broken} promise(s) broken")
    if inp.plans_broken:
        add(-20 * inp.plans_broken, f"{inp.plans_broken} plan(s) broken")
    if inp.conversations:
        add(10, "talks with us")
    if inp.refusals:
        add(-30, "refused to pay")
    score = sum(p for p, _ in points)
    reasons = [f"{p:+d} {why}" for p, why in points]
    if (inp.invalid_contact or inp.failed_attempts_in_a_row >= 3) and not inp.conversations:
        segment = Segment.UNREACHABLE
        reasons.append("unreachable: no conversation and failed contact attempts")
    elif inp.refusals or inp.promises_broken >= 2 or score <= -25:
        segment = Segment.WONT_PAY
    elif inp.days_past_due <= 7 and not inp.promises_broken and not inp.plans_broken \
            and score >= 10:
        segment = Segment.SELF_CURE
    else:
        segment = Segment.CANT_PAY
    return ScoreResult(segment=segment, score=score, reasons=reasons)
