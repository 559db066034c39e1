"""Money in the API's JSON: a decimal string, each way it can be wrong told in a sentence.

A float would lose cents, so an amount is never a JSON number; the loan's currency (known
only once the loan is looked up) turns it into `Money`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema

from duecourse.domain.money import AMOUNT_DECIMALS, AMOUNT_PATTERN, MAX_WHOLE_DIGITS, Money

_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def _amount(value: Any) -> str:
    """Each way an amount can be wrong gets its own sentence (a pattern says none)."""
    if not isinstance(value, str):
        raise ValueError('must be a decimal amount in a JSON string, like "1250.50"')
    if not _DECIMAL.fullmatch(value):
        raise ValueError("must be a decimal amount like 1250.50: digits and an optional "
                         "decimal point, without sign, spaces, separators or exponent")
    whole, _, fraction = value.partition(".")
    if len(whole) > MAX_WHOLE_DIGITS:
        raise ValueError(f"is too large: at most {MAX_WHOLE_DIGITS} digits before the "
                         f"decimal point, got {len(whole)}")
    if len(fraction) > AMOUNT_DECIMALS:
        raise ValueError(f"has {len(fraction)} decimal places; at most {AMOUNT_DECIMALS}")
    return value


Amount = Annotated[str, PlainValidator(_amount), WithJsonSchema(
    {"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["1250.50"]})]
"""Money travels as a decimal string (never a float): "1250.50"; the loan's currency
decides how many decimals it may really have."""


def money(amount: str, currency: str) -> Money:
    """An `Amount` in the loan's currency."""
    return Money(amount=Decimal(amount), currency=currency)
