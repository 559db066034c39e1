"""The portfolio as Temporal's visibility store sees it, shared by `GET /v1/loans` and
`duecourse loans`: one set of filters and its query (so both filter alike and no value can
break out of its quotes), the page the API shows and the rows the CLI shows.

The list comes from visibility, which is cheap and eventually consistent; what visibility
cannot hold exactly (the balance as Decimal with its currency, DPD now, the next action
and its time) comes from each listed running loan's `status` query, a bounded number at a
time. A loan whose status cannot be asked keeps its indexed figures, marked as such.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError

from duecourse import search_attributes as sa
from duecourse.domain.case.state import Outcome, Stage
from duecourse.domain.ids import SEARCH_KEYWORD_PATTERN
from duecourse.domain.money import Money
from duecourse.domain.policy import Segment
from duecourse.temporal.client import WORKFLOW_NAME, CollectionClient, LoanClosed, LoanNotFound

LITERAL = re.compile(SEARCH_KEYWORD_PATTERN)
STATUS_QUERIES = 8
"""Status queries in flight at once for one listing."""
STATUS_TIMEOUT = 10.0

E = TypeVar("E", bound=StrEnum)


class InvalidFilter(ValueError):
    """A filter value that is not one of the allowed ones; the message lists them."""


def parse_choice(enum: type[E], text: str, what: str) -> E:
    """`text` as one of `enum`'s values, in any case, or a sentence naming them all."""
    for member in enum:
        if text.strip().lower() == member.value.lower():
            return member
    raise InvalidFilter(f"unknown {what} {text!r}: use one of "
                        f"{', '.join(m.value for m in enum)}")


def _literal(value: str, what: str) -> str:
    if not LITERAL.fullmatch(value):
        raise InvalidFilter(f"{what} {value!r} is not a valid value: use letters, digits "
                            "and . _ @ : - only")
    return f"'{value}'"


@dataclass(frozen=True)
class LoanFilters:
    """Which loans a listing asks for: each filter given must match. A free-text value
    that could break out of its quotes is refused here, before any query is built."""

    stage: Stage | None = None
    min_dpd: int | None = None
    agent: str | None = None
    outcome: Outcome | None = None
    segment: Segment | None = None
    jurisdiction: str | None = None
    open_only: bool = False
    needs_attention: bool = False
    platform: str | None = None  # a platform key sees its own loans only
    as_of: datetime | None = None  # when days past due are counted (None: at query time)

    def __post_init__(self) -> None:
        self.query()

    def query(self) -> str:
        """The visibility query for loans matching every filter."""
        clauses = [f"WorkflowType = '{WORKFLOW_NAME}'"]
        if self.platform is not None:
            clauses.append(f"{sa.PLATFORM.name} = {_literal(self.platform, 'platform')}")
        if self.stage:
            clauses.append(f"{sa.COLLECTION_STAGE.name} = '{self.stage.value}'")
        if self.min_dpd is not None:
            clauses.append(_at_least_days_past_due(int(self.min_dpd),
                                                   self.as_of or datetime.now(UTC)))
        if self.agent:
            clauses.append(f"{sa.ASSIGNED_AGENT.name} = {_literal(self.agent, 'agent')}")
        if self.outcome:
            clauses.append(f"{sa.COLLECTION_OUTCOME.name} = '{self.outcome.value}'")
        if self.segment:
            clauses.append(f"{sa.SEGMENT.name} = '{self.segment.value}'")
        if self.jurisdiction:
            clauses.append(f"{sa.JURISDICTION.name} = "
                           f"{_literal(self.jurisdiction, 'jurisdiction')}")
        if self.open_only:
            clauses.append("ExecutionStatus = 'Running'")
        if self.needs_attention:
            clauses.append(f"{sa.NEEDS_ATTENTION.name} = true")
        return " AND ".join(clauses)


OPEN_RUN = (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)
"""Runs of a loan still in collection: the live one and those it continued from."""


def _at_least_days_past_due(days: int, now: datetime) -> str:
    """A running loan's `DaysPastDue` is its DPD at its last transition, so "DPD now"
    comes from `DueDate` (the borrower's local midnight of the due date: DPD >= n when it
    is n days before now, to the hour around a DST change); a closed loan's DPD stays what
    it was when it closed."""
    due_by = (now - timedelta(days=days)).astimezone(UTC).isoformat()
    return (f"((ExecutionStatus IN ('Running', 'ContinuedAsNew') AND "
            f"{sa.DUE_DATE.name} <= '{due_by}') OR (ExecutionStatus != 'Running' AND "
            f"ExecutionStatus != 'ContinuedAsNew' AND {sa.DAYS_PAST_DUE.name} >= {days}))")


