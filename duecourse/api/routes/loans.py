"""Loans: hand-over (one or many), status, timeline, search, cancel."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response, status

from duecourse import handover
from duecourse.api.auth import Anyone, Platform, Principal, allow
from duecourse.api.params import LoanId
from duecourse.api.problems import ProblemError, responses
from duecourse.api.schemas import (
    Accepted,
    BatchRequest,
    BatchResult,
    BatchRow,
    CancelIn,
    LoanIn,
    LoanPage,
    LoanStarted,
    LoanSummary,
    TimelineEntry,
    TimelinePage,
)
from duecourse.api.services import Svc
from duecourse.domain.actor import Role
from duecourse.domain.case.commands import CancelRequest
from duecourse.domain.case.reopening import reopen_problem
from duecourse.domain.case.state import Outcome, Stage
from duecourse.domain.case.status import CollectionStatus
from duecourse.domain.ids import AGENT_ID_PATTERN, JURISDICTION_PATTERN
from duecourse.domain.policy import Segment
from duecourse.intake import (
    BORROWER_COLUMNS,
    IntakeRow,
    RowRejected,
    parse_records,
    validate_for_start,
)
from duecourse.lab.assignments import start_choice
from duecourse.lab.experiments import Experiment, ExperimentError
from duecourse.plain_words import plain_reason, plain_reason_errors
from duecourse.settings import Settings
from duecourse.store.cases import last_closed_case
from duecourse.store.owners import LoanOwners
from duecourse.store.platforms import PLATFORM_ID
from duecourse.temporal.portfolio_query import (
    BadPageToken,
    IndexedLoan,
    LoanFilters,
    search_page,
)

router = APIRouter(prefix="/v1", tags=["loans"])



NESTED_EXAMPLE = {
    "loan_id": "L-1001", "jurisdiction": "US-NY", "currency": "USD", "principal": "2500.00",
    "outstanding": "812.40", "due_date": "2026-11-20", "product": "instalment",
    "borrower": {"borrower_id": "B-601", "name": "Maria Garcia", "phones": ["+12125550147"],
                 "email": "maria.garcia@example.com", "timezone": "America/New_York",
                 "language": "en"}}
FLAT_EXAMPLE = {
    "loan_id": "L-1002", "borrower_id": "B-502", "borrower_name": "Wang Fang",
    "phones": "+8613912345678;+862161234567", "email": "wang.fang@example.com",
    "timezone": "Asia/Shanghai", "language": "zh-CN", "jurisdiction": "CN", "currency": "CNY",
    "principal": "12000.00", "outstanding": "3600.00", "days_past_due": 9,
    "product": "instalment", "policy": "standard"}
NO_BORROWER = ("the loan has no borrower: give a nested 'borrower' object, or the flat "
               "columns borrower_id, borrower_name, timezone and a phone, email or address")


def _no_borrower(record: Any) -> bool:
    """Neither shape: intake would list every borrower field as missing instead."""
    return isinstance(record, Mapping) and "borrower" not in record and not any(
        c in record for c in BORROWER_COLUMNS)


@router.post("/loans", status_code=status.HTTP_201_CREATED, response_model=LoanStarted,
             responses={200: {"model": LoanStarted, "description": "already in collection"},
                        **responses(409)})
async def start_loan(
        body: Annotated[LoanIn, Body(openapi_examples={
            "nested": {"summary": "borrower as an object", "value": NESTED_EXAMPLE},
            "flat": {"summary": "a CSV hand-over row, days_past_due instead of due_date",
                     "value": FLAT_EXAMPLE}})],
        response: Response, svc: Svc,
        who: Platform) -> LoanStarted:
    """Start collection for one overdue loan; the same loan twice returns the running one.

    The loan is nested (`LoanIntake`) or flat, the columns of a CSV hand-over file
    (`FlatLoan`, with `days_past_due` instead of `due_date` if you like), read by the same
    intake code as `duecourse start loans.csv`. A loan whose collection closed for the
    same or a later due date is refused (409), so a borrower who paid is not contacted
    again; a new delinquency (later due date) starts.
    """
    now = datetime.now(UTC)
    if _no_borrower(body):
        raise ProblemError(422, "Loan refused", NO_BORROWER)
    row = parse_records([(1, body)], now)[0]
    try:
        loan, policy = validate_for_start(row, now, svc.settings.policy_dir,
                                          svc.settings.allow_demo_policies)
    except RowRejected as err:
        raise ProblemError(422, "Loan refused", plain_reason(str(err)),
                           plain_reason_errors(str(err), under=("body",))) from None
    experiment = _experiment(svc.settings)
    # Before the start, so even the hand-over event goes to this platform's webhooks only.
    owners = LoanOwners(svc.ledger.engine)
    claimed = await owners.claim(who.platform, [loan.loan_id])
    if await owners.owner_of(loan.loan_id) != who.platform:
        raise ProblemError(409, "Loan id taken", f"loan {loan.loan_id} was handed over by "
                           "another platform; use your own loan ids")
    # After the owner check, so another platform's loan never reveals how it ended.
    closed = await last_closed_case(svc.ledger.engine, loan.loan_id)
    problem = reopen_problem(closed, loan)
    if problem is not None:
        await owners.release(who.platform, claimed)
        raise ProblemError(409, "Loan already closed", problem)
    try:  # a loan that names no policy starts on its experiment arm's
        loan, policy, strategy = await start_choice(
            svc.ledger.engine, experiment, row, loan, policy, now=now,
            policy_dir=svc.settings.policy_dir, allow_demo=svc.settings.allow_demo_policies)
    except RowRejected as err:
        await owners.release(who.platform, claimed)
        raise ProblemError(422, "Loan refused", plain_reason(str(err)),
                           plain_reason_errors(str(err), under=("body",))) from None
    outcome = await svc.client.start(loan, policy, platform=who.platform, strategy=strategy)
    if not outcome.started:
        await owners.release(who.platform, claimed)  # it was in collection, unowned, before
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/loans/{loan.loan_id}"
    return LoanStarted(loan_id=loan.loan_id, workflow_id=outcome.workflow_id,
                       run_id=outcome.run_id, policy=policy.label,
                       status="started" if outcome.started else "already_running")


def _experiment(settings: Settings) -> Experiment | None:
    """The experiment hand-overs are assigned under, read afresh (an edit applies at the
    next hand-over); a file that cannot be used refuses hand-overs that name no policy."""
    try:
        return handover.settings_experiment(settings)
    except ExperimentError as err:
        raise ProblemError(503, "Experiment not usable", f"{err} Fix the file or unset "
                           "DUECOURSE_EXPERIMENT; nothing was started.") from None


async def _own_rows(owners: LoanOwners, platform: str, rows: list[IntakeRow],
                    now: datetime, policy_dir: str | None, allow_demo: bool,
                    ) -> tuple[list[IntakeRow], list[str]]:
    """Claim the rows that will be started for `platform` (valid ones only); a row whose
    loan another platform owns is rejected. Returns the rows and the ids newly claimed."""
    startable = []
    for r in rows:
        try:
            startable.append(validate_for_start(r, now, policy_dir, allow_demo)[0].loan_id)
        except RowRejected:
            continue  # the starter rejects it again, with its reason
    claimed = await owners.claim(platform, startable)
    owner = await owners.owners_of(startable)
    mine: list[IntakeRow] = []
    for r in rows:
        if r.loan is not None and r.loan.loan_id in owner and \
                owner[r.loan.loan_id] != platform:
            r = replace(r, loan=None, error=f"loan {r.loan.loan_id} was handed over by "
                        "another platform; use your own loan ids")
        mine.append(r)
    return mine, claimed


@router.post("/loans:batch", response_model=BatchResult, responses=responses())
async def start_loans(body: BatchRequest, svc: Svc, who: Platform) -> BatchResult:
    """Start many loans, each nested or flat as in `POST /v1/loans`; each row is started,
    already running, or rejected with a reason."""
    now = datetime.now(UTC)
    owners = LoanOwners(svc.ledger.engine)
    parsed = [replace(r, loan=None, error=NO_BORROWER) if _no_borrower(record) else r
              for r, record in zip(parse_records(list(enumerate(body.loans, start=1)), now),
                                   body.loans, strict=True)]
    experiment = _experiment(svc.settings)
    rows, claimed = await _own_rows(owners, who.platform, parsed, now,
                                    svc.settings.policy_dir,
                                    svc.settings.allow_demo_policies)
    summary = await handover.start_loans(svc.client, rows, now=now,
                                        policy_dir=svc.settings.policy_dir,
                                        platform=who.platform, ledger=svc.ledger.engine,
                                        allow_demo=svc.settings.allow_demo_policies,
                                        experiment=experiment)
    not_started = {s.loan_id for s in summary.already_running} | {
        r.loan_id for r in summary.rejected if r.already_closed}
    await owners.release(who.platform, [i for i in claimed if i in not_started])
    results = ([BatchRow(index=s.row, loan_id=s.loan_id, status="started",
                         workflow_id=s.workflow_id) for s in summary.started]
               + [BatchRow(index=s.row, loan_id=s.loan_id, status="already_running",
                           workflow_id=s.workflow_id) for s in summary.already_running]
               + [BatchRow(index=r.row, loan_id=r.loan_id, status="rejected",
                           reason=plain_reason(r.reason)) for r in summary.rejected])
    return BatchResult(started=len(summary.started),
                       already_running=len(summary.already_running),
                       rejected=len(summary.rejected),
                       results=sorted(results, key=lambda r: r.index))


@router.get("/loans", response_model=LoanPage, responses=responses())
async def search_loans(
        svc: Svc, who: Anyone,
        stage: Stage | None = None,
        min_dpd: Annotated[int | None, Query(ge=0, le=100_000)] = None,
        agent: Annotated[str | None, Query(pattern=AGENT_ID_PATTERN)] = None,
        outcome: Outcome | None = None,
        segment: Segment | None = None,
        jurisdiction: Annotated[str | None, Query(pattern=JURISDICTION_PATTERN)] = None,
        open_only: bool = False,
        page_size: Annotated[int, Query(ge=1, le=100)] = 50,
        page_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> LoanPage:
    """Find loans by their search attributes (eventually consistent with the workflows)."""
    platform = None
    if who.role is Role.PLATFORM:  # its own loans
        if not PLATFORM_ID.fullmatch(who.platform):  # a key from before names were checked
            raise ProblemError(403, "Forbidden", "this platform's id cannot scope a search; "
                               "use a platform whose id is letters, digits and . _ @ -")
        platform = who.platform
    filters = LoanFilters(stage=stage, min_dpd=min_dpd, agent=agent, outcome=outcome,
                          segment=segment, jurisdiction=jurisdiction, open_only=open_only,
                          platform=platform)
    try:
        page = await search_page(svc.client, filters, page_size, _page_token(page_token))
    except BadPageToken as err:
        raise ProblemError(400, "Bad page token", str(err)) from None
    nxt = page.next_page_token
    return LoanPage(loans=[_summary(loan) for loan in page.loans],
                    next_page_token=base64.urlsafe_b64encode(nxt).decode() if nxt else None)


def _page_token(text: str | None) -> bytes | None:
    """The visibility token a `next_page_token` the API handed out stands for."""
    if not text:
        return None
    try:
        return base64.urlsafe_b64decode(text.encode())
    except (binascii.Error, ValueError):
        raise BadPageToken("page_token is not valid") from None


def _summary(loan: IndexedLoan) -> LoanSummary:
    return LoanSummary(**loan.model_dump(exclude={"indexed_outstanding", "needs_attention"}),
                       outstanding=loan.indexed_outstanding)


@router.get("/loans/{loan_id}", response_model=CollectionStatus, responses=responses(404))
async def loan_status(loan_id: LoanId, svc: Svc, who: Anyone) -> CollectionStatus:
    """Where the loan stands: stage, balance, DPD, next action, agreements, tasks."""
    return await svc.client.status(loan_id)


@router.get("/loans/{loan_id}/timeline", response_model=TimelinePage,
            responses=responses(404))
async def loan_timeline(loan_id: LoanId, svc: Svc, who: Anyone,
                        limit: Annotated[int, Query(ge=1, le=500)] = 100,
                        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                        ) -> TimelinePage:
    """The loan's ledger, oldest first: contacts, decisions, payments, transitions."""
    items = await svc.ledger.timeline(loan_id, limit=limit + 1, offset=offset)
    if not items and offset == 0:
        raise ProblemError(404, "Loan not found", f"the ledger has nothing for loan {loan_id}")
    more = len(items) > limit
    return TimelinePage(loan_id=loan_id, limit=limit, offset=offset,
                        next_offset=offset + limit if more else None,
                        items=[TimelineEntry(occurred_at=i.occurred_at, kind=i.kind,
                                             summary=i.summary, actor=i.actor, data=i.data)
                               for i in items[:limit]])


@router.post("/loans/{loan_id}/cancel", status_code=202, response_model=Accepted,
             responses=responses(404, 409))
async def cancel_loan(loan_id: LoanId, body: CancelIn, svc: Svc,
                      who: Annotated[Principal, Depends(allow(Role.PLATFORM, Role.OPS))],
                      ) -> Accepted:
    """Withdraw the loan from collection (e.g. restructured elsewhere)."""
    await svc.client.cancel(loan_id, CancelRequest(reason=body.reason, actor=who.actor))
    return Accepted(status="accepted", detail="the loan will close as CANCELLED")
