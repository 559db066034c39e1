"""The portfolio as Temporal's visibility store sees it, shared by `GET /v1/loans` and
`duecourse loans`: one query builder (so both filter alike and no value can break out of
its quotes), and the rows the CLI shows.

The list comes from visibility, which is cheap and eventually consistent; what visibility
cannot hold exactly (the balance as Decimal with its currency, DPD now, the next action
and its time) comes from each listed running loan's `status` query, a bounded number at a
time. A loan whose status cannot be asked keeps its indexed figures, marked as such.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError

from duecourse import search_attributes as sa
from duecourse.domain.case.state import Outcome, Stage
from duecourse.domain.money import Money
from duecourse.domain.policy import Segment
from duecourse.temporal.client import CollectionClient, LoanClosed, LoanNotFound

LITERAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}")
"""What a keyword value in a query may be: nothing that could close its quotes."""
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


def visibility_query(*, stage: Stage | None = None, min_dpd: int | None = None,
                     agent: str | None = None, outcome: Outcome | None = None,
                     segment: Segment | None = None, jurisdiction: str | None = None,
                     open_only: bool = False, needs_attention: bool = False,
                     platform: str | None = None) -> str:
    """The visibility query for loans matching every filter given."""
    clauses = ["WorkflowType = 'LoanCollection'"]
    if platform is not None:
        clauses.append(f"{sa.PLATFORM.name} = {_literal(platform, 'platform')}")
    if stage:
        clauses.append(f"{sa.COLLECTION_STAGE.name} = '{stage.value}'")
    if min_dpd is not None:
        clauses.append(f"{sa.DAYS_PAST_DUE.name} >= {int(min_dpd)}")
    if agent:
        clauses.append(f"{sa.ASSIGNED_AGENT.name} = {_literal(agent, 'agent')}")
    if outcome:
        clauses.append(f"{sa.COLLECTION_OUTCOME.name} = '{outcome.value}'")
    if segment:
        clauses.append(f"{sa.SEGMENT.name} = '{segment.value}'")
    if jurisdiction:
        clauses.append(f"{sa.JURISDICTION.name} = {_literal(jurisdiction, 'jurisdiction')}")
    if open_only:
        clauses.append("ExecutionStatus = 'Running'")
    if needs_attention:
        clauses.append(f"{sa.NEEDS_ATTENTION.name} = true")
    return " AND ".join(clauses)


def indexed_amount(indexed: float | None) -> str | None:
    """Search attributes index amounts as doubles; never hand one out as money."""
    return None if indexed is None else f"{indexed:.2f}"


class PortfolioRow(BaseModel):
    loan_id: str
    workflow_id: str
    status: str
    stage: str | None
    outcome: str | None
    days_past_due: int | None
    outstanding: Money | None  # exact, from the loan's status
    indexed_outstanding: str | None  # as indexed for search (rounded; no currency)
    segment: str | None
    assigned_agent: str | None
    needs_attention: bool
    next_action: str | None
    next_action_at: datetime | None
    note: str = ""


def _row(w: WorkflowExecution) -> PortfolioRow:
    attrs = w.typed_search_attributes
    return PortfolioRow(
        loan_id=w.id.removeprefix("collection-"), workflow_id=w.id,
        status=w.status.name if w.status else "UNKNOWN",
        stage=attrs.get(sa.COLLECTION_STAGE), outcome=attrs.get(sa.COLLECTION_OUTCOME),
        days_past_due=attrs.get(sa.DAYS_PAST_DUE), outstanding=None,
        indexed_outstanding=indexed_amount(attrs.get(sa.OUTSTANDING_AMOUNT)),
        segment=attrs.get(sa.SEGMENT), assigned_agent=attrs.get(sa.ASSIGNED_AGENT),
        needs_attention=bool(attrs.get(sa.NEEDS_ATTENTION)), next_action=None,
        next_action_at=None)


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


async def portfolio(client: CollectionClient, query: str, limit: int = 50,
                    details: bool = True) -> list[PortfolioRow]:
    """Up to `limit` loans matching `query`, newest first; running ones completed from
    their status when `details`."""
    rows = [_row(w) async for w in client.client.list_workflows(
        query, limit=limit, page_size=min(max(limit, 1), 1000))]
    if not details:
        return rows
    gate = asyncio.Semaphore(STATUS_QUERIES)
    return list(await asyncio.gather(*(
        _complete(client, r, gate) if r.status == WorkflowExecutionStatus.RUNNING.name else
        _noop(r) for r in rows)))


async def _noop(row: PortfolioRow) -> PortfolioRow:
    return row
