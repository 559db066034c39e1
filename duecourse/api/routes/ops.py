"""Ops views: messages sent or held back, and the alerts that need a person.

Messages carry bodies, so platforms (whose keys see their own loans only) get none of
this; desk roles read messages to know what a borrower was told; supervisors and ops read
alerts, and ops acknowledge them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from duecourse.api.auth import Ops, Overseer, Staff
from duecourse.api.ops_schemas import AckIn, AlertList, MessageList
from duecourse.api.problems import ProblemError, responses
from duecourse.api.services import Svc
from duecourse.domain.ids import PLATFORM_ID_PATTERN
from duecourse.domain.policy import Channel
from duecourse.store.ops_queries import (
    AlertNotFound,
    AlertView,
    acknowledge,
    list_alerts,
    list_messages,
)

router = APIRouter(prefix="/v1", tags=["ops"])
LoanFilter = Annotated[str | None, Query(pattern=PLATFORM_ID_PATTERN,
                                         description="only this loan")]
Limit = Annotated[int, Query(ge=1, le=500)]
AlertId = Annotated[int, Path(ge=1, le=2_147_483_647, description="the alert's id")]


@router.get("/messages", response_model=MessageList, responses=responses())
async def messages(svc: Svc, who: Staff,
                   loan_id: LoanFilter = None, channel: Channel | None = None,
                   since: Annotated[datetime | None, Query(
                       description="ISO 8601 with its offset: only from then on")] = None,
                   limit: Limit = 100) -> MessageList:
    """What was sent to borrowers, blocked or deferred, newest first, with the rule that
    decided and the body as sent."""
    if since is not None and since.tzinfo is None:
        raise ProblemError(422, "Invalid request", f"since needs a UTC offset, e.g. "
                           f"{since.isoformat()}Z")
    rows = await list_messages(svc.ledger.engine, loan_id=loan_id,
                               channel=channel.value if channel else None, since=since,
                               limit=limit)
    return MessageList(messages=rows)


@router.get("/alerts", response_model=AlertList, responses=responses())
async def alerts(svc: Svc, who: Overseer,
                 open_only: Annotated[bool, Query(
                     alias="open", description="only alerts nobody acknowledged")] = False,
                 loan_id: LoanFilter = None, limit: Limit = 100) -> AlertList:
    """Ops alerts, newest first: what the workflows could not settle alone."""
    rows = await list_alerts(svc.ledger.engine, open_only=open_only, loan_id=loan_id,
                             limit=limit)
    return AlertList(alerts=rows)


@router.post("/alerts/{alert_id}/ack", response_model=AlertView,
             responses=responses(404, 409))
async def ack_alert(alert_id: AlertId, svc: Svc, who: Ops,
                    body: Annotated[AckIn | None, Body()] = None) -> AlertView:
    """Acknowledge an alert, once: the key's name is recorded as who took it. A second
    acknowledgement is 409 and says who was first, and when."""
    try:
        done = await acknowledge(svc.ledger, alert_id, who.actor, body.note if body else "")
    except AlertNotFound as err:
        raise ProblemError(404, "Alert not found", str(err)) from None
    if done.already:
        raise ProblemError(409, "Alert already acknowledged", done.sentence)
    return done.alert
