"""The page's words (words.yaml: English and Simplified Chinese), and money and dates as
each language writes them. A borrower whose language has no text here reads English."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import yaml
from babel.dates import format_date
from babel.numbers import format_currency

from duecourse.templates import pick_language
from duecourse.templates.locale_format import babel_locale

WORDS_FILE = Path(__file__).parent / "words.yaml"


@lru_cache(maxsize=1)
def texts() -> dict[str, dict[str, str]]:
    """Language -> key -> text."""
    data = yaml.safe_load(WORDS_FILE.read_text(encoding="utf-8"))
    return {str(lang): {str(k): str(v) for k, v in words.items()}
            for lang, words in data.items()}


def language_of(wanted: str) -> str:
    return pick_language(list(texts()), wanted) or "en"


class Words:
    """The page's words and formats in one language."""

    def __init__(self, language: str) -> None:
        self.language = language_of(language)
        self._texts = texts()[self.language]
        self._locale = babel_locale(self.language)

    def __call__(self, key: str, **values: object) -> str:
        return (self._texts.get(key) or texts()["en"][key]).format(**values)

    def money(self, amount: Decimal, currency: str) -> str:
        return format_currency(amount, currency, locale=self._locale)

    def day(self, d: date) -> str:
        return format_date(d, format="long", locale=self._locale)
