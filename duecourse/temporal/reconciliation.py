"""The daily payment reconciliation's contracts: what the PaymentReconciliation workflow
(duecourse.workflows.reconciliation) is started with, what it asks its one activity
(duecourse.activities.reconciliation) and what that answers. Light on purpose: the
workflow imports it inside the sandbox."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

RECONCILIATION_WORKFLOW = "PaymentReconciliation"
RECONCILE_PAYMENTS = "reconcile_payments"
RECONCILIATION_SCHEDULE = "payments-reconciliation"
"""The Temporal Schedule that starts the workflow daily (duecourse.payments.schedule); each
run's workflow id is this id and its scheduled time."""


class ReconciliationRequest(BaseModel):
    """Input of the workflow: a day for a manual run, none for the scheduled one."""

    day: date | None = Field(default=None, description="the UTC day to reconcile; default "
                                                       "the day before the run's start")


class ReconcileDay(BaseModel):
    """Input of the activity: always a day."""

    day: date


class ReconciliationSummary(BaseModel):
    """What a run found: counts only, no references (they are in the ops alerts)."""

    provider: str
    day: date
    provider_paid: int
    ledger_paid: int
    unknown_to_ledger: int
    unknown_to_provider: int
    alerts_raised: int = Field(default=0, description="ops alerts new in this run (a day "
                                                      "reconciled again raises none twice)")
    untied: int = Field(default=0, description="differences about a payment no loan of ours "
                                               "can be tied to: logged and counted, no alert")
