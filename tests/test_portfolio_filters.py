"""The filters `GET /v1/loans` and `duecourse loans` share, and the one query they make."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from duecourse.domain.case.state import Outcome, Stage
from duecourse.domain.policy import Segment
from duecourse.temporal.portfolio_query import InvalidFilter, LoanFilters


def test_every_filter_given_is_a_clause_of_one_query() -> None:
    assert LoanFilters().query() == "WorkflowType = 'LoanCollection'"
    query = LoanFilters(stage=Stage.NEGOTIATION, min_dpd=30, agent="maria@lender",
                        outcome=Outcome.PAID, segment=Segment.CANT_PAY, jurisdiction="US-CA",
                        open_only=True, needs_attention=True, platform="platform-1",
                        as_of=datetime(2026, 12, 31, 8, tzinfo=UTC)).query()
    assert query == (
        "WorkflowType = 'LoanCollection' AND Platform = 'platform-1' AND "
        "CollectionStage = 'NEGOTIATION' AND "
        "((ExecutionStatus IN ('Running', 'ContinuedAsNew') AND "
        "DueDate <= '2026-12-01T08:00:00+00:00') OR (ExecutionStatus != 'Running' AND "
        "ExecutionStatus != 'ContinuedAsNew' AND DaysPastDue >= 30)) AND "
        "AssignedAgent = 'maria@lender' AND CollectionOutcome = 'PAID' AND "
        "Segment = 'cant_pay' AND Jurisdiction = 'US-CA' AND ExecutionStatus = 'Running' "
        "AND NeedsAttention = true")


@pytest.mark.parametrize("field", ["agent", "platform", "jurisdiction"])
@pytest.mark.parametrize("value", ["x' OR WorkflowType != 'y", "a b", "'", "x" * 129])
def test_a_value_that_could_leave_its_quotes_is_refused_before_any_query(
        field: str, value: str) -> None:
    with pytest.raises(InvalidFilter, match=f"{field} .* is not a valid value"):
        LoanFilters(**{field: value})


def test_an_empty_filter_is_none_but_an_empty_platform_sees_nothing() -> None:
    assert LoanFilters(agent="", jurisdiction="").query() == LoanFilters().query()
    with pytest.raises(InvalidFilter):
        LoanFilters(platform="")
