"""The personal page link every borrower message carries.

Built in the send activity (the portal key never enters workflow code) from the send's
loan and case, valid from the send's scheduled time for the policy's `portal_link_days`
(the send carries it) or else the setting's - so every retry of a send renders the same
message. The line goes after the template's text and before
the wording the jurisdiction requires (the US validation and opt-out lines stay whole and
last); it is added, never substituted.
"""

from __future__ import annotations

from datetime import timedelta

from duecourse.portal.i18n import Words
from duecourse.portal.tokens import PortalSigner, signer_from_settings
from duecourse.settings import Settings
from duecourse.templates import Rendered, render
from duecourse.temporal.contracts import SendMessage

LINK_CHANNELS = ("sms", "email", "letter")
"""Where a link can be read (an automated call or a visit has no link)."""


class PortalLinks:
    def __init__(self, signer: PortalSigner, public_url: str, valid_for: timedelta) -> None:
        self._signer = signer
        self._base = public_url.rstrip("/")
        self._valid_for = valid_for

    @classmethod
    def from_settings(cls, settings: Settings) -> PortalLinks | None:
        signer = signer_from_settings(settings)
        if signer is None:
            return None
        return cls(signer, settings.public_url, timedelta(days=settings.portal_link_days))

    def link_for(self, req: SendMessage) -> str:
        valid_for = timedelta(days=req.link_days) if req.link_days else self._valid_for
        token = self._signer.mint(req.loan_id, req.case_id, req.scheduled_for, valid_for)
        return f"{self._base}/b/{token}"

    def add_link(self, rendered: Rendered, req: SendMessage,
                 values: dict[str, str]) -> Rendered:
        """`rendered` with the link line inserted before the required wording; a message
        for someone other than the borrower, or on a channel without links, unchanged."""
        if req.recipient_kind != "debtor" or str(req.channel) not in LINK_CHANNELS:
            return rendered
        own = render(req.template, req.language, values, channel=req.channel,
                     time_barred=req.time_barred).body  # the template's text alone
        if not rendered.body.startswith(own):
            return rendered  # never reorder what we cannot take apart
        sep = " " if req.channel == "sms" else "\n"
        line = Words(rendered.language)("link_line", link=self.link_for(req))
        body = own + sep + line + rendered.body[len(own):]
        return rendered.model_copy(update={"body": body})
