"""`await_workflow`: wait for a workflow this loan did not start itself to end.

A child that already existed when the loan (re)started it - after an ops reset, the old
run had started it - reports its end to that old run. The loan watches such an adopted
child through this activity instead: it long-polls the child's result, heartbeating, for
as long as the child runs.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import WorkflowFailureError

from duecourse.activities.heartbeat import heartbeating
from duecourse.temporal.contracts import AWAIT_WORKFLOW, WorkflowEnding
from duecourse.temporal.failures import failure_text


@activity.defn(name=AWAIT_WORKFLOW)
async def await_workflow(workflow_id: str) -> WorkflowEnding:
    handle = activity.client().get_workflow_handle(workflow_id)
    async with heartbeating(every=10.0):
        try:
            await handle.result(follow_runs=False)
        except WorkflowFailureError as err:
            return WorkflowEnding(completed=False, why=failure_text(err))
    return WorkflowEnding(completed=True)
