"""`refer_to_partner`: hand a case to the legal partner, keeping the referral pack."""

from __future__ import annotations

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duecourse.activities.errors import ledger_errors
from duecourse.channels import Channel, ChannelError, OutgoingMessage
from duecourse.domain.legal.case import ReferralReceipt, ReferralRequest
from duecourse.store.ledger import Ledger
from duecourse.temporal.contracts import REFER_TO_PARTNER

log = structlog.get_logger(__name__)


class LegalActivities:
    def __init__(self, ledger: Ledger, channel: Channel, partner_address: str) -> None:
        self._ledger = ledger
        self._channel = channel
        self._partner_address = partner_address

    @activity.defn(name=REFER_TO_PARTNER)
    async def refer_to_partner(self, req: ReferralRequest) -> ReferralReceipt:
        """Keep the referral pack, then send it; a partner channel that refuses for good
        (4xx) is final, anything else is retried by the case."""
        with ledger_errors("keeping the referral pack"):
            timeline = await self._ledger.timeline(req.loan_id)
            lines = [f"{i.occurred_at.isoformat()}  {i.kind}: {i.summary}" for i in timeline
                     if i.case_id == req.case_id]
            subject = f"Referral {req.case_ref}: loan {req.loan_id}"
            body = "\n".join([f"Case {req.case_ref} for loan {req.loan_id} is referred to "
                              f"{req.partner}.", f"Approval: {req.summary}", "", "Ledger:",
                              *lines])
            document = await self._ledger.store_document(
                req.idempotency_key, req.case_id, req.loan_id, "referral_pack", "en",
                subject, body, req.requested_at)
        try:
            await self._channel.send(OutgoingMessage(
                idempotency_key=req.idempotency_key, channel="email",
                recipient=self._partner_address, subject=subject, body=body))
        except ChannelError as err:
            raise ApplicationError(f"the legal partner's channel refused the referral: {err}",
                                   type="ChannelError", non_retryable=err.permanent) from None
        reference = f"{req.case_ref}-DOC{document}"
        log.info("case referred", loan_id=req.loan_id, case=req.case_ref,
                 partner=req.partner, reference=reference)
        return ReferralReceipt(reference=reference)
