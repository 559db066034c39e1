"""The places a credential travels in a URL: the Temporal UI's codec endpoint,
`/codec/ui/<key>/...` (the UI cannot send a header), the borrower's page link `/b/<token>`
and the one-click opt-out `/v1/unsubscribe/<token>` (a message can carry nothing else).
Every path that is logged, traced, labelled or echoed in a problem goes through
`redact_path` first: whoever reads a log must not be able to open a borrower's page."""

from __future__ import annotations

import re

_CREDENTIAL_IN_PATH = re.compile(r"(/codec/ui/|/b/|/v1/unsubscribe/)[^/?#\s\"]+")


def redact_path(text: str) -> str:
    """`text` with the credential of any such path replaced by `<redacted>`."""
    return _CREDENTIAL_IN_PATH.sub(r"\1<redacted>", text)
