"""Where a borrower may be, from their phone numbers: the time zones of each number's area
code. Reg F comment 6(b)(1)(i)-1: a collector who knows of phones in several area codes
(or an address in another zone) must find a time convenient in every one of them. Runs at
intake, outside workflows: the numbering plan tables are large."""

from __future__ import annotations

from collections.abc import Iterable

import phonenumbers
from phonenumbers import timezone as number_zones

from duecourse.domain.calendar import TimeZoneError, zone

UNKNOWN = "Etc/Unknown"


def zones_of(numbers: Iterable[str]) -> list[str]:
    """The IANA zones the numbers' area codes lie in (none for numbers without a place:
    unknown or non-geographic ones, such as toll-free numbers)."""
    found: list[str] = []
    for number in numbers:
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_number_geographical(parsed):
            continue  # toll-free, premium, many mobiles: the number says nothing of place
        for name in number_zones.time_zones_for_number(parsed):
            if name != UNKNOWN and name not in found and _known(name):
                found.append(name)
    return found


def other_zones(home: str, numbers: Iterable[str], given: Iterable[str] = ()) -> list[str]:
    """The zones besides `home` the borrower may be in: the platform's, then the phones'."""
    out: list[str] = []
    for name in (*given, *zones_of(numbers)):
        if name != home and name not in out:
            out.append(name)
    return out


def _known(name: str) -> bool:
    try:
        zone(name)
    except TimeZoneError:
        return False
    return True
