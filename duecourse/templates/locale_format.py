"""Money and dates as the borrower's locale writes them (Babel), for email.

The workflow hands the render step plain strings ("1,000.00 CNY", "2026-11-29") so its
history stays locale-free; an email reads them back here and formats them per locale:
"¥1,000.00" / "2026年11月29日" in zh-CN, "CN¥1,000.00" / "November 29, 2026" in en.
Amounts are parsed as Decimal, never float. A value that does not parse is left exactly
as it was, so a formatting gap can never lose or change what the borrower owes.
SMS and the outbox keep the plain strings (segment counts stay as computed).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency

MONEY = re.compile(r"(?P<amount>-?\d{1,3}(?:,\d{3})*(?:\.\d+)?|-?\d+(?:\.\d+)?) "
                   r"(?P<currency>[A-Z]{3})")
"""What `Money.__str__` writes: "1,000.00 CNY"."""
MONEY_KEYS = re.compile(r"(^|_)amount$")
DATE_KEYS = re.compile(r"(^|_)(date|due)$")


def babel_locale(language: str) -> Locale:
    """The Babel locale of a language tag ("zh-CN" -> zh_CN); English when unknown."""
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


def format_money(text: str, language: str) -> str:
    """`text` ("1,000.00 CNY") in the locale's currency format, or `text` unchanged."""
    match = MONEY.fullmatch(text.strip())
    if match is None:
        return text
    try:
        amount = Decimal(match["amount"].replace(",", ""))
    except InvalidOperation:
        return text
    return format_currency(amount, match["currency"], locale=babel_locale(language))


def format_day(text: str, language: str) -> str:
    """`text` (an ISO date) as the locale's long date, or `text` unchanged."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        return text
    return format_date(day, format="long", locale=babel_locale(language))


def localised(values: dict[str, str], language: str) -> dict[str, str]:
    """`values` with each amount (`amount`, `*_amount`) and date (`*_date`, `*_due`)
    formatted for `language`; every other value as given."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if MONEY_KEYS.search(key):
            out[key] = format_money(value, language)
        elif DATE_KEYS.search(key):
            out[key] = format_day(value, language)
        else:
            out[key] = value
    return out
