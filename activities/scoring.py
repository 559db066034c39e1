"""`score_loan`: the pluggable segment scorer (default: the transparent scorecard)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duecourse.domain.scoring import ScoreInput, ScoreResult
from duecourse.temporal.contracts import SCORE_LOAN

log = structlog.get_logger(__name__)

Scorer = Callable[[ScoreInput], ScoreResult]


def load_scorer(path: str) -> Scorer:
    """`module:function`, e.g. `duecourse.domain.scoring:scorecard` or your model's."""
    module, _, name = path.partition(":")
    try:
        scorer = getattr(import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"cannot load scorer {path!r}: {err}") from err
    if not callable(scorer):
        raise ValueError(f"scorer {path!r} is not callable")
    return scorer  # type: ignore[no-any-return]


def score(scorer: Scorer, facts: ScoreInput) -> ScoreResult:
    """A scorer that cannot be reached (OSError, a timeout) is retryable; any other error
    is a bug in the scorer, so it is not: the loan keeps its segment and ops are told."""
    try:
        result = scorer(facts)
    except (OSError, TimeoutError) as err:
        raise ApplicationError(f"scorer unavailable: {type(err).__name__}",
                               type="ScorerUnavailable") from None
    except Exception as err:
        raise ApplicationError(f"scorer failed: {type(err).__name__}: {err}",
                               type="ScorerError", non_retryable=True) from None
    if not isinstance(result, ScoreResult):
        raise ApplicationError(f"scorer returned {type(result).__name__}, not a "
                               "ScoreResult", type="ScorerError", non_retryable=True)
    log.info("loan scored", loan_id=facts.loan_id, segment=result.segment,
             score=result.score)
    return result


class ScoringActivities:
    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer

    @activity.defn(name=SCORE_LOAN)
    async def score_loan(self, facts: ScoreInput) -> ScoreResult:
        """Rescoring during the loan's life (the first score is taken at hand-over)."""
        return score(self._scorer, facts)
