"""The worker's business metrics: the `duecourse_` series and where they are emitted.

One way for all of them: the Temporal metric meter (`activity.metric_meter()`), so the
worker has one metrics endpoint (the SDK runtime's Prometheus exporter on
DUECOURSE_METRICS_ADDRESS, see `duecourse.observability.prometheus.metrics_runtime`), the SDK's own
`temporal_*` series sit beside ours, and without a metrics runtime every call is a no-op.
The activity meter adds `namespace`, `task_queue` and `activity_type` to every series.
Workflows emit only what they alone see (`duecourse_attention_raised`/`_cleared`, in
workflows.supervision: the SDK skips workflow metrics during replay).

Each ledger fact is counted once: after its transaction committed, and only for entries
the ledger reports as newly written (`Ledger.record_new_entries`), so a retried activity
whose entries were already recorded counts nothing. Labels are bounded and PII-free:
channels, rule codes, stages, statuses and currencies, never loan or borrower ids.

Series (counters; Prometheus adds no suffix, the names below are what it serves):
- duecourse_messages_total{channel, outcome=sent|blocked|deferred, rule}: a message the
  channel accepted (once: a retry that finds it sent does not count), or a contact the
  compliance engine blocked or put off (`rule` is its code; "none" for sent).
- duecourse_stage_transitions_total{from, to}: `from` is "none" on entry; a closed loan
  goes `to` its outcome (PAID, SETTLED, WRITTEN_OFF, CANCELLED).
- duecourse_payments_total{currency}, duecourse_recovered_minor_units_total{currency}: the
  amount a payment applied to the debt (overpayments excluded) as an integer count of the
  currency's minor units (cents, fen; yen as they are): Temporal counters are integers,
  and minor units keep Decimal amounts exact. Divide by 10^minor units to show them.
- duecourse_promises_total{status=made|kept|broken|withdrawn}.
- duecourse_agreements_total{type=plan|settlement, status}: each plan or settlement once
  when agreed or proposed (its first version) and once per outcome it reaches (any status
  but ACTIVE or PENDING_APPROVAL); later versions of an open one do not count.
- duecourse_alerts_raised_total: ops alerts newly written.
- duecourse_activity_failures_total{error_type}: every failed activity attempt, by the
  activity's type (label added by the meter) and the error's type (cancellations are not
  failures).
The API serves the open totals, read from the ledger and Temporal at each scrape
(duecourse.observability.api_metrics): duecourse_alerts_open and
duecourse_loans_needing_attention.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from duecourse.domain import entries
from duecourse.domain.money import minor_units

MESSAGES = "duecourse_messages_total"
STAGE_TRANSITIONS = "duecourse_stage_transitions_total"
PAYMENTS = "duecourse_payments_total"
RECOVERED = "duecourse_recovered_minor_units_total"
PROMISES = "duecourse_promises_total"
AGREEMENTS = "duecourse_agreements_total"
ALERTS_RAISED = "duecourse_alerts_raised_total"
ACTIVITY_FAILURES = "duecourse_activity_failures_total"
ALERTS_OPEN = "duecourse_alerts_open"
LOANS_NEEDING_ATTENTION = "duecourse_loans_needing_attention"

WORKER_SERIES = (MESSAGES, STAGE_TRANSITIONS, PAYMENTS, RECOVERED, PROMISES, AGREEMENTS,
                 ALERTS_RAISED, ACTIVITY_FAILURES, "duecourse_attention_raised",
                 "duecourse_attention_cleared")
"""Every duecourse_ series the worker serves (the dashboard may use only these, the
API's and SDK_SERIES)."""
SDK_SERIES = ("temporal_workflow_task_schedule_to_start_latency",
              "temporal_activity_execution_latency", "temporal_workflow_completed",
              "temporal_request")
"""The Temporal SDK series the dashboard uses (histograms in ms; tests/test_metrics.py
checks a working worker serves them)."""

_HELP = {
    MESSAGES: "messages sent, and contacts blocked or deferred, by channel and rule",
    STAGE_TRANSITIONS: "loans moving between stages, or closing with an outcome",
    PAYMENTS: "payments recorded",
    RECOVERED: "amounts applied to debts, in the currency's minor units",
    PROMISES: "promises to pay made, kept, broken or withdrawn",
    AGREEMENTS: "repayment plans and settlements agreed and their outcomes",
    ALERTS_RAISED: "ops alerts raised",
    ACTIVITY_FAILURES: "failed activity attempts by activity and error type",
}
_OPEN_AGREEMENT = {"ACTIVE", "PENDING_APPROVAL"}
_PROMISE = {"ACTIVE": "made"}


def _meter() -> MetricMeter:
    """The running activity's meter (a no-op meter when the runtime exports none)."""
    return activity.metric_meter()


def _count(name: str, labels: dict[str, Any], value: int = 1) -> None:
    _meter().create_counter(name, _HELP[name]).add(
        value, {k: str(v) for k, v in labels.items()})


def message_sent(channel: str) -> None:
    """The channel accepted a message this attempt sent."""
    _count(MESSAGES, {"channel": channel, "outcome": "sent", "rule": "none"})


def alert_raised() -> None:
    _count(ALERTS_RAISED, {})


def to_minor_units(amount: Decimal, currency: str) -> int:
    """An exact amount as an integer of the currency's minor units (12.34 USD -> 1234)."""
    return int(amount.scaleb(minor_units(currency)).to_integral_value())


def entries_written(new: Iterable[entries.LedgerEntry]) -> None:
    """Count the facts of entries the ledger just wrote for the first time."""
    for entry in new:
        if isinstance(entry, entries.StageChanged):
            _count(STAGE_TRANSITIONS, {"from": entry.from_stage or "none",
                                       "to": entry.to_stage or entry.outcome or "none"})
        elif isinstance(entry, entries.PaymentRecorded):
            _count(PAYMENTS, {"currency": entry.currency})
            if entry.applied > 0:
                _count(RECOVERED, {"currency": entry.currency},
                       to_minor_units(entry.applied, entry.currency))
        elif isinstance(entry, entries.PromiseRecorded):
            status = str(entry.status)
            _count(PROMISES, {"status": _PROMISE.get(status, status.lower())})
        elif isinstance(entry, entries.AgreementRecorded):
            if entry.version == 1 or entry.status not in _OPEN_AGREEMENT:
                _count(AGREEMENTS, {"type": entry.agreement_type, "status": entry.status})
        elif isinstance(entry, entries.ComplianceDecided) and entry.verdict in (
                "blocked", "deferred"):
            _count(MESSAGES, {"channel": entry.channel, "outcome": entry.verdict,
                              "rule": entry.code or "none"})


class ActivityFailureMetrics(Interceptor):
    """Worker interceptor counting failed activity attempts (duecourse_activity_failures)."""

    def intercept_activity(self, next: ActivityInboundInterceptor,
                           ) -> ActivityInboundInterceptor:
        return _FailureCounter(next)


class _FailureCounter(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except Exception as err:  # CancelledError is a BaseException: not a failure
            kind = err.type if isinstance(err, ApplicationError) and err.type else \
                type(err).__name__
            _count(ACTIVITY_FAILURES, {"error_type": kind})
            raise
