"""`duecourse dev --mail`: a local SMTP catcher, so the demo's emails can be read.

A dev tool only: it listens on 127.0.0.1, accepts every message (no TLS, no auth) and
writes each one, exactly as received, to `<folder>/NNNN-<time>.eml` (open it in any mail
client, or read the text). The worker's email kind is pointed at it, so the real SMTP
adapter - multipart parts, opt-out headers and all - is what sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from duecourse.cli.common import CliError

SENDER = "collections@duecourse.localhost"


class CatcherUnavailable(CliError):
    """The catcher cannot start; the message says what to do."""


def catcher_url(port: int) -> str:
    """The DUECOURSE_EMAIL_URL that sends to a catcher on this port."""
    return f"smtp://127.0.0.1:{port}?starttls=false&from={SENDER}"


class _Keep:
    """The aiosmtpd handler: every message to a file, one line to `report`."""

    def __init__(self, folder: Path, report: Callable[[str, Path], None]) -> None:
        self.folder = folder
        self.report = report
        self.count = len(list(folder.glob("*.eml")))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{self.count:04d}-{stamp}.eml"
        content: bytes = envelope.original_content or envelope.content
        await asyncio.to_thread(path.write_bytes, content)
        subject = str(message_from_bytes(content, policy=policy.default)["Subject"] or "")
        self.report(subject, path)
        return "250 Message accepted for delivery"


@asynccontextmanager
async def mail_catcher(folder: Path, port: int,
                       report: Callable[[str, Path], None]) -> AsyncIterator[int]:
    """Serve the catcher on 127.0.0.1:`port` (0: any free port) while inside; yields the
    port it listens on."""
    try:
        from aiosmtpd.smtp import SMTP
    except ImportError:
        raise CatcherUnavailable("--mail needs the aiosmtpd package (pip install aiosmtpd, "
                                 "or the project's test extra)") from None
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    handler = _Keep(folder, report)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="duecourse-dev", ident="duecourse dev mail"),
            host="127.0.0.1", port=port)
    except OSError as err:
        raise CatcherUnavailable(f"the mail catcher cannot listen on 127.0.0.1:{port} "
                                 f"({err.strerror or err}): choose another --mail-port"
                                 ) from None
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
