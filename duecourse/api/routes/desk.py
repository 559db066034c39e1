"""The work queue and the portfolio view."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query

from duecourse.api.auth import Desk, Overseer, Staff
from duecourse.api.problems import ProblemError, responses
from duecourse.api.schemas import (
    AmountByCurrency,
    PortfolioSummary,
    TaskCompleteIn,
    TaskList,
    TaskView,
)
from duecourse.api.services import Svc
from duecourse.domain.work.queue import TaskCompletion, TaskResult
from duecourse.store.portfolio import portfolio_figures

router = APIRouter(prefix="/v1", tags=["desk"])


@router.get("/tasks", response_model=TaskList, responses=responses())
async def list_tasks(svc: Svc, who: Staff,
                     assignee: Annotated[str | None, Query(max_length=64)] = None,
                     loan_id: Annotated[str | None, Query(max_length=64)] = None,
                     state: Annotated[str, Query(alias="status",
                                                 pattern="^(open|done|cancelled|all)$")]
                     = "open") -> TaskList:
    """The work queue, soonest due first."""
    rows = await svc.ledger.tasks(assignee=assignee, loan_id=loan_id,
                                  status=None if state == "all" else state)
    return TaskList(tasks=[TaskView.model_validate({k: r[k] for k in TaskView.model_fields})
                           for r in rows])


@router.post("/tasks/{task_id}/complete", response_model=TaskResult, responses=responses(404))
async def complete_task(task_id: Annotated[str, Path(max_length=128)], body: TaskCompleteIn,
                        svc: Svc, who: Desk) -> TaskResult:
    """Complete a task with its outcome; the loan's workflow acts on it."""
    found = await svc.ledger.task(task_id)
    if found is None:
        raise ProblemError(404, "Task not found", f"no task {task_id}")
    return await svc.client.complete_task(found["loan_id"], TaskCompletion(
        task_id=task_id, outcome=body.outcome, note=body.note, actor=who.actor))


def _amounts(values: dict[str, Decimal]) -> list[AmountByCurrency]:
    return [AmountByCurrency(currency=c, amount=str(a)) for c, a in sorted(values.items())]


@router.get("/portfolio/summary", response_model=PortfolioSummary, responses=responses())
async def portfolio(svc: Svc, who: Overseer) -> PortfolioSummary:
    """Loans per stage and outcome; amounts outstanding and recovered, per currency."""
    figures = await portfolio_figures(svc.ledger.engine)
    return PortfolioSummary(open_by_stage=figures.open_by_stage,
                            closed_by_outcome=figures.closed_by_outcome,
                            outstanding=_amounts(figures.outstanding),
                            recovered=_amounts(figures.recovered), as_of=datetime.now(UTC))
