"""`reconcile_payments`: the daily reconciliation (duecourse.payments.reconcile) for one UTC
day, with one ops alert per difference.

An alert is keyed by provider, day, side and reference, so a retried attempt or a day
reconciled again raises each once. Ops alerts belong to a loan: a difference is tied to the
loan whose checkout it is (or that received it); one about a payment no loan of ours can be
tied to (a payment not made through our checkouts) is counted in the summary and logged,
never filed under an invented loan. The provider is resolved at each attempt, so a setting
fixed while a run waits is used by its next attempt.
"""

from __future__ import annotations

from typing import Literal

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duecourse.activities.clock import activity_clock
from duecourse.activities.errors import ledger_errors
from duecourse.domain.loan import workflow_id_for
from duecourse.observability import business_metrics
from duecourse.payments.base import ProviderError
from duecourse.payments.providers import PaymentSettingsError, provider_from_settings
from duecourse.payments.reconcile import Difference, owners, reconcile
from duecourse.settings import Settings
from duecourse.store.ledger import Ledger
from duecourse.temporal.contracts import OpsAlert
from duecourse.temporal.reconciliation import (
    RECONCILE_PAYMENTS,
    ReconcileDay,
    ReconciliationSummary,
)

log = structlog.get_logger(__name__)

Side = Literal["unknown-to-ledger", "unknown-to-provider"]

WHAT_TO_DO: dict[Side, tuple[str, str]] = {
    "unknown-to-ledger": (
        "paid at the provider, unknown to the ledger",
        "Have the provider send its webhook for it again (its reference keeps it to one "
        "payment), or apply it to the loan by hand."),
    "unknown-to-provider": (
        "in the ledger, not paid at the provider",
        "The loan counts money the provider does not show as taken: check the payment at "
        "the provider and correct the loan's balance if it was never received."),
}


class ReconciliationActivities:
    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self._ledger = ledger
        self._settings = settings

    @activity.defn(name=RECONCILE_PAYMENTS)
    async def reconcile_payments(self, req: ReconcileDay) -> ReconciliationSummary:
        try:
            provider = provider_from_settings(self._settings)
        except PaymentSettingsError as err:
            raise ApplicationError(f"The payment reconciliation for {req.day} cannot run: "
                                   f"{err}.", type="PaymentSettingsError",
                                   non_retryable=True) from None
        if provider is None:
            raise ApplicationError(
                f"The payment reconciliation for {req.day} cannot run: no payment provider "
                "is configured (DUECOURSE_PAYMENT_PROVIDER is none).",
                type="PaymentSettingsError", non_retryable=True)
        try:
            with ledger_errors("reading the payments to reconcile"):
                report = await reconcile(provider, self._ledger.engine, req.day)
        except ProviderError as err:  # retried by the workflow's policy, with back-off
            raise ApplicationError(f"{provider.name} could not be asked for its payments of "
                                   f"{req.day}: {err}", type="ProviderError") from None
        sides: list[tuple[Side, list[Difference]]] = [
            ("unknown-to-ledger", report.unknown_to_ledger),
            ("unknown-to-provider", report.unknown_to_provider)]
        with ledger_errors("recording the reconciliation's alerts"):
            raised, untied = await self._alert(provider.name, req, sides)
        return ReconciliationSummary(
            provider=provider.name, day=req.day, provider_paid=report.provider_paid,
            ledger_paid=report.ledger_paid, unknown_to_ledger=len(report.unknown_to_ledger),
            unknown_to_provider=len(report.unknown_to_provider), alerts_raised=raised,
            untied=untied)

    async def _alert(self, provider: str, req: ReconcileDay,
                     sides: list[tuple[Side, list[Difference]]]) -> tuple[int, int]:
        """Raise the alerts not raised yet; (how many were new, how many tied to no loan)."""
        tied = await owners(self._ledger.engine, sorted({d.reference for _, rows in sides
                                                         for d in rows}))
        now = activity_clock()
        raised = untied = 0
        for side, rows in sides:
            what, todo = WHAT_TO_DO[side]
            for d in rows:
                owner = tied.get(d.reference)
                if owner is None:
                    untied += 1
                    continue
                case_id, loan_id = owner
                created = await self._ledger.record_alert(OpsAlert(
                    idempotency_key=f"{case_id}:payment-reconciliation:{provider}:"
                                    f"{req.day.isoformat()}:{side}:{d.reference}",
                    case_id=case_id, loan_id=loan_id, workflow_id=workflow_id_for(loan_id),
                    raised_at=now(),
                    subject=f"[{loan_id}] payment {d.reference} {what} ({provider}, "
                            f"reconciliation of {req.day.isoformat()})",
                    body=f"The reconciliation of {req.day.isoformat()} found payment "
                         f"{d.reference} of {d.amount.amount} {d.amount.currency}: {d.why}. "
                         f"{todo}"))
                if created:
                    raised += 1
                    business_metrics.alert_raised()
        if untied:
            log.warning("reconciliation differences tied to no loan", provider=provider,
                        day=req.day.isoformat(), count=untied)
        log.info("payments reconciled", provider=provider, day=req.day.isoformat(),
                 differences=sum(len(rows) for _, rows in sides), alerts_raised=raised)
        return raised, untied
