"""`send_message`: render, deliver through the channel adapter, record the attempt.

Idempotent end to end: a recorded attempt short-circuits a retry, and the idempotency key
travels to the channel so a crash between delivery and recording never sends twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duecourse.channels import Channel, ChannelError, OutgoingMessage
from duecourse.domain.commands import SEND_MESSAGE, MessageSent, SendMessage
from duecourse.store.ledger import ContactRecord, Ledger
from duecourse.templates import TemplateError, render

log = structlog.get_logger(__name__)


class MessagingActivities:
    def __init__(self, ledger: Ledger, channel: Channel, lender_name: str,
                 lender_contact: str) -> None:
        self._ledger = ledger
        self._channel = channel
        self._lender = {"lender_name": lender_name, "lender_contact": lender_contact}

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, req: SendMessage) -> MessageSent:
        bound = log.bind(loan_id=req.loan_id, workflow_id=req.workflow_id, stage=req.stage,
                         step=req.step, channel=req.channel)
        existing = await self._ledger.find_contact(req.idempotency_key)
        if existing is not None:
            bound.info("message already sent; not sending again")
            return MessageSent(message_id=existing.provider_message_id or "", duplicate=True,
                               status=existing.status)
        try:
            rendered = render(req.template, req.language, {**self._lender, **req.context},
                              jurisdiction=req.jurisdiction, channel=req.channel)
        except TemplateError as err:
            raise ApplicationError(str(err), type="TemplateError", non_retryable=True) from err
        message = OutgoingMessage(idempotency_key=req.idempotency_key, channel=req.channel,
                                  recipient=req.recipient, subject=rendered.subject,
                                  body=rendered.body)
        try:
            message_id = await self._channel.send(message)
        except ChannelError as err:
            raise ApplicationError(str(err), type="ChannelError",
                                   non_retryable=err.permanent) from err
        if req.purpose == "demand":  # the formal demand is kept as a document too
            await self._ledger.store_document(
                req.idempotency_key, req.case_id, req.loan_id, "demand_letter",
                rendered.language, rendered.subject, rendered.body, req.scheduled_for)
        await self._ledger.record_contact(ContactRecord(
            idempotency_key=req.idempotency_key, case_id=req.case_id, loan_id=req.loan_id,
            stage=req.stage, step=req.step, channel=req.channel, template=req.template,
            language=rendered.language, recipient=req.recipient,
            recipient_kind=req.recipient_kind, purpose=req.purpose, subject=rendered.subject,
            body=rendered.body, status="sent", provider_message_id=message_id,
            scheduled_for=req.scheduled_for, attempted_at=datetime.now(UTC)))
        bound.info("message sent", message_id=message_id, via=self._channel.name)
        return MessageSent(message_id=message_id, status="sent")
