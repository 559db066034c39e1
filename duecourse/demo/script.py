"""The demo's scripted people: what each demo loan's borrower, agent and supervisor do, so
`duecourse dev --demo` reaches every ending by itself in about ten minutes.

Each story acts only through the client a platform or agent desk uses (payments, promises,
plans, settlements, disputes, holds, legal decisions), so every step goes through the same
validators and compliance rules as a person's would. Stories wait by polling the loan's
`status` query; `sleep` is injectable so a test can run them on virtual time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.agreements.terms import InstalmentSpec, PlanProposal, SettlementOffer
from duecourse.domain.calendar import local_date
from duecourse.domain.case.commands import LegalDecision, PaymentReport, PromiseRequest
from duecourse.domain.case.status import CollectionStatus
from duecourse.domain.compliance import HoldKind
from duecourse.domain.compliance.requests import DisputeChange, HoldRequest
from duecourse.domain.money import Money
from duecourse.temporal.client import CollectionClient, LoanClosed, LoanNotFound

BORROWER = Actor(kind=ActorKind.BORROWER, id="demo-borrower")
AGENT = Actor(kind=ActorKind.AGENT, id="demo-agent")
SUPERVISOR = Actor(kind=ActorKind.SUPERVISOR, id="demo-supervisor")

Sleep = Callable[[float], Awaitable[None]]


async def wall_clock() -> datetime:
    return datetime.now(UTC)


Say = Callable[[str, str], None]
"""(loan id, what the scripted person did) - printed by the watch."""


class StoryOver(Exception):
    """The loan closed (or cannot be asked) before the story's next step."""


@dataclass
class Driver:
    """One loan's scripted people, acting through the client."""

    client: CollectionClient
    loan_id: str
    timezone: str
    sleep: Sleep = asyncio.sleep
    say: Say = lambda _loan, _what: None
    poll: float = 5.0
    clock: Callable[[], Awaitable[datetime]] = wall_clock
    _payments: int = 0

    async def status(self) -> CollectionStatus:
        try:
            return await self.client.status(self.loan_id, as_of=await self.clock())
        except (WorkflowQueryFailedError, RPCError) as err:
            raise StoryOver(str(err)) from err

    async def until(self, ready: Callable[[CollectionStatus], bool]) -> CollectionStatus:
        """The loan's status once `ready` holds; StoryOver if the loan closes first."""
        while True:
            s = await self.status()
            if ready(s):
                return s
            if s.outcome is not None:
                raise StoryOver(f"closed as {s.outcome}")
            await self.sleep(self.poll)

    async def today(self) -> date:
        return local_date(await self.clock(), self.timezone)

    async def pay(self, amount: Money, why: str) -> None:
        self._payments += 1
        await self.client.report_payment(self.loan_id, PaymentReport(
            reference=f"{self.loan_id}-DEMO-{self._payments}", amount=amount,
            paid_at=await self.clock()))
        self.say(self.loan_id, f"borrower paid {amount} ({why})")

    async def pay_rest(self, why: str) -> None:
        s = await self.status()
        if s.outstanding.is_positive:
            await self.pay(s.outstanding, why)

    async def promise(self, amount: Money) -> None:
        accepted = await self.client.promise_to_pay(self.loan_id, PromiseRequest(
            amount=amount, due_date=await self.today(), actor=AGENT,
            note="demo: borrower promised on the phone"))
        self.say(self.loan_id, f"agent recorded a promise of {amount} for "
                               f"{accepted.due_date}")


def _share(money: Money, ratio: str) -> Money:
    return Money.of((money.amount * Decimal(ratio)).quantize(Decimal("0.01"), ROUND_DOWN),
                    money.currency)


def _contacted(n: int) -> Callable[[CollectionStatus], bool]:
    return lambda s: s.contacts_sent >= n


def _awaiting_approval(s: CollectionStatus) -> bool:
    return s.legal_phase == "AWAITING_APPROVAL"


# ------------------------------------------------------------------------------ stories
async def paid_in_reminder(d: Driver) -> None:
    await d.until(_contacted(1))
    await d.pay_rest("after the first reminder")


async def promise_kept(d: Driver) -> None:
    s = await d.until(_contacted(2))
    promised = _share(s.outstanding, "0.5")
    await d.promise(promised)
    await d.sleep(d.poll)
    await d.pay(promised, "the promised amount, on time")
    await d.until(lambda s: s.active_promise is None)
    await d.sleep(30)
    await d.pay_rest("the rest, a little later")


