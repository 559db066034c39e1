"""What an SMS reply asks for, and the answers carriers require us to give.

STOP, UNSUBSCRIBE, 退订 and TD (the Chinese carriers' opt-out) withdraw consent to SMS;
START and UNSTOP give it back (the borrower's own re-consent, as carriers honour it); HELP
(帮助) asks who is writing. Matching ignores case, surrounding and inner spaces and
trailing punctuation, so "Stop." and " t d " count; anything else is the borrower talking
to us.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum


class ReplyKind(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"
    OTHER = "other"


STOP_WORDS = frozenset({"stop", "unsubscribe", "退订", "td"})
START_WORDS = frozenset({"start", "unstop"})
HELP_WORDS = frozenset({"help", "帮助"})
_NOISE = re.compile(r"[\s.!。,;]+")  # after NFKC, which makes fullwidth ASCII


def keyword(text: str) -> str:
    """The reply reduced to what keyword matching compares."""
    return _NOISE.sub("", unicodedata.normalize("NFKC", text)).casefold()


def classify(text: str) -> ReplyKind:
    word = keyword(text)
    if word in STOP_WORDS:
        return ReplyKind.STOP
    if word in START_WORDS:
        return ReplyKind.START
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


def start_confirmation(lender: str, language: str) -> str:
    """The one confirmation a re-consent gets (how to stop again included)."""
    if _chinese(language):
        return f"【{lender}】您已重新订阅短信。回复TD退订。"
    return f"{lender}: you are subscribed to text messages again. Reply STOP to unsubscribe."


def help_answer(lender: str, contact: str, language: str) -> str:
    """Who is writing and how to reach them (HELP)."""
    if _chinese(language):
        return f"【{lender}】如需帮助请联系 {contact}。回复TD退订。"
    return f"{lender}: for help contact {contact}. Reply STOP to unsubscribe."
