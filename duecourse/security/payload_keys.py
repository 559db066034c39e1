"""The payload key ring: AES-256 keys by id, the newest seals, every one still opens.

A key source is text with one key per line, `<key id>:<base64 of 32 bytes>`, oldest first
(blank lines and `#` comments ignored). It comes from exactly one place: the setting
DUECOURSE_PAYLOAD_KEYS (the text itself; commas may stand for line breaks), the file named by
DUECOURSE_PAYLOAD_KEY_FILE, or, when neither is set, `<data dir>/payload-keys` (which
`duecourse dev` creates on first start). Rotation appends a key: new payloads use it, and
payloads sealed with an older key still open as long as that key stays listed.
"""

from __future__ import annotations

import base64
import binascii
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
KEY_BYTES = 32  # AES-256
DEFAULT_KEY_FILE = "payload-keys"
SETTINGS_HINT = ("set DUECOURSE_PAYLOAD_KEY_FILE to a key file or DUECOURSE_PAYLOAD_KEYS to "
                 "'<key id>:<base64 key>' (`duecourse payload-keys new --file PATH` makes one)")


class PayloadKeyError(ValueError):
    """The payload keys are missing or malformed; the message names the setting to fix."""


@dataclass(frozen=True)
class KeyRing:
    """Keys oldest first; `newest` seals, any of them opens."""

    keys: tuple[tuple[str, bytes], ...]
    source: str  # where they came from, for messages (never the key material)

    def __post_init__(self) -> None:
        if not self.keys:
            raise PayloadKeyError(f"{self.source} holds no payload key: {SETTINGS_HINT}")

    @property
    def newest(self) -> tuple[str, bytes]:
        return self.keys[-1]

    @property
    def key_ids(self) -> list[str]:
        return [kid for kid, _ in self.keys]

    def get(self, key_id: str) -> bytes | None:
        return dict(self.keys).get(key_id)


def parse_keys(text: str, source: str) -> KeyRing:
    """The key ring in `text`; a malformed line is refused by its number, never echoed
    (it may hold key material)."""
    keys: dict[str, bytes] = {}
    for number, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, encoded = line.partition(":")
        key_id, encoded = key_id.strip(), encoded.strip()
        where = f"{source}, entry {number}"
        if not sep or not KEY_ID.fullmatch(key_id):
            raise PayloadKeyError(f"{where} is not '<key id>:<base64 key>' (a key id is 1-64 "
                                  f"letters, digits and . _ -): {SETTINGS_HINT}")
        try:
            material = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            material = b""
        if len(material) != KEY_BYTES:
            raise PayloadKeyError(f"{where}: key {key_id!r} is not {KEY_BYTES} bytes of "
                                  f"base64 (AES-256): {SETTINGS_HINT}")
        if key_id in keys and keys[key_id] != material:
            raise PayloadKeyError(f"{source} lists key {key_id!r} twice with different "
                                  "material: a key id names one key forever")
        keys.pop(key_id, None)
        keys[key_id] = material
    return KeyRing(tuple(keys.items()), source)


def read_key_file(path: Path) -> KeyRing:
    source = f"payload key file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PayloadKeyError(f"{source} does not exist: {SETTINGS_HINT}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PayloadKeyError(f"{source} cannot be read ({err.__class__.__name__}): "
                              f"{SETTINGS_HINT}") from None
    return parse_keys(text, source)


def load_key_ring(inline: str | None, key_file: Path | None, data_dir: Path) -> KeyRing:
    """The ring from exactly one configured source (see the module docstring)."""
    if inline and key_file:
        raise PayloadKeyError("both DUECOURSE_PAYLOAD_KEYS and DUECOURSE_PAYLOAD_KEY_FILE are "
                              "set: keep one of them")
    if inline:
        return parse_keys(inline, "DUECOURSE_PAYLOAD_KEYS")
    if key_file:
        return read_key_file(key_file.expanduser())
    default = data_dir.expanduser() / DEFAULT_KEY_FILE
    if default.exists():
        return read_key_file(default)
    raise PayloadKeyError(f"no payload key is configured and {default} does not exist "
                          f"(payloads in Temporal are always encrypted): {SETTINGS_HINT}")


def ring_from_settings(settings: Settings) -> KeyRing:
    inline = settings.payload_keys.get_secret_value() if settings.payload_keys else None
    return load_key_ring(inline, settings.payload_key_file, settings.data_dir)


def new_key_line(now: datetime | None = None) -> str:
    """A fresh key as one line of a key source; its id says when it was made."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d")
    key_id = f"k{stamp}-{secrets.token_hex(3)}"
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def add_key(path: Path) -> str:
    """Append a new (newest) key to the key file at `path`, creating it readable by its
    owner only; returns the new key id. Existing keys stay, so old payloads still open."""
    path = path.expanduser()
    if path.exists():
        read_key_file(path)  # refuse to append to a malformed file
    path.parent.mkdir(parents=True, exist_ok=True)
    line = new_key_line()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    return line.partition(":")[0]


def ensure_key_file(path: Path) -> KeyRing:
    """The ring in `path`, creating the file with one new key when it does not exist
    (`duecourse dev`'s embedded default, so even a laptop's payloads are sealed)."""
    if not path.expanduser().exists():
        add_key(path)
    return read_key_file(path.expanduser())
