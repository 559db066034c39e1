"""Click to dial: `POST /v1/loans/{loan_id}/calls` asks the engine and, when the call is
allowed and a dialer is configured, hands it to the dialer with the decision attached
(duecourse.desk_calls). Not allowed: a problem with the decision's sentence and nothing
sent. No dialer: the decision, and the agent dials by hand."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field, StringConstraints

from duecourse.api.auth import Desk
from duecourse.api.params import LoanId
from duecourse.api.problems import ProblemError, responses
from duecourse.api.schemas import _In
from duecourse.api.services import Svc
from duecourse.channels.routing import ChannelSettingError
from duecourse.desk_calls import DialerFailed, place_call, verdict_sentence
from duecourse.domain.case.commands import Note
from duecourse.domain.compliance import RecipientKind
from duecourse.domain.compliance.model import Decision

router = APIRouter(prefix="/v1/loans/{loan_id}", tags=["actions"])


_PROBLEMS = responses(404, 409)
RESPONSES = {**_PROBLEMS, 502: {**_PROBLEMS[409], "description": "The dialer refused the call"}}


class CallIn(_In):
    address: Annotated[str, StringConstraints(min_length=1, max_length=320)] | None = Field(
        default=None, description="the number to call (default: the borrower's first)")
    recipient_kind: RecipientKind = Field(
        default=RecipientKind.DEBTOR, description="who is called: a guarantor or third "
        "party needs `address`")
    person: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, description="who, when a guarantor or third party has several numbers")
    note: Note = Field(default="", description="the call script or the agent's note, "
                       "shown by the dialer")


class CallPlaced(BaseModel):
    status: Literal["dialling", "dial_by_hand"]
    detail: str
    call_id: str | None = Field(default=None, description="the dialer's id of the call")
    decision: Decision


@router.post("/calls", status_code=201, response_model=CallPlaced,
             responses=RESPONSES)
async def call(loan_id: LoanId, body: CallIn, svc: Svc, who: Desk,
               response: Response) -> CallPlaced:
    """An agent's call: asked first (logged as the agent's contact when allowed), then
    placed through the dialer with the decision and the agent attached. Deferred is 409,
    blocked 422, each with the decision's reason; nothing is dialled. No dialer
    configured: 200 with the decision, to dial by hand."""
    try:
        placed = await place_call(svc.client, svc.ledger, svc.settings, loan_id, who.actor,
                                  address=body.address, recipient_kind=body.recipient_kind,
                                  person=body.person, note=body.note)
    except ChannelSettingError as err:
        raise ProblemError(503, "Dialer not set up", f"{err}; nothing was asked or "
                           "dialled") from err
    except DialerFailed as err:
        raise ProblemError(502 if err.permanent else 503, "Dialer did not take the call",
                           f"{err} - the engine allowed and logged the call: dial by hand "
                           "or ask again") from err
    decision = placed.decision
    if not decision.allowed:
        deferred = decision.verdict == "deferred"
        raise ProblemError(409 if deferred else 422,
                           "Call not allowed now" if deferred else "Call blocked",
                           f"voice contact for loan {loan_id}: {verdict_sentence(decision)}; "
                           "nothing was dialled")
    if placed.call_id is None:
        response.status_code = status.HTTP_200_OK
        return CallPlaced(status="dial_by_hand", decision=decision,
                          detail="allowed now (logged); no dialer is configured "
                                 "(DUECOURSE_VOICE_URL): dial by hand and report the outcome")
    return CallPlaced(status="dialling", call_id=placed.call_id, decision=decision,
                      detail=f"allowed now (logged); the dialer ({placed.dialer}) is calling")
