"""What an SMS reply asks for, and the answers carriers require us to give.

STOP, UNSUBSCRIBE, 退订 and TD (the Chinese carriers' opt-out) withdraw consent to SMS;
HELP (帮助) asks who is writing. Matching ignores case, surrounding and inner spaces and
trailing punctuation, so "Stop." and " t d " count; anything else is the borrower talking
to us.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum


class ReplyKind(StrEnum):
    STOP = "stop"
    HELP = "help"
    OTHER = "other"


STOP_WORDS = frozenset({"stop", "unsubscribe", "退订", "td"})
HELP_WORDS = frozenset({"help", "帮助"})
_NOISE = re.compile(r"[\s.!。,;]+")  # after NFKC, which makes fullwidth ASCII


def keyword(text: str) -> str:
    """The reply reduced to what keyword matching compares."""
    return _NOISE.sub("", unicodedata.normalize("NFKC", text)).casefold()


def classify(text: str) -> ReplyKind:
    word = keyword(text)
    if word in STOP_WORDS:
        return ReplyKind.STOP
    if word in HELP_WORDS:
        return ReplyKind.HELP
    return ReplyKind.OTHER


def _chinese(language: str) -> bool:
    return language.lower().startswith("zh")


def stop_confirmation(lender: str, language: str) -> str:
    """The one confirmation an opt-out gets."""
    if _chinese(language):
        return f"【{lender}】您已退订短信，我们将不再向您发送短信。"  # noqa: RUF001
    return f"{lender}: you are unsubscribed and will receive no more text messages from us."


def help_answer(lender: str, contact: str, language: str) -> str:
    """Who is writing and how to reach them (HELP)."""
    if _chinese(language):
        return f"【{lender}】如需帮助请联系 {contact}。回复TD退订。"
    return f"{lender}: for help contact {contact}. Reply STOP to unsubscribe."
