"""The floor: a trivial workflow of a loan's shape, the yardstick the engine is measured by.

It does exactly what benchmarks/cost_shape.py counts and nothing else - a one-row SQLite
write per business step, a timer per wait, a payment signal, an `agree` update per
command, an upsert per stage - so whatever the engine spends beyond it is the engine's
own overhead, on the same server and worker process.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from benchmarks.cost_shape import Shape
    from duecourse import search_attributes as sa

FLOOR_WORKFLOW = "FloorLoan"
FLOOR_ROW = "floor_row"
ROW_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=FLOOR_WORKFLOW)
class FloorLoanWorkflow:
    def __init__(self) -> None:
        self._payments = 0
        self._commands = 0

    @workflow.run
    async def run(self, shape: Shape) -> int:
        timers = shape.timers

        async def wait() -> None:
            nonlocal timers
            if timers:
                timers -= 1
                await workflow.sleep(timedelta(seconds=shape.timer_seconds))

        await self._row("open")
        for n in range(shape.contacts):
            await wait()
            await self._row(f"contact-{n}")
        for n in range(shape.steps):
            await wait()
            await self._row(f"step-{n}")
        while timers:  # the deadlines left
            await wait()
        for n in range(shape.commands):
            await workflow.wait_condition(lambda n=n: self._commands > n)
            await self._row(f"command-{n}")
        for n in range(shape.payments):
            if n == 0 and shape.park:
                try:
                    await workflow.wait_condition(lambda: self._payments > 0,
                                                  timeout=timedelta(seconds=shape.park))
                except TimeoutError:
                    await workflow.wait_condition(lambda: self._payments > 0)
            else:
                await workflow.wait_condition(lambda n=n: self._payments > n)
            await self._row(f"payment-{n}")
        for n in range(shape.upserts):
            workflow.upsert_search_attributes([sa.COLLECTION_STAGE.value_set(f"S{n}")])
        return shape.activities

    async def _row(self, step: str) -> None:
        await workflow.execute_activity(FLOOR_ROW, f"{workflow.info().workflow_id}:{step}",
                                        start_to_close_timeout=ROW_TIMEOUT)

    @workflow.signal
    def pay(self) -> None:
        self._payments += 1

    @workflow.update
    def agree(self) -> int:
        self._commands += 1
        return self._commands
