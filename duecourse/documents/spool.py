"""The print house's inbox: one PDF and one JSON manifest per letter, written atomically.

Each file is written under a hidden temporary name and renamed into place, the manifest
last, so a print house that picks up `*.json` always finds its PDF complete. A letter's
files are named after its idempotency key: a retry finds them and writes nothing.
The manifest holds the postal address (the print house needs it); nothing here logs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

MANIFEST_SCHEMA = "duecourse.letter-manifest/1"


@dataclass(frozen=True)
class Handover:
    """What the spool holds for a key: the PDF's sha256 and when it was handed over."""

    sha256: str
    accepted_at: datetime


def safe_stem(idempotency_key: str) -> str:
    """A file name for the key: its readable part, plus a digest so keys that differ only
    in characters a file name cannot hold never share a file."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", idempotency_key).strip("._")[:80]
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]
    return f"{readable or 'letter'}-{digest}"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def paths(self, idempotency_key: str) -> tuple[Path, Path]:
        stem = safe_stem(idempotency_key)
        return self.folder / f"{stem}.pdf", self.folder / f"{stem}.json"

    def handover(self, idempotency_key: str) -> Handover | None:
        """The letter handed over under this key, or None (its manifest is the receipt)."""
        _, manifest = self.paths(idempotency_key)
        try:
            data: dict[str, Any] = json.loads(manifest.read_bytes())
        except FileNotFoundError:
            return None
        return Handover(sha256=data["sha256"],
                        accepted_at=datetime.fromisoformat(data["accepted_at"]))

    def hand_over(self, idempotency_key: str, pdf: bytes, pages: int, address: str,
                  language: str, accepted_at: datetime) -> Handover:
        """Write the letter's PDF then its manifest, unless a manifest is already there."""
        found = self.handover(idempotency_key)
        if found is not None:
            return found
        pdf_path, manifest = self.paths(idempotency_key)
        sha256 = hashlib.sha256(pdf).hexdigest()
        _atomic_write(pdf_path, pdf)
        _atomic_write(manifest, json.dumps({
            "schema": MANIFEST_SCHEMA, "idempotency_key": idempotency_key,
            "pdf": pdf_path.name, "sha256": sha256, "pages": pages, "bytes": len(pdf),
            "language": language, "recipient_address": address,
            "accepted_at": accepted_at.isoformat()}, ensure_ascii=False, indent=2).encode())
        return Handover(sha256=sha256, accepted_at=accepted_at)
