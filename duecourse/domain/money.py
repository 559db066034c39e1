"""Money as `Decimal` with an ISO 4217 currency; never float.

Amounts are validated against the currency's minor units so that `12.345 USD` is an
error at the edge instead of a rounding surprise in the ledger.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

# Active ISO 4217 currencies and their minor units (fund codes and metals excluded).
_TWO_DIGITS = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT
    LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN
    NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP
    SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VED
    VES WST XCD XCG YER ZAR ZMW ZWG
"""
_ZERO_DIGITS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF"
_THREE_DIGITS = "BHD IQD JOD KWD LYD OMR TND"


def _codes(text: str, digits: int) -> dict[str, int]:
    return dict.fromkeys(text.split(), digits)


_MINOR_UNITS: dict[str, int] = {
    **_codes(_TWO_DIGITS, 2), **_codes(_ZERO_DIGITS, 0), **_codes(_THREE_DIGITS, 3),
}


class CurrencyError(ValueError):
    """Raised for an unknown currency or amounts mixing currencies."""


def minor_units(currency: str) -> int:
    """Digits after the decimal point for `currency` (2 for USD, 0 for JPY, 3 for KWD)."""
    try:
        return _MINOR_UNITS[currency]
    except KeyError:
        raise CurrencyError(f"unknown currency {currency!r}: expected an ISO 4217 code") from None


def _check_currency(value: str) -> str:
    code = value.strip().upper()
    minor_units(code)
    return code


CurrencyCode = Annotated[str, AfterValidator(_check_currency)]


MAX_WHOLE_DIGITS = 15
"""Amounts up to a quadrillion less one minor unit: more is a typo (and beyond what exact
decimal arithmetic at the default precision can carry)."""
AMOUNT_DECIMALS = 4
AMOUNT_PATTERN = rf"^[0-9]{{1,{MAX_WHOLE_DIGITS}}}(\.[0-9]{{1,{AMOUNT_DECIMALS}}})?$"
"""An amount as a decimal string the API accepts: at most 15 whole digits, 4 decimals."""


def check_scale(amount: Decimal, currency: str, field: str = "amount") -> Decimal:
    """Reject amounts finer than the currency allows; return the amount at that scale."""
    if not amount.is_finite():
        raise ValueError(f"{field} must be a finite number, got {amount}")
    if amount.adjusted() >= MAX_WHOLE_DIGITS:
        raise ValueError(f"{field} is too large: at most {MAX_WHOLE_DIGITS} digits before "
                         f"the decimal point, got {amount.adjusted() + 1}")
    digits = minor_units(currency)
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > digits:
        raise ValueError(
            f"{field} {amount} has more decimal places than {currency} allows ({digits})"
        )
    return amount.quantize(Decimal(1).scaleb(-digits))


class Money(BaseModel):
    """An exact amount in one currency. Arithmetic refuses to mix currencies."""

    model_config = ConfigDict(frozen=True)

    amount: Decimal
    currency: CurrencyCode

    @model_validator(mode="after")
    def _scale(self) -> Money:
        object.__setattr__(self, "amount", check_scale(self.amount, self.currency))
        return self

    @classmethod
    def of(cls, amount: Decimal | str | int, currency: str) -> Money:
        return cls(amount=Decimal(str(amount)), currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    @property
    def is_positive(self) -> bool:
        return self.amount > 0

    def __str__(self) -> str:
        return f"{self.amount:,} {self.currency}"
