"""Compliance by construction: may this contact happen now, and if not, when?

`decide()` answers Allowed, Deferred(until the earliest lawful time) or Blocked(reason,
rule) for a proposed contact; `violations()` checks one concrete contact and is what the
independent audit uses. Rule packs (CN, US, GB, default) are data with every parameter
overridable per policy. Pure: no Temporal, no I/O, no clock.
"""

from duecourse.domain.compliance.engine import decide, legal_action_problem, violations
from duecourse.domain.compliance.model import (
    AttemptResult,
    ContactEvent,
    Decision,
    Hold,
    HoldKind,
    InconvenientTime,
    ProposedContact,
    Purpose,
    RecipientKind,
    Standing,
    Verdict,
    Violation,
)
from duecourse.domain.compliance.packs import RulePack, pack_for

__all__ = [
    "AttemptResult", "ContactEvent", "Decision", "Hold", "HoldKind", "InconvenientTime",
    "ProposedContact", "Purpose", "RecipientKind", "RulePack", "Standing", "Verdict",
    "Violation", "decide", "legal_action_problem", "pack_for", "violations",
]
