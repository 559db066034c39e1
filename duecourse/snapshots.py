"""Taking a loan's rules snapshot (see duecourse.domain.rules): reads the installed tz
database and `holidays` package, so it runs in activities and the CLI, never in
workflows."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from duecourse.domain.compliance.engine import public_holidays
from duecourse.domain.compliance.packs import pack_for
from duecourse.domain.rules import HOLIDAY_YEARS, RulesSnapshot


def zone_rules(name: str) -> bytes:
    """The compiled (TZif) rules of zone `name`, found where `zoneinfo` looks: the system
    tz database first, then the `tzdata` package."""
    for root in zoneinfo.TZPATH:
        candidate = Path(root) / name
        if candidate.is_file():
            return candidate.read_bytes()
    try:
        return resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError) as err:
        raise ValueError(f"no compiled rules for time zone {name!r}") from err


def take_snapshot(jurisdiction: str, zone: str, overrides: dict[str, dict[str, Any]],
                  now: datetime) -> RulesSnapshot:
    """The rules a loan in `jurisdiction` with a borrower in `zone` runs on from `now`."""
    pack = pack_for(jurisdiction, overrides)
    first = now.year
    years = (first, first + HOLIDAY_YEARS - 1) if pack.no_contact_on_public_holidays else None
    holidays = sorted(d for year in range(first, first + HOLIDAY_YEARS)
                      for d in public_holidays(jurisdiction, year)) if years else []
    country = jurisdiction.split("-")[0]
    business_years = (first, first + HOLIDAY_YEARS - 1) if pack.validation_period else None
    business = sorted(d for year in range(first, first + HOLIDAY_YEARS)
                      for d in public_holidays(country, year)) if business_years else []
    return RulesSnapshot(pack=pack, zone=zone, zone_rules=zone_rules(zone),
                         holidays=holidays, holiday_years=years, taken_at=now,
                         business_holidays=business, business_holiday_years=business_years)
