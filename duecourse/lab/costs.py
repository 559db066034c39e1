"""What contacts and agents' work cost, so the analytics can say cost per cure and per unit
recovered. A YAML file (the bundled `costs.yaml`, or `costs_file` in the settings) with a
currency, a cost per contact per channel and a cost per agent task by kind; a typo or a
negative amount is refused with a sentence naming the field, never silently costed as 0.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from duecourse.domain.policy import Channel
from duecourse.domain.work.queue import TaskKind

BUNDLED = Path(__file__).with_name("costs.yaml")


class CostsFileError(ValueError):
    """A costs file that cannot be used; the message names the file and the field."""


class CostTable(BaseModel):
    """Cost per contact per channel and per completed agent task, in `currency`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    channels: dict[Channel, Decimal] = Field(default_factory=dict)
    agent_tasks: dict[str, Decimal] = Field(default_factory=dict)

    @field_validator("channels", "agent_tasks")
    @classmethod
    def _not_negative(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for key, amount in value.items():
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"the cost of {key} must be a number of 0 or more")
        return value

    @field_validator("agent_tasks")
    @classmethod
    def _known_tasks(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        known = {k.value for k in TaskKind} | {"default"}
        for key in value:
            if key not in known:
                raise ValueError(f"unknown task kind {key!r}; known: "
                                 f"{', '.join(sorted(known))}")
        return value

    def contact(self, channel: str) -> Decimal:
        """One contact on `channel` (0 for a channel the file does not price)."""
        try:
            return self.channels.get(Channel(channel), Decimal(0))
        except ValueError:
            return Decimal(0)

    def task(self, kind: str) -> Decimal:
        """One completed task of `kind` (the `default` cost when the kind is not listed)."""
        return self.agent_tasks.get(kind, self.agent_tasks.get("default", Decimal(0)))


def _plain(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"] if p != "[key]")
        message = e["msg"].removeprefix("Value error, ")
        if e["type"].startswith("decimal"):
            message = f"must be an amount such as 0.05, got {e['input']!r}"
        elif e["type"] == "extra_forbidden":
            message = "is not a field of a costs file (currency, channels, agent_tasks)"
        elif e["type"] == "enum":
            message = f"is not a channel ({', '.join(c.value for c in Channel)})"
        elif e["type"] == "string_pattern_mismatch":
            message = "must be a three-letter ISO 4217 code such as USD"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def load_costs(path: Path | None = None) -> CostTable:
    """The cost table in `path` (default: the bundled one)."""
    path = path or BUNDLED
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise CostsFileError(f"costs file {path} cannot be read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise CostsFileError(f"costs file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise CostsFileError(f"costs file {path} must be a mapping with currency, channels "
                             "and agent_tasks")
    try:
        return CostTable.model_validate(data)
    except ValidationError as err:
        raise CostsFileError(f"costs file {path}: {_plain(err)}") from None
