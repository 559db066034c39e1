"""Webhooks: where a platform wants stage changes and outcomes POSTed, signed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from duecourse.api.auth import Principal, Role, allow
from duecourse.api.problems import ProblemError, responses
from duecourse.api.services import Services, services
from duecourse.store.webhooks import WebhookStore

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Svc = Annotated[Services, Depends(services)]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="absolute http(s) URL")
    events: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=10,
                              description="event types, or '*' for all")
    secret: str | None = Field(default=None, min_length=16, max_length=128,
                               description="signing secret; generated when omitted")


class WebhookView(BaseModel):
    webhook_id: str
    owner: str
    url: str
    events: list[str]
    created_at: datetime
    disabled_at: datetime | None


class WebhookCreated(WebhookView):
    secret: str = Field(description="shown once: sign-check deliveries with it")


class WebhookList(BaseModel):
    webhooks: list[WebhookView]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated,
             responses=responses())
async def register(body: WebhookIn, svc: Svc,
                   who: Annotated[Principal, Depends(allow(Role.PLATFORM))]) -> WebhookCreated:
    """Register a webhook. Deliveries carry `Duecourse-Event-Id` (stable: deduplicate on
    it) and `Duecourse-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`."""
    try:
        hook, secret = await WebhookStore(
            svc.ledger.engine, svc.settings.webhook_allow_private).register(
            who.platform, body.url, body.events, body.secret)
    except ValueError as err:
        raise ProblemError(422, "Invalid webhook", str(err)) from None
    return WebhookCreated(**hook.model_dump(), secret=secret)


@router.get("", response_model=WebhookList, responses=responses())
async def list_webhooks(svc: Svc, who: Annotated[Principal, Depends(
        allow(Role.PLATFORM, Role.OPS))]) -> WebhookList:
    """A platform sees its own webhooks; ops see all."""
    owner = None if who.role is Role.OPS else who.platform
    hooks = await WebhookStore(svc.ledger.engine).list(owner)
    return WebhookList(webhooks=[WebhookView(**h.model_dump()) for h in hooks])


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response, responses=responses(404))
async def disable(webhook_id: Annotated[str, Path(max_length=64)], svc: Svc,
                  who: Annotated[Principal, Depends(allow(Role.PLATFORM))]) -> Response:
    """Stop deliveries to one of your webhooks."""
    if not await WebhookStore(svc.ledger.engine).disable(webhook_id, who.platform):
        raise ProblemError(404, "Webhook not found", f"no active webhook {webhook_id} of yours")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
