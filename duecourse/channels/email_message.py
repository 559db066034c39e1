"""The MIME message an email send puts on the wire: multipart/alternative (plain text and
HTML of the same rendering), From/To/Subject/Date, a Message-ID derived from the
idempotency key (a retry carries the same id, so a mail system downstream recognises
it), and RFC 8058 one-click `List-Unsubscribe` headers when an opt-out link exists."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime

from duecourse.channels.base import OutgoingMessage
from duecourse.templates.html import html_body

VERBATIM = frozenset({"list-unsubscribe"})
"""Headers that carry URLs mail clients read as written: never RFC 2047-encoded."""


class _Wire(EmailPolicy):
    """SMTP's policy (CRLF, encoded non-ASCII headers), except that `List-Unsubscribe` is
    written on one line as it is: folded the usual way, a long link would be turned into
    encoded-words that no mail client opens (RFC 2369 links are plain ASCII)."""

    def fold(self, name: str, value: str) -> str:
        if name.lower() in VERBATIM:
            return f"{name}: {value}{self.linesep}"
        return super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in VERBATIM:
            return self.fold(name, value).encode("ascii")
        return super().fold_binary(name, value)


WIRE = _Wire(linesep="\r\n")


def wire_bytes(mail: EmailMessage) -> bytes:
    """The message as it goes over SMTP."""
    return mail.as_bytes(policy=WIRE)


def message_id(idempotency_key: str, sender: str) -> str:
    """`<hash of the key>@<sender's domain>`: the same key always gives the same id, and
    the key itself (which names the loan and step) is not readable from it."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{sender.rpartition('@')[2]}>"


def build_email(message: OutgoingMessage, sender: str, *, unsubscribe_url: str | None = None,
                unsubscribe_mailto: str | None = None,
                now: datetime | None = None) -> EmailMessage:
    """The message to send; `message.html` when the activity rendered it, else laid out
    here from the same text."""
    mail = EmailMessage(policy=WIRE)
    mail["From"] = sender
    mail["To"] = message.recipient
    mail["Subject"] = message.subject or ""  # RFC 2047-encoded when not ASCII
    mail["Date"] = format_datetime(now or datetime.now(UTC))
    mail["Message-ID"] = message_id(message.idempotency_key, sender)
    links = [f"<{link}>" for link in (unsubscribe_url, unsubscribe_mailto) if link]
    if links:
        mail["List-Unsubscribe"] = ", ".join(links)
    if unsubscribe_url:
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail["Content-Language"] = message.language
    mail.set_content(message.body, charset="utf-8")
    html = message.html or html_body(message.body, message.language, message.subject or "")
    mail.add_alternative(html, subtype="html", charset="utf-8")
    return mail
