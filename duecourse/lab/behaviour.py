"""The simulated portfolio and its borrowers' behaviour, as a validated YAML file.

Every number is a parameter with a public figure behind its default (`behaviour.yaml`).
A file with an unknown field, a rate outside 0-1 or shares that do not sum to 1 is
refused with one sentence naming the field (`BehaviourError`), never a pydantic dump.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULTS = Path(__file__).with_name("behaviour.yaml")
SEGMENTS = ("self_cure", "cant_pay", "wont_pay", "unreachable")


def _rate(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"must be a rate between 0 and 1, got {value:g}")
    return value


Rate = Annotated[float, AfterValidator(_rate)]
"""A probability, 0 to 1."""

SHARE_TOLERANCE = 1e-6


class BehaviourError(ValueError):
    """A behaviour file that cannot be used, in one sentence naming the field."""


def _shares(name: str, shares: dict[str, float]) -> None:
    """Shares of a whole sum to 1 (`name`: the field, '' for the model's own fields)."""
    total = sum(shares.values())
    if abs(total - 1) > SHARE_TOLERANCE:
        raise ValueError(f"{name + ' ' if name else ''}shares sum to {total:g}, not 1")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Jurisdiction(_Strict):
    """Where a share of the portfolio lives, and what its loans look like."""

    share: Rate
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    zones: dict[str, Rate]  # IANA zone -> share of the jurisdiction's borrowers
    language: str = "en"
    phone_prefix: str = Field(pattern=r"^\+[1-9]\d{0,3}$")
    balance_min: Decimal = Field(gt=0)
    balance_max: Decimal = Field(gt=0)

    @model_validator(mode="after")
    def _check(self) -> Jurisdiction:
        _shares("zones", self.zones)
        if self.balance_max < self.balance_min:
            raise ValueError("balance_max is below balance_min")
        return self


class Portfolio(_Strict):
    jurisdictions: dict[str, Jurisdiction]
    dpd_at_hand_over: dict[str, Rate]  # "1-7" -> share of loans handed over at that DPD
    channels_held: dict[str, Rate]  # phone / email / address -> share of borrowers
    outstanding_ratio_min: Rate = 0.3  # outstanding / principal at hand-over

    @model_validator(mode="after")
    def _check(self) -> Portfolio:
        _shares("jurisdictions", {k: j.share for k, j in self.jurisdictions.items()})
        _shares("dpd_at_hand_over", self.dpd_at_hand_over)
        for band in self.dpd_at_hand_over:
            low, _, high = band.partition("-")
            if not (low.isdigit() and high.isdigit() and 1 <= int(low) <= int(high)):
                raise ValueError(f"dpd_at_hand_over band {band!r} is not 'low-high' days")
        unknown = set(self.channels_held) - {"phone", "email", "address"}
        if unknown:
            raise ValueError(f"channels_held has unknown channel {sorted(unknown)[0]!r}")
        return self


class Reaction(_Strict):
    """What a borrower a contact reached does next (shares summing to 1)."""

    pay_in_full: Rate
    promise: Rate
    plan: Rate  # agrees an instalment plan with the agent
    settle: Rate  # accepts a discounted settlement
    dispute: Rate
    opt_out: Rate
    hardship: Rate
    refuse: Rate
    talk_only: Rate

    @model_validator(mode="after")
    def _check(self) -> Reaction:
        _shares("", self.model_dump())
        return self


class Supervisor(_Strict):
    """The simulated supervisor: who decides legal referrals and settlement approvals."""

    legal_decides: Rate  # share of legal referrals decided (the rest time out, escalating)
    legal_approves: Rate  # share of the decided ones approved (the rest rejected)
    settlement_approves: Rate  # share of settlements above the agent's limit approved
    decide_hours: int = Field(ge=0, le=720)  # hours from the request to the decision


class Behaviour(_Strict):
    """Borrower behaviour: who pays unprompted, who a contact reaches, and what follows."""

    self_cure: dict[str, Rate]  # segment -> chance of paying in full unprompted
    self_cure_within_days: int = Field(ge=1, le=365)
    dpd_factor: dict[str, Rate]  # DPD band at hand-over -> multiplier on every propensity
    reach: dict[str, Rate]  # channel -> chance a contact reaches the borrower
    reach_by_hour: dict[str, Rate]  # "8-12" local hours -> multiplier on reach
    response_hours: int = Field(ge=0, le=72)  # a reached borrower acts within this many hours
    on_reach: Reaction
    promise_kept: dict[str, Rate]  # segment -> chance a promise is kept
    promise_days: int = Field(ge=0, le=60)
    dispute_verified_days: int = Field(ge=1, le=90)
    hardship_days: int = Field(ge=1, le=366)
    agent_works_tasks: Rate  # share of call tasks an agent works before their SLA
    agent_pickup_hours: int = Field(ge=0, le=72)  # hours from a task to the agent's call
    plan_instalments: int = Field(ge=1, le=60)  # asked for; the policy's limit may cut it
    plan_interval_days: int = Field(ge=1, le=92)  # between instalments (policy permitting)
    plan_first_days: int = Field(ge=0, le=90)  # from agreement to the first instalment
    plan_adherence: dict[str, Rate]  # segment -> chance each instalment is paid on its date
    settlement_discount: Rate  # share of the balance the agent offers to waive
    settlement_pay_days: int = Field(ge=0, le=90)  # pay-by date, days after the offer
    settlement_paid: dict[str, Rate]  # segment -> chance an agreed settlement is paid
    supervisor: Supervisor

    @model_validator(mode="after")
    def _check(self) -> Behaviour:
        segments = set(SEGMENTS)
        for name in ("self_cure", "promise_kept", "plan_adherence", "settlement_paid"):
            missing = segments - set(getattr(self, name))
            if missing:
                raise ValueError(f"{name} has no rate for segment {sorted(missing)[0]}")
        unknown = set(self.reach) - {"sms", "email", "voice", "letter", "visit"}
        if unknown:
            raise ValueError(f"reach has unknown channel {sorted(unknown)[0]!r}")
        for band in self.reach_by_hour:
            low, _, high = band.partition("-")
            if not (low.isdigit() and high.isdigit() and 0 <= int(low) < int(high) <= 24):
                raise ValueError(f"reach_by_hour band {band!r} is not 'from-to' hours")
        return self


class LabFile(_Strict):
    portfolio: Portfolio
    behaviour: Behaviour


def _where(err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    kind, msg = first["type"], str(first["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return f"unknown field {field}"
    if kind == "missing":
        return f"missing field {field}"
    if not field:
        return msg
    if kind == "value_error":  # ours: "must be ...", "shares sum ..." or "<field> ..."
        own = msg.startswith(("must", "shares"))
        return f"{field} {msg}" if own else f"{field}.{msg}"
    return f"{field}: {msg[0].lower()}{msg[1:]}"


def parse(data: Any, source: str = "behaviour file") -> LabFile:
    """Validate `data`; a BehaviourError names the field it refuses."""
    try:
        return LabFile.model_validate(data)
    except ValidationError as err:
        raise BehaviourError(f"{source}: {_where(err)}.") from None


def load_behaviour(path: str | Path | None = None) -> LabFile:
    """The behaviour file at `path`, or the defaults shipped with duecourse."""
    file = Path(path) if path is not None else DEFAULTS
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise BehaviourError(f"cannot read behaviour file {file}: {err.strerror}.") from None
    except yaml.YAMLError as err:
        raise BehaviourError(f"behaviour file {file} is not valid YAML: {err}.") from None
    return parse(data, f"behaviour file {file}")
