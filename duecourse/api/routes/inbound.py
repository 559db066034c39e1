"""What providers post back: SMS replies, delivery receipts, email bounces.

No API key: the signature is the authority (duecourse.inbound.signatures). A missing,
stale or wrong signature - or no DUECOURSE_INBOUND_SECRET / Twilio auth token configured -
is 401 and nothing is recorded; a body that is not what the endpoint reads is a 422
problem; a repeated post is recognised and answered 200 with "duplicate".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from duecourse.api.problems import ProblemError, responses
from duecourse.api.routes import consents
from duecourse.api.services import Services, Svc
from duecourse.channels.routing import channels_from_settings
from duecourse.inbound.receipt_actions import (
    TWILIO_STATUSES,
    ReceiptActions,
    invalid_recipient,
)
from duecourse.inbound.reply_actions import Reply, ReplyActions, e164
from duecourse.inbound.signatures import (
    SIGNATURE_HEADER,
    TWILIO_HEADER,
    verify_duecourse,
    verify_twilio,
)
from duecourse.inbound.store import InboundStore
from duecourse.plain_words import field_words, plain_errors

posts = APIRouter(prefix="/v1/inbound", tags=["inbound"])
Model = TypeVar("Model", bound=BaseModel)
Number = Annotated[str, Field(min_length=3, max_length=32)]
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SmsReplyIn(_In):
    sender: Number = Field(alias="from", description="the borrower's number (E.164)")
    to: Number = Field(description="our number the reply was sent to")
    text: str = Field(max_length=1600)
    received_at: AwareDatetime
    id: str | None = Field(default=None, max_length=128,
                           description="the gateway's id of the reply, if it has one")


class SmsStatusIn(_In):
    provider_message_id: str = Field(min_length=1, max_length=200)
    status: Literal["delivered", "failed", "undelivered", "bounced"]
    error: str | None = Field(default=None, max_length=500, description="e.g. "
                              "invalid_number: the number does not exist")


class BounceIn(_In):
    message_id: str = Field(min_length=1, max_length=200,
                            description="our Message-ID or the provider's message id")
    recipient: str = Field(min_length=3, max_length=320)
    kind: Literal["hard", "soft"]
    diagnostic: str = Field(default="", max_length=1000)


class Accepted(BaseModel):
    result: str = Field(description="what was done, or 'duplicate' for a repeated post")


def _unsigned(why: str) -> ProblemError:
    return ProblemError(401, "Unauthenticated", why)


async def _signed_json(request: Request, svc: Services, model: type[Model]) -> Model:
    """The body, once its Duecourse-Signature checks out."""
    body = await request.body()
    secret = svc.settings.inbound_secret
    if secret is None:
        raise _unsigned("inbound posts are refused: DUECOURSE_INBOUND_SECRET is not set")
    if not verify_duecourse(secret.get_secret_value(), request.headers.get(SIGNATURE_HEADER),
                            body, datetime.now(UTC)):
        raise _unsigned(f"the {SIGNATURE_HEADER} header is missing, stale (older than 5 "
                        "minutes) or does not sign this body with the inbound secret")
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as err:
        raise _invalid(err) from None


def _invalid(err: ValidationError) -> ProblemError:
    """The body's problems in plain words, as the API's other 422s give them."""
    errors = plain_errors(err.errors(include_url=False), where=lambda loc: field_words(
        ("body", *loc)))
    return ProblemError(422, "Invalid request", "; ".join(e["msg"] for e in errors), errors)


async def _signed_form(request: Request, svc: Services) -> dict[str, str]:
    """Twilio's form fields, once its X-Twilio-Signature checks out against the URL it
    posted to (DUECOURSE_PUBLIC_URL + the path)."""
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        pairs = None
    # the token is Twilio's auth token only under the Twilio profile (else it is another
    # gateway's bearer token, which must not let its holder forge Twilio's posts)
    token = svc.settings.sms_token if svc.settings.sms_profile == "twilio" else None
    url = svc.settings.public_url.rstrip("/") + request.url.path + (
        f"?{request.url.query}" if request.url.query else "")
    if token is None or not verify_twilio(token.get_secret_value(),
                                          request.headers.get(TWILIO_HEADER), url, pairs or []):
        raise _unsigned(f"the {TWILIO_HEADER} header is missing or does not sign this post "
                        f"to {url} with the Twilio auth token (DUECOURSE_SMS_TOKEN)")
    if pairs is None:
        raise ProblemError(422, "Invalid request", "the body is not form-encoded UTF-8 text")
    return dict(pairs)


def _fields(form: dict[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not form.get(n)]
    if missing:
        raise ProblemError(422, "Invalid request", f"the post lacks {', '.join(missing)}")
    return [form[n] for n in names]


def _replies(request: Request, svc: Services) -> ReplyActions:
    state = request.app.state
    answers = getattr(state, "inbound_answers", None)
    if answers is None:  # one router per app: adapters keep their connections
        answers = state.inbound_answers = channels_from_settings(svc.settings, svc.ledger)
    return ReplyActions(svc.client, InboundStore(svc.ledger.engine), answers,
                        svc.settings.lender_name, svc.settings.lender_contact)


def _receipts(svc: Services) -> ReceiptActions:
    return ReceiptActions(svc.client, InboundStore(svc.ledger.engine))


_SIGNED: dict[int | str, dict[str, Any]] = responses()


def _documented(model: type[BaseModel]) -> dict[str, Any]:
    """The body an endpoint reads itself (after its signature), for the OpenAPI document."""
    schema = model.model_json_schema(by_alias=True)
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}


@posts.post("/sms", response_model=Accepted, responses=_SIGNED,
            openapi_extra=_documented(SmsReplyIn))
async def sms_reply(request: Request, svc: Svc) -> Accepted:
    """A borrower's SMS reply (generic gateway): STOP/UNSUBSCRIBE/退订/TD opt out of SMS at
    once, HELP is answered with the lender's contact, anything else opens a task."""
    body = await _signed_json(request, svc, SmsReplyIn)
    reply = Reply("generic", e164(body.sender), e164(body.to), body.text, body.received_at,
                  body.id)
    return Accepted(result=await _replies(request, svc).receive(reply))


