"""Keyed pseudonyms for personal data past retention: HMAC-SHA256 under a secret key.

A value becomes `hmac:<key id>:<32 hex digits>` (the first 128 bits of
HMAC-SHA256(key, UTF-8 of the value exactly as stored)). The same value always gives the
same pseudonym under one key, so an auditor holding an original value (and access to the
key) can prove it matches; without the key nobody can test guesses, which a bare hash of a
phone number allows in seconds (there are only about 10^10 numbers to try). The key lives
outside the ledger: DUECOURSE_RETENTION_KEY, DUECOURSE_RETENTION_KEY_FILE, or
`<data dir>/retention-key` (`duecourse retention new-key` makes one). See docs/privacy.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from duecourse.settings import Settings

KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
PSEUDONYM = re.compile(r"hmac:([A-Za-z0-9._-]{1,64}):([0-9a-f]{32})")
DEFAULT_KEY_FILE = "retention-key"
KEY_BYTES = 32
HINT = ("set DUECOURSE_RETENTION_KEY_FILE to a key file or DUECOURSE_RETENTION_KEY to "
        "'<key id>:<base64 of 32 bytes>' (`duecourse retention new-key` makes one)")


class RetentionKeyError(ValueError):
    """The pseudonymisation key is missing or malformed; the message names the setting."""


@dataclass(frozen=True)
class PseudonymKeys:
    """Keys oldest first: the newest makes new pseudonyms, every one still verifies."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def newest_id(self) -> str:
        return self.keys[-1][0]

    def pseudonym(self, value: str, key_id: str | None = None) -> str:
        kid = key_id or self.newest_id
        key = dict(self.keys).get(kid)
        if key is None:
            raise RetentionKeyError(f"pseudonym key {kid!r} is not configured: {HINT}")
        digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
        return f"hmac:{kid}:{digest}"

    def matches(self, value: str, pseudonym: str) -> bool:
        """Whether `pseudonym` was made from `value` (by whichever key it names)."""
        found = PSEUDONYM.fullmatch(pseudonym.strip())
        if found is None:
            raise RetentionKeyError(f"{pseudonym!r} is not a pseudonym (hmac:<key id>:<hex>)")
        return hmac.compare_digest(self.pseudonym(value, found.group(1)), found.group(0))


def parse_keys(text: str, source: str) -> PseudonymKeys:
    """The keys in `text`; a bad entry is refused by its number, never echoed."""
    keys: dict[str, bytes] = {}
    for number, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, encoded = (part.strip() for part in line.partition(":"))
        try:
            material = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            material = b""
        if not sep or not KEY_ID.fullmatch(key_id) or len(material) != KEY_BYTES:
            raise RetentionKeyError(f"{source}, entry {number}, is not '<key id>:<base64 of "
                                    f"{KEY_BYTES} bytes>': {HINT}")
        keys.pop(key_id, None)
        keys[key_id] = material
    if not keys:
        raise RetentionKeyError(f"{source} holds no pseudonymisation key: {HINT}")
    return PseudonymKeys(tuple(keys.items()))


def keys_from_settings(settings: Settings) -> PseudonymKeys:
    inline, path = settings.retention_key, settings.retention_key_file
    if inline and path:
        raise RetentionKeyError("both DUECOURSE_RETENTION_KEY and DUECOURSE_RETENTION_KEY_FILE "
                                "are set: keep one of them")
    if inline:
        return parse_keys(inline.get_secret_value(), "DUECOURSE_RETENTION_KEY")
    path = (path or settings.data_dir / DEFAULT_KEY_FILE).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RetentionKeyError(f"no pseudonymisation key: {path} does not exist; "
                                f"{HINT}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RetentionKeyError(f"pseudonymisation key file {path} cannot be read "
                                f"({type(err).__name__}): {HINT}") from None
    return parse_keys(text, f"pseudonymisation key file {path}")


def add_key(path: Path) -> str:
    """Append a new (newest) key to the file at `path`, created readable by its owner
    only; returns its id. Older keys stay, so older pseudonyms still verify."""
    path = path.expanduser()
    if path.exists():
        parse_keys(path.read_text(encoding="utf-8"), f"pseudonymisation key file {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    key_id = f"r{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    line = f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(line)
    return key_id
