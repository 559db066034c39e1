"""What a dialer posts back: the result of a call we handed it (duecourse.channels.dialer).

Signed as the other generic inbound posts are (`Duecourse-Signature` with
DUECOURSE_INBOUND_SECRET): a missing, stale or wrong signature is 401 and records
nothing, a body that is not a call result is a 422 problem, a repeated post is answered
200 "duplicate" and changes nothing. A result for a call we do not know (yet: it can
overtake the dialer's answer to our POST) is a 409 problem and records nothing, so the
dialer's retry is applied; sending back our `idempotency_key` matches it at once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from duecourse.api.problems import ProblemError, responses
from duecourse.api.routes.inbound import _SIGNED, Accepted, _In, _signed_json
from duecourse.api.services import Svc
from duecourse.domain.case.commands import Recording
from duecourse.domain.ids import AgentId
from duecourse.inbound.call_results import CallResults, DialerResult

router = APIRouter(prefix="/v1/inbound/dialer", tags=["inbound"])


class CallResultIn(_In):
    call_id: str = Field(min_length=1, max_length=200,
                         description="the dialer's id of the call (its answer to the POST)")
    result: DialerResult = Field(description="answered, no_answer, busy, invalid_number, "
                                 "voicemail, right_party_verified or promise_taken")
    recording: Recording | None = Field(
        default=None, description="the call's recording: an https URL or the dialer's id")
    agent: AgentId | None = Field(default=None,
                                  description="the agent who took the call, if one did")
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="the idempotency_key of our POST, echoed: matches the call even before "
        "we have read the dialer's id")


def _documented() -> dict[str, Any]:
    """The body the endpoint reads itself (after its signature), for the OpenAPI document,
    its enum written in place: a `$defs` reference would not resolve inside the document."""
    schema = CallResultIn.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})
    for prop in schema["properties"].values():
        ref = prop.pop("$ref", "")
        if ref:
            prop.update({**defs[ref.rsplit("/", 1)[-1]], **prop})
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}


_RESPONSES = {**_SIGNED, 409: {**responses(409)[409],
                               "description": "No call we placed has that id (yet)"}}


@router.post("/result", response_model=Accepted, responses=_RESPONSES,
             openapi_extra=_documented())
async def call_result(request: Request, svc: Svc) -> Accepted:
    """A call's result: completes the call in the loan's contact history (the call caps
    count it), marks an invalid number, keeps the recording reference."""
    body = await _signed_json(request, svc, CallResultIn)
    result = await CallResults(svc.client, svc.ledger.engine).receive(
        body.call_id, body.result, body.recording, body.agent, body.idempotency_key)
    if result == "unmatched":
        raise ProblemError(409, "Call not known", f"no call we placed has the id "
                           f"{body.call_id!r} (yet): nothing was recorded; post the result "
                           "again shortly, or send the idempotency_key of our request")
    return Accepted(result=result)
