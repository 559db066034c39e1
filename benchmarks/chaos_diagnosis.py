"""Why a chaos check failed (`benchmarks/chaos_checks.py`), told from Temporal itself.

The checks count from the ledger; when contacts went out after a stop or required steps
were skipped, these read the offending loans' workflow histories: when each send was
scheduled, how many attempts it took, which faults it lived through, and what a workflow
had done before it skipped a step.

Called by `chaos_checks.run_checks` (the check types are imported only for annotations,
so the two modules do not import each other at run time).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.service import RPCError

from duecourse.temporal.client import CollectionClient
from duecourse.temporal.contracts import SEND_MESSAGE

if TYPE_CHECKING:
    from chaos_checks import CheckResult, Context, LateContact, Skip


@dataclass
class SendTrace:
    scheduled: datetime
    attempt: int | None
    started: datetime | None
    closed: datetime | None
    outcome: str


async def send_traces(cc: CollectionClient, loan_id: str) -> dict[str, SendTrace]:
    """send_message activities of the loan's current run, by idempotency key."""
    try:
        history = await asyncio.wait_for(cc.handle(loan_id).fetch_history(), 30)
    except (RPCError, TimeoutError):
        return {}
    scheduled: dict[int, tuple[str, datetime]] = {}
    traces: dict[str, SendTrace] = {}
    by_event: dict[int, SendTrace] = {}
    for event in history.events:
        when = event.event_time.ToDatetime().replace(tzinfo=UTC)
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == SEND_MESSAGE and attrs.input.payloads:
                key = _payload_key(await _opened(cc, attrs.input.payloads[0]))
                if key:
                    scheduled[event.event_id] = (key, when)
                    trace = SendTrace(when, None, None, None, "pending")
                    traces.setdefault(key, trace)
                    by_event[event.event_id] = trace
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if (trace := by_event.get(started.scheduled_event_id)) is not None:
                trace.attempt, trace.started = started.attempt, when
        else:
            closing = _closing(event)
            if closing and (trace := by_event.get(closing[0])) is not None:
                trace.closed, trace.outcome = when, closing[1]
    return traces


async def _opened(cc: CollectionClient, payload: Payload) -> bytes:
    """The payload's plain JSON: histories hold it sealed by the client's codec."""
    codec = cc.client.data_converter.payload_codec
    return (await codec.decode([payload]))[0].data if codec is not None else payload.data


def _payload_key(data: bytes) -> str | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value.get("idempotency_key") if isinstance(value, dict) else None


def _closing(event: HistoryEvent) -> tuple[int, str] | None:
    for name, outcome in (("activity_task_completed_event_attributes", "completed"),
                          ("activity_task_failed_event_attributes", "failed"),
                          ("activity_task_timed_out_event_attributes", "timed out")):
        if event.HasField(name):
            return getattr(event, name).scheduled_event_id, outcome
    return None



async def diagnose_late(ctx: Context, cc: CollectionClient, late: list[LateContact],
                        result: CheckResult) -> None:
    """Tell in-flight sends (scheduled before the stop, finished after it) from sends the
    workflow decided on after the stop, using each loan's Temporal history."""
    if not late:
        return
    traces: dict[str, dict[str, SendTrace]] = {}
    in_flight = decided_after = unknown = 0
    shown: list[str] = []
    for item in late:
        d = item.delivery
        loan_id = d.loan_id
        if loan_id not in traces:
            traces[loan_id] = await send_traces(cc, loan_id)
        trace = traces[loan_id].get(d.key)
        if trace is None:
            unknown += 1
            continue
        if trace.scheduled <= item.stop.start:
            in_flight += 1
            kind = "scheduled before the stop"
        else:
            decided_after += 1
            kind = "scheduled AFTER the stop"
        if len(shown) < 4:
            shown.append(
                f"{loan_id} {d.step}: send_message {kind} "
                f"({ctx.at(trace.scheduled)} vs {ctx.at(item.stop.start)}), attempt "
                f"{trace.attempt or '?'} started {ctx.at(trace.started)}, {trace.outcome} "
                f"{ctx.at(trace.closed)}; faults while in flight: "
                + (", ".join(ctx.faults_between(trace.scheduled, trace.closed or d.at))
                   or "none"))
    result.diagnosis.append(
        f"{in_flight} of {len(late)} were sends already scheduled when the stop was "
        f"recorded and delivered after it (nothing stopped the send in flight, retrying "
        f"or slow, once the stop arrived); {decided_after} were scheduled after the stop "
        f"(the workflow itself decided to contact)"
        + (f"; {unknown} not found in the current run's history" if unknown else ""))
    result.diagnosis += shown



async def diagnose_skips(ctx: Context, cc: CollectionClient, skips: list[Skip],
                         result: CheckResult) -> None:
    """What the first skipping loans' workflows did between their start and the skip."""
    for skip in sorted(skips, key=lambda x: (not x.first, -x.late_by))[:3]:
        try:
            history = await asyncio.wait_for(cc.handle(skip.loan_id).fetch_history(), 30)
        except (RPCError, TimeoutError):
            continue
        done: Counter[str] = Counter()
        began: datetime | None = None
        tasks = 0
        for event in history.events:
            when = event.event_time.ToDatetime().replace(tzinfo=UTC)
            began = began or when
            if when >= skip.at:
                break
            if event.HasField("activity_task_scheduled_event_attributes"):
                done[event.activity_task_scheduled_event_attributes.activity_type.name] += 1
            elif event.HasField("start_child_workflow_execution_initiated_event_attributes"):
                attrs = event.start_child_workflow_execution_initiated_event_attributes
                done[f"child {attrs.workflow_type.name}"] += 1
            elif event.HasField("workflow_task_completed_event_attributes"):
                tasks += 1
        if began is not None:
            after = (skip.at - began).total_seconds()
            result.diagnosis.append(
                f"{skip.loan_id} before skipping {skip.step} ({after:.1f} s after its "
                f"workflow started): {tasks} workflow tasks, "
                + ", ".join(f"{k} x{v}" for k, v in sorted(done.items())))

