"""Signed borrower page tokens: the link is the only authority the page needs.

`<base64url payload>.<base64url HMAC-SHA256>`; the payload binds a loan id, the
collection case id and an expiry (and the id of the key that signed it), nothing about
the borrower. Tokens are checked with `hmac.compare_digest`; a token for a case that has
closed is refused where it is used (`duecourse.portal.access`), not here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from duecourse.security.signed_tokens import b64, pack, payload_of, unpack
from duecourse.settings import Settings

PURPOSE = b"duecourse/portal/v1"
"""Domain separation: a key derived for page links signs nothing else."""
CSRF_PURPOSE = b"duecourse/portal/csrf/v1"
MAX_TOKEN = 600
DEFAULT_SECRET_FILE = "portal-secret"
KEY_ID = "p1"


class PortalKeyError(ValueError):
    """The portal key is configured but cannot be used."""


@dataclass(frozen=True)
class PortalToken:
    """What a valid token opens: this loan's page while this case is open."""

    loan_id: str
    case_id: str
    expires_at: datetime


class PortalSigner:
    """Mints and verifies page tokens, and derives each token's CSRF value."""

    def __init__(self, secret: bytes, key_id: str = KEY_ID) -> None:
        if len(secret) < 16:
            raise PortalKeyError("the portal secret must be at least 16 bytes")
        self._key = hmac.new(secret, PURPOSE, hashlib.sha256).digest()
        self._csrf = hmac.new(secret, CSRF_PURPOSE, hashlib.sha256).digest()
        self._kid = key_id

    def mint(self, loan_id: str, case_id: str, issued_at: datetime,
             valid_for: timedelta) -> str:
        expires = int((issued_at + valid_for).timestamp())
        payload = payload_of({"k": self._kid, "l": loan_id, "c": case_id, "e": expires})
        return pack(payload, self._sign(payload))

    def verify(self, token: str, now: datetime) -> PortalToken | None:
        """What the token opens, or None for anything malformed, forged, tampered or
        expired (callers answer every None the same way)."""
        if (unpacked := unpack(token, MAX_TOKEN)) is None:
            return None
        payload, given, fields = unpacked
        if not hmac.compare_digest(self._sign(payload), given):
            return None
        loan_id, case_id, expires = fields.get("l"), fields.get("c"), fields.get("e")
        if fields.get("k") != self._kid or not isinstance(loan_id, str) or not loan_id \
                or not isinstance(case_id, str) or not case_id or type(expires) is not int:
            return None
        expires_at = datetime.fromtimestamp(expires, UTC)
        if now >= expires_at:
            return None
        return PortalToken(loan_id=loan_id, case_id=case_id, expires_at=expires_at)

    def csrf_for(self, token: str) -> str:
        """The value every form of this token's page carries (a signed per-token CSRF
        token: another site cannot compute it, and it changes with each link)."""
        return b64(hmac.new(self._csrf, token.encode(), hashlib.sha256).digest())

    def csrf_ok(self, token: str, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(self.csrf_for(token), given)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()


def ensure_secret_file(path: Path) -> None:
    """Create `path` with a fresh random key when it does not exist (`duecourse dev`)."""
    path = path.expanduser()
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_urlsafe(32) + "\n", encoding="ascii")
    path.chmod(0o600)


def signer_from_settings(settings: Settings) -> PortalSigner | None:
    """The signer for these settings; None when no portal key is configured (messages
    then carry no link and every page is the neutral one)."""
    if settings.portal_secret is not None and settings.portal_secret.get_secret_value():
        return PortalSigner(settings.portal_secret.get_secret_value().encode())
    path = settings.portal_secret_file or settings.data_dir / DEFAULT_SECRET_FILE
    path = path.expanduser()
    if not path.exists():
        if settings.portal_secret_file is not None:
            raise PortalKeyError(f"portal_secret_file {path} does not exist")
        return None
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise PortalKeyError(f"portal_secret_file {path} is empty")
    return PortalSigner(secret.encode())