def days_past_due(w: WorkflowExecution, now: datetime) -> int | None:
    """DPD as visibility can tell it: counted from `DueDate` while the loan runs, as it
    was at the close otherwise (a run that continued as new belongs to an open loan)."""
    attrs = w.typed_search_attributes
    due = attrs.get(sa.DUE_DATE)
    if w.status in OPEN_RUN and due is not None:
        return max((now - due) // timedelta(days=1), 0)
    return attrs.get(sa.DAYS_PAST_DUE)


def indexed_amount(indexed: float | None) -> str | None:
    """Search attributes index amounts as doubles; never hand one out as money."""
    return None if indexed is None else f"{indexed:.2f}"


class ListedLoan(BaseModel):
    """What every listing of loans shows first: which loan, whether its workflow runs,
    where it stands."""

    loan_id: str
    workflow_id: str
    status: str  # the workflow execution's: RUNNING, COMPLETED, ...
    stage: str | None
    outcome: str | None
    days_past_due: int | None


class IndexedLoan(ListedLoan):
    """A loan as visibility indexes it: eventually consistent, amounts rounded."""

    indexed_outstanding: str | None  # rounded; no currency
    jurisdiction: str | None
    segment: str | None
    assigned_agent: str | None
    needs_attention: bool
    started_at: datetime | None


def indexed_loan(w: WorkflowExecution, now: datetime) -> IndexedLoan:
    attrs = w.typed_search_attributes
    return IndexedLoan(
        loan_id=w.id.removeprefix("collection-"), workflow_id=w.id,
        status=w.status.name if w.status else "UNKNOWN",
        stage=attrs.get(sa.COLLECTION_STAGE), outcome=attrs.get(sa.COLLECTION_OUTCOME),
        days_past_due=days_past_due(w, now),
        indexed_outstanding=indexed_amount(attrs.get(sa.OUTSTANDING_AMOUNT)),
        jurisdiction=attrs.get(sa.JURISDICTION), segment=attrs.get(sa.SEGMENT),
        assigned_agent=attrs.get(sa.ASSIGNED_AGENT),
        needs_attention=bool(attrs.get(sa.NEEDS_ATTENTION)), started_at=w.start_time)


class BadPageToken(ValueError):
    """Visibility refused the page token a caller gave back (not one it handed out)."""


@dataclass(frozen=True)
class LoanSearchPage:
    loans: list[IndexedLoan]
    next_page_token: bytes | None  # opaque to callers: give it back for the next page


async def search_page(client: CollectionClient, filters: LoanFilters, page_size: int,
                      page_token: bytes | None = None) -> LoanSearchPage:
    """One page of the loans matching `filters`, newest first (`GET /v1/loans`)."""
    pages = client.client.list_workflows(filters.query(), page_size=page_size,
                                         next_page_token=page_token)
    try:
        await pages.fetch_next_page()
    except RPCError:
        if page_token is None:
            raise
        raise BadPageToken("page_token is not valid") from None
    now = filters.as_of or datetime.now(UTC)
    return LoanSearchPage(loans=[indexed_loan(w, now) for w in pages.current_page or []],
                          next_page_token=pages.next_page_token or None)


class PortfolioRow(ListedLoan):
    """A row of `duecourse loans`: indexed, then completed from the loan's status."""

    outstanding: Money | None  # exact, from the loan's status
    indexed_outstanding: str | None  # as indexed for search (rounded; no currency)
    segment: str | None
    assigned_agent: str | None
    needs_attention: bool
    next_action: str | None
    next_action_at: datetime | None
    note: str = ""


def _row(w: WorkflowExecution, now: datetime) -> PortfolioRow:
    loan = indexed_loan(w, now)
    return PortfolioRow(**loan.model_dump(exclude={"jurisdiction", "started_at"}),
                        outstanding=None, next_action=None, next_action_at=None)


async def _complete(client: CollectionClient, row: PortfolioRow,
                    gate: asyncio.Semaphore) -> PortfolioRow:
    """Exact balance, DPD now and the next action, from the loan's own status."""
    async with gate:
        try:
            s = await asyncio.wait_for(client.status(row.loan_id), STATUS_TIMEOUT)
        except (RPCError, WorkflowQueryFailedError, LoanNotFound, LoanClosed, TimeoutError):
            return row.model_copy(update={"note": "status unavailable: indexed figures"})
    nxt = s.next_action
    return row.model_copy(update={
        "stage": s.stage, "outcome": s.outcome, "days_past_due": s.days_past_due,
        "outstanding": s.outstanding, "next_action": nxt.description if nxt else None,
        "next_action_at": nxt.due_at if nxt else None})


async def portfolio_rows(client: CollectionClient, filters: LoanFilters, limit: int = 50,
                    details: bool = True) -> list[PortfolioRow]:
    """Up to `limit` loans matching `filters`, newest first; running ones completed from
    their status when `details` (`duecourse loans`)."""
    now = filters.as_of or datetime.now(UTC)
    rows = [_row(w, now) async for w in client.client.list_workflows(
        filters.query(), limit=limit, page_size=min(max(limit, 1), 1000))]
    if not details:
        return rows
    gate = asyncio.Semaphore(STATUS_QUERIES)
    return list(await asyncio.gather(*(
        _complete(client, r, gate) if r.status == WorkflowExecutionStatus.RUNNING.name else
        _noop(r) for r in rows)))


async def _noop(row: PortfolioRow) -> PortfolioRow:
    return row
