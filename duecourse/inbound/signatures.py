"""Who may post to the inbound endpoints: the signature is the only authority (no API key).

Generic posts carry `Duecourse-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`,
exactly as our outbound webhooks are signed (duecourse.domain.events), with
DUECOURSE_INBOUND_SECRET; a timestamp more than 5 minutes off is refused, so a captured
post cannot be replayed later. Twilio signs with `X-Twilio-Signature`: base64 HMAC-SHA1,
keyed with the account's auth token, of the full URL it posted to followed by each form
parameter's name and value, sorted by name (Twilio has no timestamp; its MessageSid makes
a replay a duplicate).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime

from duecourse.domain.events import DEFAULT_TOLERANCE, verify

SIGNATURE_HEADER = "Duecourse-Signature"
TWILIO_HEADER = "X-Twilio-Signature"


def verify_duecourse(secret: str | None, header: str | None, body: bytes,
                     now: datetime) -> bool:
    """True only for a fresh, matching signature under a configured secret."""
    if not secret or not header:
        return False
    return verify(secret, header, body, now, DEFAULT_TOLERANCE)


def twilio_signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's signature of a form post to `url`."""
    data = url + "".join(f"{name}{value}" for name, value in sorted(params))
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_twilio(token: str | None, header: str | None, url: str,
                  params: Iterable[tuple[str, str]]) -> bool:
    """True only when the auth token is configured and the signature matches."""
    if not token or not header:
        return False
    expected = twilio_signature(token, url, params).encode()
    return hmac.compare_digest(expected, header.strip().encode())  # bytes: any header
