"""`GET /v1/portfolio/analytics`: the numbers `duecourse report --json` prints, for the
lender's overseers (supervisors and ops). Platforms get none of it: it spans every
platform's loans."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from duecourse.api.auth import Overseer
from duecourse.api.problems import ProblemError, responses
from duecourse.api.services import Services, Svc
from duecourse.lab.analytics import compute, scorers_for
from duecourse.lab.costs import CostsFileError, load_costs
from duecourse.lab.figures import GroupBy, PortfolioFigures

router = APIRouter(prefix="/v1/portfolio", tags=["ops"])


@router.get("/analytics", response_model=PortfolioFigures, responses=responses())
async def analytics(svc: Svc, who: Overseer,
                    since: Annotated[date | None, Query(
                        description="only cases handed over on or after this date "
                                    "(YYYY-MM-DD, UTC)")] = None,
                    by: Annotated[GroupBy, Query(
                        description="group by strategy, segment, jurisdiction or agent")
                    ] = "strategy") -> PortfolioFigures:
    """Roll, cure and recovery rates, costs, complaints and compliance per group, and each
    challenger against its champion with 95% confidence intervals and a verdict."""
    return await portfolio_figures(svc, by=by, since=since)


async def portfolio_figures(svc: Services, *, by: GroupBy = "strategy",
                            since: date | None = None) -> PortfolioFigures:
    """The figures as the lender's settings shape them (costs, experiments, scorers): one
    definition for this route and the /ops page."""
    try:
        costs = load_costs(svc.settings.costs_file)
    except CostsFileError as err:
        raise ProblemError(500, "Cost settings cannot be used",
                           f"{err} (DUECOURSE_COSTS_FILE)") from None
    return await compute(svc.ledger.engine, by=by, since=since, costs=costs,
                         experiment_dir=svc.settings.experiment_dir,
                         scorers=scorers_for(svc.settings.scorer))
