"""Print-and-mail: each letter rendered to PDF, kept with its case, and handed to the print
house through a spool folder (`DUECOURSE_LETTER_URL=spool:///var/spool/duecourse`).

A send renders the PDF once per idempotency key: a retry finds the kept document and hands
over those same bytes, and a letter already in the spool is not written again, so a
retried send never prints twice. The manifest in the spool is the print house's receipt:
`find` reads it. Postal addresses go to the spool only, never to a log line.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity

from duecourse.channels.base import ChannelError, OutgoingMessage, Sighting
from duecourse.channels.routing import ChannelSettingError
from duecourse.documents.archive import StoredLetter, keep_letter, stored_letter
from duecourse.documents.fonts import FontMissing, LetterFont, locate_font
from duecourse.documents.pdf import GlyphsMissing, Letter, page_count, render_letter
from duecourse.documents.spool import Spool
from duecourse.settings import Settings
from duecourse.store.ledger import Ledger

URL_SETTING = "DUECOURSE_LETTER_URL"


def spool_folder(url: str) -> Path:
    """The folder a `spool:///absolute/path` URL names; anything else is a setting error."""
    parts = urlsplit(url.strip())
    if parts.scheme != "spool":
        raise ChannelSettingError(
            f"{URL_SETTING} must be spool:///absolute/folder (the print house's inbox), "
            f"not a {parts.scheme or 'scheme-less'} URL")
    if parts.netloc or not parts.path.startswith("/") or parts.query:
        raise ChannelSettingError(
            f"{URL_SETTING} must name an absolute folder with three slashes, as in "
            "spool:///var/spool/duecourse")
    return Path(unquote(parts.path))


def _now() -> datetime:
    """The activity's clock (the server's time, also when it skips ahead in tests)."""
    if activity.in_activity():
        from duecourse.activities.clock import activity_clock

        return activity_clock()()
    return datetime.now(UTC)


class SpoolChannel:
    name = "spool"

    def __init__(self, folder: Path, ledger: Ledger, font: LetterFont, lender_name: str,
                 lender_contact: str, clock: Callable[[], datetime] = _now) -> None:
        self._spool = Spool(folder)
        self._ledger = ledger
        self._font = font
        self._lender = (lender_name, lender_contact)
        self._clock = clock

    async def send(self, message: OutgoingMessage) -> str:
        try:
            kept = await self._kept(message)
            handed = await asyncio.to_thread(
                self._spool.hand_over, message.idempotency_key, kept.pdf,
                page_count(kept.pdf), message.recipient, message.language, kept.created_at)
        except (SQLAlchemyError, OSError, TimeoutError) as err:
            raise ChannelError(f"the letter spool is unavailable ({type(err).__name__})") \
                from None
        return f"spool-{handed.sha256[:16]}"

    async def find(self, idempotency_key: str) -> Sighting:
        """Always known: the spool's manifest under the key, or none."""
        try:
            handed = await asyncio.to_thread(self._spool.handover, idempotency_key)
        except (OSError, ValueError, KeyError) as err:
            raise ChannelError(f"the letter spool is unreadable ({type(err).__name__})") \
                from None
        if handed is None:
            return Sighting(known=True)
        return Sighting(known=True, message_id=f"spool-{handed.sha256[:16]}",
                        accepted_at=handed.accepted_at)

    async def _kept(self, message: OutgoingMessage) -> StoredLetter:
        """The letter's PDF as kept with the case: rendered and stored on the first try."""
        found = await stored_letter(self._ledger, message.idempotency_key)
        if found is not None:
            return found
        now = self._clock()
        letter = Letter(recipient_address=message.recipient, subject=message.subject,
                        body=message.body, language=message.language,
                        lender_name=self._lender[0], lender_contact=self._lender[1],
                        dated=now.date(), reference=message.loan_id)
        try:
            pdf = await asyncio.to_thread(render_letter, letter, self._font)
        except GlyphsMissing as err:
            raise ChannelError(str(err), permanent=True) from None
        return await keep_letter(self._ledger, message.idempotency_key, message.case_id,
                                 message.loan_id, message.language, message.subject,
                                 message.body, pdf.data, now)


def letter_channel(settings: Settings, ledger: Ledger) -> SpoolChannel:
    """The spool adapter for `settings.letter_url`; a bad URL, a folder that cannot be
    written or no font for Chinese stops the worker at start (ChannelSettingError)."""
    folder = spool_folder(settings.letter_url or "")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ChannelSettingError(f"{URL_SETTING}: the spool folder {folder} cannot be "
                                  f"created ({type(err).__name__})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ChannelSettingError(f"{URL_SETTING}: the spool folder {folder} is not writable "
                                  "by this worker")
    try:
        font = locate_font(getattr(settings, "letter_font", None))
    except FontMissing as err:
        raise ChannelSettingError(str(err)) from None
    return SpoolChannel(folder, ledger, font, settings.lender_name, settings.lender_contact)
