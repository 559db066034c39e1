"""The one place a credential travels in a URL: the Temporal UI's codec endpoint,
`/codec/ui/<key>/...` (the UI cannot send a header). Every path that is logged, traced,
labelled or echoed in a problem goes through `redact_path` first."""

from __future__ import annotations

import re

_KEY_IN_PATH = re.compile(r"(/codec/ui/)[^/?#\s\"]+")


def redact_path(text: str) -> str:
    """`text` with any API key in a `/codec/ui/<key>/...` path replaced by `<redacted>`."""
    return _KEY_IN_PATH.sub(r"\1<redacted>", text)
