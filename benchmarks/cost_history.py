"""Billable actions, history events and history writes of one loan, read from Temporal.

A loan's cost is whatever its histories say, whichever way the engine is built: every run
(continue-as-new included) of its workflow and of every child it started, counted by the
kinds Temporal Cloud bills (docs.temporal.io/cloud/actions):

- start: WorkflowExecutionStarted of the loan's first run (the hand-over);
- continue-as-new: WorkflowExecutionStarted of each later run;
- children: WorkflowExecutionStarted of each child run (Cloud bills the child's start;
  the parent's StartChildWorkflowExecutionInitiated is the same action, not counted twice);
- timers: TimerStarted (fired or cancelled, each is billed once started);
- activities: ActivityTaskScheduled, plus every retry (the last ActivityTaskStarted
  carries the attempt number: attempt - 1 retries);
- signals: WorkflowExecutionSignaled in any of the loan's workflows (a client's signal and
  one sent by another workflow alike; the sender's SignalExternalWorkflowExecutionInitiated
  is that same action);
- updates: WorkflowExecutionUpdateAccepted (a refused update leaves no event: not counted);
- upserts: UpsertWorkflowSearchAttributes and WorkflowPropertiesModified (memo);
- local activities: MarkerRecorded (Cloud bills one per workflow task that ran some; one
  marker per local activity is an upper bound).

Not in a history, so not counted: queries (the benchmark's drivers poll `status`, a real
platform need not), activity heartbeats, and refused updates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

KINDS = ("start", "continue-as-new", "children", "timers", "activities", "retries",
         "signals", "updates", "upserts", "local activities")
"""The billable kinds, in the order tables print them."""

_ACTION_OF: dict[int, str] = {
    EventType.EVENT_TYPE_TIMER_STARTED: "timers",
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activities",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signals",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "updates",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "upserts",
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED: "upserts",
    EventType.EVENT_TYPE_MARKER_RECORDED: "local activities",
}

_WRITES = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
    EventType.EVENT_TYPE_TIMER_FIRED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
}
"""Events that begin a history-database transaction (an estimate of its writes): a
workflow task's start and completion (the completion carries every command's events with
it), an activity's start and result, a fired timer, an arriving signal or update, a
child's or external workflow's answer. Events a command creates in the same transaction
(ActivityTaskScheduled, TimerStarted, upserts, the next WorkflowTaskScheduled ...) are
not counted again."""


@dataclass
class LoanCost:
    """What one loan (its workflow, every run and every child) cost in Temporal."""

    events: int = 0
    parent_events: int = 0
    writes: int = 0
    workflows: int = 0
    actions: Counter[str] = field(default_factory=Counter)

    @property
    def billable(self) -> int:
        return sum(self.actions.values())

    def add(self, other: LoanCost) -> None:
        self.events += other.events
        self.parent_events += other.parent_events
        self.writes += other.writes
        self.workflows += other.workflows
        self.actions.update(other.actions)

    def as_json(self) -> dict[str, Any]:
        return {"events": self.events, "parent_events": self.parent_events,
                "writes": self.writes, "workflows": self.workflows,
                "billable": self.billable, "actions": {k: self.actions[k] for k in KINDS}}


def count_run(events: list[HistoryEvent], *, first: bool, child: bool) -> tuple[
        Counter[str], list[tuple[str, str]]]:
    """The billable actions of one run's history and the children it started (workflow
    and first run id; one that failed to start is not theirs to count).
    `first`: the workflow's first run (later ones were continued as new); `child`: a
    child of the loan's workflow."""
    actions: Counter[str] = Counter()
    children: list[tuple[str, str]] = []
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            actions["children" if child and first else
                    "start" if first else "continue-as-new"] += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            actions["retries"] += max(0, event.activity_task_started_event_attributes.attempt
                                      - 1)
        elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            execution = event.child_workflow_execution_started_event_attributes \
                .workflow_execution
            children.append((execution.workflow_id, execution.run_id))
        elif kind in _ACTION_OF:
            actions[_ACTION_OF[kind]] += 1
    return actions, children


def count_writes(events: list[HistoryEvent]) -> int:
    return sum(1 for e in events if e.event_type in _WRITES)


async def run_histories(client: Client, workflow_id: str, first_run_id: str = ""
                        ) -> list[list[HistoryEvent]]:
    """Every run of `workflow_id` from `first_run_id` (default: its first), first run
    first: the latest run, then back along each run's `continued_execution_run_id` (works
    on any server, no visibility needed)."""
    runs: list[list[HistoryEvent]] = []
    run_id: str | None = None
    while True:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        events = [e async for e in handle.fetch_history_events()]
        runs.append(events)
        if first_run_id and run_id == first_run_id:
            break
        started = events[0].workflow_execution_started_event_attributes if events else None
        previous = started.continued_execution_run_id if started else ""
        if not previous:
            break
        run_id = previous
    return runs[::-1]


async def workflow_cost(client: Client, workflow_id: str, first_run_id: str = "", *,
                        child: bool = False) -> LoanCost:
    """The cost of one workflow, all its runs and (recursively) all its children."""
    cost = LoanCost()
    for n, events in enumerate(await run_histories(client, workflow_id, first_run_id)):
        actions, children = count_run(events, first=n == 0, child=child)
        cost.actions.update(actions)
        cost.events += len(events)
        cost.parent_events += 0 if child else len(events)
        cost.writes += count_writes(events)
        cost.workflows += 1 if n == 0 else 0
        for child_id, child_run in children:
            cost.add(await workflow_cost(client, child_id, child_run, child=True))
    return cost
