"""Opening a link: the token's signature and expiry, then the case it was minted for -
still the loan's open case (a link dies with its case: a closed or replaced case refuses
it) - and the loan's engine. Every failure is the same None, so the neutral page can
never tell a wrong link from a closed debt - nor from a live one while the ledger or the
engine cannot answer (a try-again page for genuine links alone would say a debt exists;
the neutral page's words cover both)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowQueryFailedError

from duecourse.domain.case.status import CollectionStatus
from duecourse.portal.tokens import PortalSigner, PortalToken
from duecourse.store import tables as t
from duecourse.temporal.client import CollectionClient, LoanClosed, LoanNotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    loan_id: str
    status: CollectionStatus
    borrower: dict[str, Any]


async def open_link(signer: PortalSigner | None, token: str, now: datetime,
                    engine: AsyncEngine, client: CollectionClient) -> Opened | None:
    found = signer.verify(token, now) if signer is not None else None
    if found is None:
        return None
    try:
        return await _case_of(found, engine, client)
    except (LoanClosed, LoanNotFound, WorkflowQueryFailedError):
        return None
    except Exception as err:  # the ledger or the engine is away: neutral too
        log.warning("a portal link could not be checked: %s", type(err).__name__)
        return None


async def _case_of(found: PortalToken, engine: AsyncEngine,
                   client: CollectionClient) -> Opened | None:
    cases, loans = t.collection_cases, t.loans
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(cases.c.outcome, cases.c.closed_at, loans.c.borrower)
            .join(loans, loans.c.loan_id == cases.c.loan_id)
            .where(cases.c.case_id == found.case_id, cases.c.loan_id == found.loan_id)
        )).first()
    if row is None or row.outcome is not None or row.closed_at is not None:
        return None
    status = await client.status(found.loan_id)
    if status.outcome is not None:
        return None
    borrower = row.borrower if isinstance(row.borrower, dict) else {}
    return Opened(loan_id=found.loan_id, status=status, borrower=borrower)
