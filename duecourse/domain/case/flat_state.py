"""Loading a collection state saved before it was split into parts.

Up to 0.3 `CollectionState` kept every fact at top level; loans still running on 0.3
continue-as-new with that shape, and the saved histories replay with it. This moves those
keys into their parts (dropping the `legal_` prefix inside the legal part) so the flat
shape validates as the nested one."""

from __future__ import annotations

from typing import Any

FLAT_KEYS: dict[str, dict[str, str]] = {
    "contacting": {key: key for key in (
        "steps", "first_contact_at", "standing", "contacts", "deferrals",
        "forbearance_pending", "decision_counts", "late_skips")},
    "agreements": {key: key for key in (
        "promises", "plans", "plan_reminders", "settlements", "refusals")},
    "legal": {"legal_phase": "phase", "legal_phase_at": "phase_at",
              "approval_escalations": "approval_escalations", "legal_barred": "barred",
              "legal_not_before": "not_before", "legal_demand_requested": "demand_requested",
              "legal_cases": "cases"},
    "work": {key: key for key in ("assigned_agent", "tasks")},
}


def nest_flat_state(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with each flat key moved into its part; a nested state comes back as is."""
    if not any(old in data for keys in FLAT_KEYS.values() for old in keys):
        return data
    nested = dict(data)
    for part, keys in FLAT_KEYS.items():
        moved = {new: nested.pop(old) for old, new in keys.items() if old in nested}
        if moved:
            nested[part] = {**moved, **dict(nested.get(part) or {})}
    return nested