async def promise_broken(d: Driver) -> None:
    s = await d.until(_contacted(1))
    await d.promise(s.outstanding)
    await d.until(lambda s: s.broken_promises >= 1)
    s = await d.status()
    if s.stage == "NEGOTIATION" and s.active_promise is None:
        await d.promise(s.outstanding)
    await d.until(lambda s: s.stage == "LEGAL")
    await _approve_referral(d)


async def plan_completed(d: Driver) -> None:
    s = await d.until(_contacted(3))
    first, second = _share(s.outstanding, "0.34"), _share(s.outstanding, "0.33")
    third = Money.of(s.outstanding.amount - first.amount - second.amount,
                     s.outstanding.currency)
    today = await d.today()
    accepted = await d.client.propose_plan(d.loan_id, PlanProposal(
        instalments=[InstalmentSpec(due_date=today + timedelta(days=7 * i), amount=a)
                     for i, a in enumerate((first, second, third))],
        actor=AGENT, note="demo: three instalments a week apart"))
    d.say(d.loan_id, f"agent agreed plan {accepted.plan_id}: 3 instalments")
    for n, amount in enumerate((first, second, third), start=1):
        await d.sleep(20)
        await d.pay(amount, f"instalment {n} of 3")


async def settlement(d: Driver) -> None:
    s = await d.until(lambda s: s.stage == "NEGOTIATION")
    offer = _share(s.outstanding, "0.85")
    result = await d.client.offer_settlement(d.loan_id, SettlementOffer(
        amount=offer, pay_by=await d.today() + timedelta(days=7), actor=AGENT,
        note="demo: 15% off for payment this week"))
    d.say(d.loan_id, f"agent offered a settlement of {offer}: {result.status.lower()}")
    await d.sleep(20)
    await d.pay(offer, "the settlement amount")


async def dispute_frozen_and_thawed(d: Driver) -> None:
    s = await d.until(_contacted(1))
    await d.client.dispute(d.loan_id, DisputeChange(
        action="opened", actor=AGENT, written=True,
        reason="demo: borrower wrote that the amount is wrong"))
    d.say(d.loan_id, "borrower disputed the debt in writing: collection frozen")
    await d.sleep(60)
    await d.client.dispute(d.loan_id, DisputeChange(
        action="verified", actor=AGENT, reason="demo: statement of account sent"))
    d.say(d.loan_id, "agent verified the debt: collection resumes")
    await d.until(_contacted(s.contacts_sent + 1))
    await d.pay_rest("after the verification")


async def breathing_space(d: Driver) -> None:
    await d.until(_contacted(1))
    await d.client.hold(d.loan_id, HoldRequest(
        action="start", kind=HoldKind.BREATHING_SPACE, reference="DEMO-BS-1",
        actor=AGENT, note="demo: debt adviser registered a breathing space"))
    d.say(d.loan_id, "breathing space registered: collection paused")
    await d.until(lambda s: s.frozen is None)
    d.say(d.loan_id, "breathing space ended")
    await d.sleep(20)
    await d.pay_rest("once the breathing space ended")


async def legal_referral(d: Driver) -> None:
    await _approve_referral(d)


async def _approve_referral(d: Driver) -> None:
    await d.until(_awaiting_approval)
    await d.client.decide_legal_referral(d.loan_id, LegalDecision(
        approve=True, actor=SUPERVISOR, reason="demo: cure period ended unpaid"))
    d.say(d.loan_id, "supervisor approved the referral to litigation")


Story = Callable[[Driver], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    story: str
    act: Story


SCENARIOS: dict[str, Scenario] = {
    "DEMO-CN-1001": Scenario("paid in reminder", paid_in_reminder),
    "DEMO-CN-1002": Scenario("a promise kept", promise_kept),
    "DEMO-CN-1003": Scenario("promises broken, legal, written off", promise_broken),
    "DEMO-US-2001": Scenario("a plan completed", plan_completed),
    "DEMO-US-2002": Scenario("a settlement", settlement),
    "DEMO-US-2003": Scenario("a dispute freezes and thaws", dispute_frozen_and_thawed),
    "DEMO-GB-3001": Scenario("no answer: legal referral, written off", legal_referral),
    "DEMO-GB-3002": Scenario("breathing space, then paid", breathing_space),
}
"""The bundled demo portfolio's stories, by loan id (duecourse/demo/loans.csv)."""


async def play(driver: Driver, scenario: Scenario) -> None:
    """Run one story; a refused or late step is reported, never raised into `dev`."""
    try:
        await scenario.act(driver)
    except StoryOver:
        pass
    except (LoanClosed, LoanNotFound):
        pass
    except (WorkflowUpdateFailedError, RPCError, ValueError) as err:
        cause = getattr(err, "cause", None)
        driver.say(driver.loan_id, f"scripted step refused: {cause or err}")
