"""One loan down one named path, then its floor: a trivial workflow of the path's minimum
shape, on the same server and worker process - each costed from its histories."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from temporalio.client import Client

from benchmarks.cost_floor import FloorClient
from benchmarks.cost_history import LoanCost, workflow_cost
from benchmarks.cost_paths import Facts, Path, office_hours_loan
from benchmarks.cost_shape import Shape
from duecourse.demo.script import Driver, StoryOver
from duecourse.domain.policy import Policy
from duecourse.store import Ledger
from duecourse.temporal.client import CollectionClient

LIFE_LIMIT = 20 * 60.0
"""Seconds a path's loan may take to close: the demo writes off nine minutes after the
hand-over, a loaded machine needs some more."""


@dataclass
class PathRun:
    path: Path
    facts: Facts
    cost: LoanCost
    shape: Shape
    floor: LoanCost
    seconds: float


async def run_path(collection: CollectionClient, ledger: Ledger, floor: FloorClient,
                   policy: Policy, path: Path, tag: str, poll: float = 1.0) -> PathRun:
    """Hand a loan over, drive it down `path` until it closes, then run its floor."""
    loan = office_hours_loan(f"COST-{path.name}-{tag}")
    began = time.monotonic()
    await collection.start(loan, policy)
    driver = Driver(collection, loan.loan_id, loan.borrower.timezone, poll=poll)
    with contextlib.suppress(StoryOver):  # closed before its next step: the facts say how
        await path.drive(driver)
    with contextlib.suppress(TimeoutError):  # still open: costed as it stands, flagged
        await asyncio.wait_for(collection.result(loan.loan_id), LIFE_LIMIT)
    seconds = time.monotonic() - began
    facts = await Facts.of(ledger, loan.loan_id)
    shape = path.minimum(facts)
    floor_id = f"floor-{path.name}-{tag}"
    await floor.run(floor_id, shape)
    return PathRun(path, facts, await workflow_cost(collection.client, loan.workflow_id),
                   shape, await workflow_cost(floor.client, floor_id), seconds)


async def total_cost(client: Client, workflow_ids: list[str]) -> LoanCost:
    """The summed cost of these workflows (divide by their number for a per-loan mean)."""
    total = LoanCost()
    for workflow_id in workflow_ids:
        total.add(await workflow_cost(client, workflow_id))
    return total
