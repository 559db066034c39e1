"""What the loan shows outside its history: search attributes and the UI's details.

Each is written only when its value changed - an upsert is a command and an event - and
`DaysPastDue` only at transitions (a stage change, the close): between them `DueDate`
answers "how overdue now". No borrower PII: anyone with access to the cluster sees them.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributePair

with workflow.unsafe.imports_passed_through():
    from duecourse import search_attributes as sa
    from duecourse.domain.calendar import local_midnight
    from duecourse.domain.case.aggregate import Collection


class Visibility:
    def __init__(self) -> None:
        self._upserted: dict[str, object] = {}
        self._transition: tuple[int, object] | None = None
        self._details = ""

    def publish(self, c: Collection) -> None:
        """Upsert the search attributes whose values changed since the last upsert."""
        s = c.state
        values: list[SearchAttributePair] = [
            SearchAttributePair(sa.COLLECTION_STAGE, s.stage.value),
            SearchAttributePair(sa.OUTSTANDING_AMOUNT, float(s.outstanding)),
            SearchAttributePair(sa.JURISDICTION, c.loan.jurisdiction),
            SearchAttributePair(sa.DUE_DATE, local_midnight(c.loan.due_date, c.tz)),
            SearchAttributePair(sa.NEEDS_ATTENTION, bool(s.attention)),
        ]
        if (s.visit.visit, s.outcome) != self._transition:
            self._transition = (s.visit.visit, s.outcome)
            values.append(SearchAttributePair(sa.DAYS_PAST_DUE,
                                              c.dpd(s.closed_at or workflow.now())))
        if s.outcome is not None:
            values.append(SearchAttributePair(sa.COLLECTION_OUTCOME, s.outcome.value))
        if s.segment is not None:
            values.append(SearchAttributePair(sa.SEGMENT, s.segment.value))
        if s.work.assigned_agent is not None:
            values.append(SearchAttributePair(sa.ASSIGNED_AGENT, s.work.assigned_agent))
        changed = [p for p in values if self._upserted.get(p.key.name) != p.value]
        if changed:
            workflow.upsert_search_attributes([p.key.value_set(p.value) for p in changed])
            self._upserted.update({p.key.name: p.value for p in changed})

    def show(self, details: str) -> None:
        """The Temporal UI's current details, set when they changed."""
        if details != self._details:
            self._details = details
            workflow.set_current_details(details)
