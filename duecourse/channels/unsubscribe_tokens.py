"""Signed one-click opt-out tokens (RFC 8058): the token in a `List-Unsubscribe` link is
the only authority the unsubscribe endpoint needs, so it must be unforgeable.

A token binds a loan id and a channel, nothing about the borrower (no address, no
name): `<base64url payload>.<base64url HMAC-SHA256>`, the payload naming the key that
signed it. The key is derived from DUECOURSE_INBOUND_SECRET when set, else from the
payload keys (the newest signs, every listed key still verifies, so rotation keeps old
links working). Without either there is no key: no link is offered.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from duecourse.security.payload_keys import PayloadKeyError, ring_from_settings
from duecourse.security.signed_tokens import pack, payload_of, unpack
from duecourse.settings import Settings

PURPOSE = b"duecourse/unsubscribe/v1"
"""Domain separation: a key derived for links never signs anything else."""
INBOUND_KEY_ID = "inbound"
MAX_TOKEN = 512


@dataclass(frozen=True)
class Unsubscribe:
    """What a valid token allows: opting this loan's borrower out of this channel."""

    loan_id: str
    channel: str


def _derive(secret: bytes) -> bytes:
    return hmac.new(secret, PURPOSE, hashlib.sha256).digest()


class TokenSigner:
    """Mints and checks tokens with keys by id; `signing_id` names the one that mints."""

    def __init__(self, keys: dict[str, bytes], signing_id: str) -> None:
        self._keys = {kid: _derive(secret) for kid, secret in keys.items()}
        self._signing_id = signing_id

    def mint(self, loan_id: str, channel: str = "email") -> str:
        payload = payload_of({"k": self._signing_id, "l": loan_id, "c": channel})
        return pack(payload, self._sign(self._signing_id, payload))

    def verify(self, token: str) -> Unsubscribe | None:
        """What the token allows, or None for anything malformed, unsigned or tampered."""
        if (unpacked := unpack(token, MAX_TOKEN)) is None:
            return None
        payload, given, fields = unpacked
        kid, loan_id, channel = fields.get("k"), fields.get("l"), fields.get("c")
        if not all(isinstance(v, str) and v for v in (kid, loan_id, channel)):
            return None
        assert isinstance(kid, str) and isinstance(loan_id, str) and isinstance(channel, str)
        if kid not in self._keys or not hmac.compare_digest(self._sign(kid, payload), given):
            return None
        return Unsubscribe(loan_id=loan_id, channel=channel)

    def _sign(self, kid: str, payload: bytes) -> bytes:
        return hmac.new(self._keys[kid], payload, hashlib.sha256).digest()


def signer_from_settings(settings: Settings) -> TokenSigner | None:
    """The signer for these settings, or None when no key is configured (the link and
    its header are then left out)."""
    keys: dict[str, bytes] = {}
    try:
        ring = ring_from_settings(settings)
    except PayloadKeyError:
        ring = None
    if ring is not None:
        keys.update({f"p-{kid}": material for kid, material in ring.keys})
    signing = f"p-{ring.newest[0]}" if ring is not None else ""
    if settings.inbound_secret is not None and settings.inbound_secret.get_secret_value():
        keys[INBOUND_KEY_ID] = settings.inbound_secret.get_secret_value().encode()
        signing = INBOUND_KEY_ID
    return TokenSigner(keys, signing) if signing else None
