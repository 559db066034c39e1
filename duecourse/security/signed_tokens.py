"""The shape every signed link token shares: `<base64url payload>.<base64url signature>`,
the payload a JSON object. One parser, so the page links and the opt-out links refuse a
malformed token the same way; each signer checks its own signature and fields."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def payload_of(fields: dict[str, Any]) -> bytes:
    """The canonical bytes signed (sorted keys, no spaces: one meaning, one signature)."""
    return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()


def pack(payload: bytes, signature: bytes) -> str:
    return f"{b64(payload)}.{b64(signature)}"


def unpack(token: str, max_length: int) -> tuple[bytes, bytes, dict[str, Any]] | None:
    """The payload, the signature given and the payload's fields - not yet verified - or
    None for anything too long, malformed or not a JSON object."""
    if len(token) > max_length or token.count(".") != 1:
        return None
    encoded, _, signature = token.partition(".")
    try:
        payload, given = unb64(encoded), unb64(signature)
        fields = json.loads(payload)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return (payload, given, fields) if isinstance(fields, dict) else None
