"""One rule of a pack, in the form both `decide` and `violations` use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from duecourse.domain.compliance.context import Context
from duecourse.domain.compliance.model import ProposedContact

Earliest = Callable[[ProposedContact, Context, datetime], datetime | None]
"""The earliest instant >= t at which the rule allows the contact, or None if it never
will while the facts stay as they are. The rule allows t exactly when it returns t."""


@dataclass(frozen=True)
class Rule:
    code: str
    earliest: Earliest
    detail: str | Callable[[ProposedContact, Context, datetime], str]

    def describe(self, p: ProposedContact, ctx: Context, t: datetime) -> str:
        return self.detail if isinstance(self.detail, str) else self.detail(p, ctx, t)

    def allows(self, p: ProposedContact, ctx: Context, t: datetime) -> bool:
        return self.earliest(p, ctx, t) == t


def never_unless(ok: Callable[[ProposedContact, Context, datetime], bool]) -> Earliest:
    """A rule that waiting cannot satisfy: allowed at t when `ok`, else never."""
    def earliest(p: ProposedContact, ctx: Context, t: datetime) -> datetime | None:
        return t if ok(p, ctx, t) else None
    return earliest
