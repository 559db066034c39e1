"""The rules a loan runs on, taken once when it is handed over and kept in its state.

A loan lives for months across deploys. Its past decisions must replay the same even when
a rule pack is edited or the `holidays` / `tzdata` packages are upgraded, so the pack (with
its policy's overrides), the region's public holidays and the borrower's compiled time
zone rules are snapshotted by the `open_loan` activity (its result is in the workflow's
history) and carried across continue-as-new. A newer pack reaches a running loan only by
an explicit, recorded migration (`migrate_rules`).
"""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.case.commands import Note
from duecourse.domain.compliance.packs import RulePack

HOLIDAY_YEARS = 6
"""Years of public holidays snapshotted from the hand-over year on (a loan rarely lives
longer; a later year falls back to the installed calendar)."""


LEGACY_MARKER = "call_window"
"""A pack field every snapshot has had since the packs count in the law's units."""
LEGACY_CALL_COUNTING = {"call_window": "rolling", "count_unconnected_calls": True}


class RulesSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    pack: RulePack
    zone: str = Field(description="the borrower's IANA time zone")
    zone_rules: bytes = Field(description="that zone's compiled rules (TZif), as installed "
                                          "when the snapshot was taken")
    holidays: list[date] = Field(default_factory=list)
    holiday_years: tuple[int, int] | None = Field(
        default=None, description="first and last year `holidays` covers; None: not taken "
                                  "(the pack does not restrict public holidays)")
    business_holidays: list[date] = Field(
        default_factory=list, description="the country's national holidays, for counting "
        "business days (a validation notice's assumed receipt)")
    business_holiday_years: tuple[int, int] | None = None  # None: not taken
    taken_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _as_it_was_taken(cls, data: Any) -> Any:
        """A snapshot taken before the packs counted calls in the law's units (0.2: rolling
        windows, every dial counted) keeps deciding that way: the loan's history was made
        so. `migrate_rules` moves it onto the law's units, recorded."""
        if isinstance(data, dict) and isinstance(data.get("pack"), dict) and \
                LEGACY_MARKER not in data["pack"]:
            data = {**data, "pack": {**data["pack"], **LEGACY_CALL_COUNTING}}
        return data

    def covers(self, year: int) -> bool:
        return self.holiday_years is not None and \
            self.holiday_years[0] <= year <= self.holiday_years[1]


class OpenedCase(BaseModel):
    """What `open_loan` answers: whether the case is new, and the rules it runs on."""

    created: bool
    rules: RulesSnapshot


class RulesBasis(BaseModel):
    """What a new snapshot for a running loan is taken from (the `rules` query)."""

    jurisdiction: str
    zone: str
    overrides: dict[str, dict[str, object]]
    current: RulesSnapshot | None


class RulesMigration(BaseModel):
    """Move a running loan to newer rules (a new pack version, corrected holidays)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: RulesSnapshot
    actor: Actor
    reason: Note = Field(min_length=1)


MIGRATORS = (ActorKind.OPS, ActorKind.SUPERVISOR, ActorKind.SYSTEM)


def migration_problem(jurisdiction: str, zone: str,
                      migration: RulesMigration) -> str | None:
    """Why a rules migration must be refused, or None: who may, and whether the snapshot
    fits this loan (its country's pack, the borrower's zone, readable zone rules)."""
    if migration.actor.kind not in MIGRATORS:
        return f"only ops or a supervisor may migrate a loan's rules, not {migration.actor.kind}"
    country = jurisdiction.split("-")[0].upper()
    rules = migration.rules
    if rules.pack.jurisdiction not in (country, "*"):
        return (f"the rule pack is for {rules.pack.jurisdiction}, but the loan is "
                f"collected under {country} rules")
    if rules.zone != zone:
        return f"the snapshot is for time zone {rules.zone}, but the borrower's is {zone}"
    try:
        ZoneInfo.from_file(io.BytesIO(rules.zone_rules), key=rules.zone)
    except ValueError:
        return f"the zone rules for {rules.zone} are not compiled time zone data (TZif)"
    return None
