"""The custom search attributes ops use to find loans in the Temporal UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

COLLECTION_STAGE = SearchAttributeKey.for_keyword("CollectionStage")
DAYS_PAST_DUE = SearchAttributeKey.for_int("DaysPastDue")
OUTSTANDING_AMOUNT = SearchAttributeKey.for_float("OutstandingAmount")
JURISDICTION = SearchAttributeKey.for_keyword("Jurisdiction")
COLLECTION_OUTCOME = SearchAttributeKey.for_keyword("CollectionOutcome")
DUE_DATE = SearchAttributeKey.for_datetime("DueDate")
SEGMENT = SearchAttributeKey.for_keyword("Segment")
ASSIGNED_AGENT = SearchAttributeKey.for_keyword("AssignedAgent")
PLATFORM = SearchAttributeKey.for_keyword("Platform")
"""The platform key that handed the loan over through the API; set once, at the start."""
STRATEGY = SearchAttributeKey.for_keyword("Strategy")
"""The experiment arm the loan was assigned to at hand-over (duecourse.lab.experiments);
set once, at the start, like Platform."""
NEEDS_ATTENTION = SearchAttributeKey.for_bool("NeedsAttention")
"""True while the loan cannot go on by itself (its ledger writes keep failing)."""

ALL = (COLLECTION_STAGE, DAYS_PAST_DUE, OUTSTANDING_AMOUNT, JURISDICTION, COLLECTION_OUTCOME,
       DUE_DATE, SEGMENT, ASSIGNED_AGENT, PLATFORM, NEEDS_ATTENTION, STRATEGY)
