"""Deliberately changed LoanCollection workflows, to prove the replay guard bites.

A module of its own so the sandbox imports only workflow code when it loads them.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from duecourse.temporal.contracts import CollectionInput, CollectionResult

from duecourse.workflows.collection import LoanCollectionWorkflow

EXTRA_TIMER_PATCH = "histories-extra-timer"


@workflow.defn(name="LoanCollection")
class ExtraTimerCollection(LoanCollectionWorkflow):
    """One extra command (a timer) before the real run: a breaking change, since every
    running loan's history expects the run's first command to be something else."""

    @workflow.run
    async def run(self, inp: CollectionInput) -> CollectionResult:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(inp)


@workflow.defn(name="LoanCollection")
class PatchedExtraTimerCollection(LoanCollectionWorkflow):
    """The same change behind `workflow.patched`: histories without the patch marker
    replay without the timer, new runs get it - the safe way to make such a change."""

    @workflow.run
    async def run(self, inp: CollectionInput) -> CollectionResult:
        if workflow.patched(EXTRA_TIMER_PATCH):
            await workflow.sleep(timedelta(seconds=1))
        return await super().run(inp)
