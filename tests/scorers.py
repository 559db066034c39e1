"""A scorer for tests: the segment is written in the loan id (e.g. `L-wont_pay-1234`)."""

from __future__ import annotations

from duecourse.domain.policy import Segment
from duecourse.domain.scoring import ScoreInput, ScoreResult


def by_loan_id(facts: ScoreInput) -> ScoreResult:
    segment = next((s for s in Segment if f"-{s.value}-" in facts.loan_id),
                   Segment.CANT_PAY)
    return ScoreResult(segment=segment, score=0, reasons=[f"test scorer: {segment.value}"])


def fails_after_payment(facts: ScoreInput) -> ScoreResult:
    """Segments by loan id, then breaks (a scorer bug) once the loan has a payment."""
    if facts.payments:
        raise RuntimeError("model weights could not be read")
    return by_loan_id(facts)
