"""A repayment plan's schedule: what falls due next, lateness, allocation, frozen days.

Pure functions on a `RepaymentPlan`, shared by the `RepaymentPlan` child workflow and the
simulator's plan (`duecourse.lab.sim_plan`), so both judge a plan the same way.
Deterministic: the caller passes the time.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Literal

from duecourse.domain.agreements.terms import (
    Instalment,
    InstalmentStatus,
    PlanStatus,
    RepaymentPlan,
)
from duecourse.domain.calendar import wall_clock

REMINDER_TIME = time(10, 0)  # local; the parent's compliance engine may still defer it

EventKind = Literal["reminder", "late"]


def next_event(plan: RepaymentPlan, reminded: set[int], grace_days: int,
               reminder_days_before: int,
               tz: str) -> tuple[datetime, EventKind, Instalment] | None:
    """The next reminder or lateness check, for the earliest instalment still due; None
    when no instalment is due any more."""
    due = next((i for i in plan.instalments if i.status is InstalmentStatus.DUE), None)
    if due is None:
        return None
    late_at = wall_clock(due.due_date + timedelta(days=grace_days + 1), timedelta(0), tz)
    remind_at = wall_clock(due.due_date - timedelta(days=reminder_days_before),
                           REMINDER_TIME, tz)
    if due.number not in reminded and remind_at < late_at:
        return remind_at, "reminder", due
    return late_at, "late", due


def end_status(unpaid_at_end: Literal["broken", "lapsed"]) -> PlanStatus:
    """How a plan whose schedule ended with instalments unpaid is judged."""
    return PlanStatus.BROKEN if unpaid_at_end == "broken" else PlanStatus.LAPSED


def mark_late(plan: RepaymentPlan, instalment: Instalment, tolerated_late: int) -> bool:
    """Instalment not paid by its date plus grace; True when that breaks the plan."""
    instalment.status = InstalmentStatus.LATE
    plan.late += 1
    broken = plan.late > tolerated_late
    if broken:
        plan.status = PlanStatus.BROKEN
    return broken


def reschedule(plan: RepaymentPlan, days: int, reminded: set[int]) -> None:
    """Move every unpaid instalment later by `days` frozen days; remind them again."""
    for instalment in plan.instalments:
        if instalment.status is InstalmentStatus.DUE:
            instalment.due_date += timedelta(days=days)
            reminded.discard(instalment.number)
    plan.paused_days += days


def allocate(plan: RepaymentPlan, amount: Decimal) -> None:
    """Apply a payment to the oldest unpaid instalments."""
    left = amount
    for instalment in plan.instalments:
        if left <= 0:
            break
        if instalment.remaining <= 0:
            continue
        part = min(left, instalment.remaining)
        instalment.paid += part
        left -= part
        if instalment.remaining <= 0:
            instalment.status = InstalmentStatus.PAID


def completes(plan: RepaymentPlan) -> bool:
    """Every instalment paid: the plan is completed (its status set)."""
    if all(i.status is InstalmentStatus.PAID for i in plan.instalments):
        plan.status = PlanStatus.COMPLETED
        return True
    return False


def frozen_days(since: datetime, now: datetime) -> int:
    """Frozen time given back, in whole days, rounded, and at least one day."""
    return max(1, round((now - since) / timedelta(days=1)))
