"""The simulated borrower: when they pay, answer, promise, dispute, opt out or ask for help.

Every draw comes from the loan's own `random.Random` (seeded from the run's seed and the
loan id), so a loan behaves the same whichever process simulates it. What the borrower
does reaches the loan through `duecourse.lab.sim_acts`, which does what the workflow's
signal and update handlers do, validators included: a promise or hold the workflow would
refuse is refused here too.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.calendar import local_date, wall_clock, zone
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult
from duecourse.domain.compliance import Verdict
from duecourse.domain.policy import Channel
from duecourse.domain.work.queue import Task, TaskKind
from duecourse.lab import sim_acts
from duecourse.lab.behaviour import Behaviour
from duecourse.lab.portfolio import pick
from duecourse.lab.sim_acts import AGENT
from duecourse.lab.sim_deals import Deals
from duecourse.lab.sim_loan import LoanRun, Sent
from duecourse.lab.sim_supervisor import Supervisor


def band_of(value: int, bands: dict[str, float]) -> float:
    """The value of the 'low-high' band holding `value` (1 when none does)."""
    for band, factor in bands.items():
        low, _, high = band.partition("-")
        if int(low) <= value <= int(high):
            return factor
    return 1.0


def hour_factor(hour: int, bands: dict[str, float]) -> float:
    """The reach multiplier of the local hour ('from-to', `to` excluded); 0 outside."""
    for band, factor in bands.items():
        low, _, high = band.partition("-")
        if int(low) <= hour < int(high):
            return factor
    return 0.0


class Borrower:
    """Drives one `LoanRun` with behaviour drawn from `b`."""

    def __init__(self, run: LoanRun, dpd: int, b: Behaviour, rng: random.Random,
                 supervisor: Supervisor) -> None:
        self.run, self.b, self.rng = run, b, rng
        self.dpd_factor = band_of(dpd, b.dpd_factor)
        self.deals = Deals(run, b, rng, self.dpd_factor, supervisor)
        self._payments = 0
        self._borrower = Actor(kind=ActorKind.BORROWER, id=run.c.loan.borrower.borrower_id)
        run.on_sent = self.sent
        run.on_task = self.task_opened

    @property
    def segment(self) -> str:
        return str(self.run.c.state.segment)

    def start(self) -> None:
        """At hand-over: a share of each segment pays in full unprompted (self-cure)."""
        b, run = self.b, self.run
        if self.rng.random() < b.self_cure[self.segment] * self.dpd_factor:
            within = b.self_cure_within_days * 86400
            run.at(run.now + timedelta(seconds=self.rng.randrange(within)), self.pay_in_full)

    def sent(self, sent: Sent) -> None:
        """A message went out: it reaches the borrower by channel and local hour."""
        hour = sent.at.astimezone(zone(self.run.c.tz)).hour
        chance = self.b.reach.get(sent.channel.value, 0.0) * \
            hour_factor(hour, self.b.reach_by_hour)
        if self.rng.random() < chance:
            delay = timedelta(seconds=self.rng.randrange(self.b.response_hours * 3600 + 1))
            self.run.at(sent.at + delay, lambda: self.reached(sent.channel))

    def task_opened(self, task: Task) -> None:
        """A call task for a person: an agent works a share of them, a few hours later."""
        if task.kind is TaskKind.CALL_BORROWER and \
                self.rng.random() < self.b.agent_works_tasks:
            later = self.run.now + timedelta(hours=self.b.agent_pickup_hours)
            self.run.at(later, lambda: self.agent_call(task.task_id))

    def agent_call(self, task_id: str) -> None:
        """The agent asks the engine, calls when allowed, and completes the task with what
        came of it (which records the call's outcome); a deferred call is tried again
        when the engine says it may go, a blocked one is left to escalate."""
        decision = sim_acts.request_contact(self.run, Channel.VOICE)
        if decision is None:
            return
        if decision.verdict is Verdict.DEFERRED and decision.until is not None:
            self.run.at(decision.until, lambda: self.agent_call(task_id))
            return
        if not decision.allowed:
            return
        hour = self.run.now.astimezone(zone(self.run.c.tz)).hour
        reached = self.rng.random() < self.b.reach.get("voice", 0.0) * \
            hour_factor(hour, self.b.reach_by_hour)
        reaction = pick(self.rng, self.b.on_reach.model_dump()) if reached else ""
        outcome = "refused" if reaction == "refuse" else "reached" if reached else "no_answer"
        if sim_acts.complete_task(self.run, task_id, outcome) and reached:
            self.react(reaction, Channel.VOICE)

    # ------------------------------------------------------------ what they do
    def reached(self, channel: Channel) -> None:
        if self.run.c.state.is_closed:
            return
        reaction = pick(self.rng, self.b.on_reach.model_dump())
        result = ContactResult.REFUSED if reaction == "refuse" else (
            ContactResult.REACHED if channel is Channel.VOICE
            else ContactResult.BORROWER_REPLIED)
        self.outcome(ContactOutcomeReport(channel=channel, result=result,
                                          actor=AGENT if channel is Channel.VOICE
                                          else self._borrower))
        self.react(reaction, channel)

    def react(self, reaction: str, channel: Channel) -> None:
        """What a reached borrower does (a refusal or plain talk is the outcome itself)."""
        if self.run.c.state.is_closed:
            return
        if reaction == "pay_in_full":
            self.pay_in_full()
        elif reaction == "promise":
            self.promise()
        elif reaction == "plan":
            self.deals.plan()
        elif reaction == "settle":
            self.deals.settle()
        elif reaction == "dispute":
            self.dispute()
        elif reaction == "opt_out":
            self.opt_out(channel)
        elif reaction == "hardship":
            self.hardship()

    def outcome(self, report: ContactOutcomeReport) -> None:
        sim_acts.record_contact_outcome(self.run, report)

    def pay(self, amount: Decimal) -> None:
        c = self.run.c
        if c.state.is_closed or amount <= 0:
            return
        self._payments += 1
        sim_acts.report_payment(self.run, amount, f"SIMPAY-{c.loan.loan_id}-{self._payments}")

    def pay_in_full(self) -> None:
        self.pay(self.run.c.state.outstanding)

    def promise(self) -> None:
        """A promise of the balance in `promise_days`; kept or broken by segment."""
        c, now, b = self.run.c, self.run.now, self.b
        due = local_date(now, c.tz) + timedelta(days=b.promise_days)
        amount = c.state.outstanding
        if not sim_acts.promise_to_pay(self.run, amount, due):
            return
        if self.rng.random() < b.promise_kept[self.segment] * self.dpd_factor:
            noon = wall_clock(due, timedelta(hours=12), c.tz)
            self.run.at(noon, lambda: self.pay(min(amount, c.state.outstanding)))

    def dispute(self) -> None:
        """A dispute opened in writing, verified some days later."""
        sim_acts.dispute(self.run, "opened", self._borrower, "debt not owed", written=True)
        self.run.at(self.run.now + timedelta(days=self.b.dispute_verified_days),
                    self.verified)

    def verified(self) -> None:
        c = self.run.c
        if c.state.is_closed or not c.state.contacting.standing.dispute_open:
            return
        sim_acts.dispute(self.run, "verified", AGENT, "verification sent")

    def opt_out(self, channel: Channel) -> None:
        sim_acts.opt_out(self.run, channel, self._borrower)

    def hardship(self) -> None:
        sim_acts.hardship_hold(self.run, self.b.hardship_days)