@posts.post("/sms/status", response_model=Accepted, responses=_SIGNED,
            openapi_extra=_documented(SmsStatusIn))
async def sms_status(request: Request, svc: Svc) -> Accepted:
    """A delivery receipt for an SMS we sent (generic gateway)."""
    body = await _signed_json(request, svc, SmsStatusIn)
    invalid = invalid_recipient(body.status, body.error, "generic")
    return Accepted(result=await _receipts(svc).receipt(
        body.provider_message_id, body.status, body.error, invalid, "sms receipt"))


@posts.post("/email/bounce", response_model=Accepted, responses=_SIGNED,
            openapi_extra=_documented(BounceIn))
async def email_bounce(request: Request, svc: Svc) -> Accepted:
    """An email bounce; a hard bounce marks the address unreachable."""
    body = await _signed_json(request, svc, BounceIn)
    return Accepted(result=await _receipts(svc).bounce(
        body.message_id, body.recipient.strip(), body.kind, body.diagnostic))


_TWIML: dict[int | str, dict[str, Any]] = {200: {
    "description": "empty TwiML; the Duecourse-Result header says what was done",
    "content": {"application/xml": {"schema": {"type": "string"}}}}, **_SIGNED}


@posts.post("/twilio/sms", response_class=Response, responses=_TWIML)
async def twilio_reply(request: Request, svc: Svc) -> Response:
    """Twilio's incoming-message webhook (From, To, Body, MessageSid)."""
    form = await _signed_form(request, svc)
    sender, to, sid = _fields(form, "From", "To", "MessageSid")
    reply = Reply("twilio", e164(sender), e164(to), form.get("Body", ""),
                  datetime.now(UTC), sid)
    result = await _replies(request, svc).receive(reply)
    return Response(TWIML, media_type="application/xml", headers={"Duecourse-Result": result})


@posts.post("/twilio/status", response_class=Response, responses=_TWIML)
async def twilio_status(request: Request, svc: Svc) -> Response:
    """Twilio's status callback (MessageSid, MessageStatus, ErrorCode)."""
    form = await _signed_form(request, svc)
    sid, state = _fields(form, "MessageSid", "MessageStatus")
    status = TWILIO_STATUSES.get(state.lower())
    result = "ignored"  # progress (queued, sent...) is no receipt
    if status is not None:
        error = form.get("ErrorCode") or None
        invalid = invalid_recipient(status, error, "twilio")
        result = await _receipts(svc).receipt(sid, status, error, invalid, "twilio receipt")
    return Response(TWIML, media_type="application/xml", headers={"Duecourse-Result": result})



router = APIRouter()
"""What the app registers: the signed inbound posts and the consent ledger's routes."""
router.include_router(posts)
router.include_router(consents.router)
