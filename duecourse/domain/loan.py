"""The loan a platform hands over for collection, validated precisely at the edge."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from duecourse.domain.calendar import days_past_due, local_date, zone
from duecourse.domain.ids import JURISDICTION_PATTERN, PlatformId, PolicyName, ProductName
from duecourse.domain.money import CurrencyCode, Money, check_scale

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _phone(value: str) -> str:
    compact = re.sub(r"[\s().-]", "", value)
    if not _E164.match(compact):
        raise ValueError(
            f"malformed phone number {value!r}: expected E.164 such as +8613800138000"
        )
    return compact


def _tz(value: str) -> str:
    zone(value)
    return value


def _jurisdiction(value: str) -> str:
    code = value.strip().upper()
    code = "GB" + code[2:] if code[:2] == "UK" else code
    if not re.match(JURISDICTION_PATTERN, code):
        raise ValueError(
            f"jurisdiction {value!r} must be an ISO 3166 country code, optionally with a "
            "subdivision (CN, US, US-CA, GB)"
        )
    return code


PhoneNumber = Annotated[str, AfterValidator(_phone)]
TimeZoneName = Annotated[str, AfterValidator(_tz)]
Jurisdiction = Annotated[str, AfterValidator(_jurisdiction)]
LanguageTag = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
]
PersonName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
PostalAddress = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class LoanNotOverdue(ValueError):
    """Raised when a loan handed over for collection is not past its due date yet."""


MAX_OTHER_ZONES = 16


class Borrower(BaseModel):
    """Who we are helping to cure, and how and when they may be reached."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    borrower_id: PlatformId
    name: PersonName
    phones: list[PhoneNumber] = Field(default_factory=list)
    email: EmailStr | None = None
    address: PostalAddress | None = None
    timezone: TimeZoneName
    other_timezones: list[TimeZoneName] = Field(
        default_factory=list, max_length=MAX_OTHER_ZONES,
        description="other zones the borrower may be in (phones in other area codes, an "
        "address in another zone): where the pack says so, contact suits every one of "
        "them (Reg F comment 6(b)(1)(i)-1)")
    language: LanguageTag = "en"

    @field_validator("email", "address", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _reachable(self) -> Borrower:
        if not (self.phones or self.email or self.address):
            raise ValueError("borrower has no phone, email or postal address to contact")
        return self


class LoanIntake(BaseModel):
    """One overdue loan as the platform hands it over; becomes `collection-<loan_id>`."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    loan_id: PlatformId
    borrower: Borrower
    jurisdiction: Jurisdiction
    currency: CurrencyCode
    principal: Decimal = Field(gt=0)
    outstanding: Decimal = Field(gt=0)
    due_date: date
    last_payment_date: date | None = Field(
        default=None, description="the borrower's last payment before hand-over: starts "
        "the limitation period where the pack counts from the last payment")
    product: ProductName = "instalment"
    policy: PolicyName = "standard"

    @model_validator(mode="after")
    def _amount_scale(self) -> LoanIntake:
        object.__setattr__(self, "principal", check_scale(self.principal, self.currency,
                                                          "principal"))
        object.__setattr__(self, "outstanding", check_scale(self.outstanding, self.currency,
                                                            "outstanding"))
        return self

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.loan_id)

    @property
    def outstanding_money(self) -> Money:
        return Money(amount=self.outstanding, currency=self.currency)

    @property
    def principal_money(self) -> Money:
        return Money(amount=self.principal, currency=self.currency)

    def days_past_due(self, moment: datetime) -> int:
        return days_past_due(self.due_date, moment, self.borrower.timezone)

    def ensure_overdue(self, moment: datetime) -> None:
        """Refuse a loan that is not past due yet in the borrower's own time zone."""
        if self.days_past_due(moment) < 1:
            today = local_date(moment, self.borrower.timezone)
            raise LoanNotOverdue(
                f"loan {self.loan_id} is not overdue: due {self.due_date}, and it is "
                f"{today} in {self.borrower.timezone}"
            )


def workflow_id_for(loan_id: str) -> str:
    """The one workflow id a loan ever has, so starts and signals are idempotent."""
    return f"collection-{loan_id}"
