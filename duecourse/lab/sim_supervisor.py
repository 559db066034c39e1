"""The simulated supervisor: decides legal referrals and settlements beyond an agent.

A share of the legal referrals awaiting approval is decided some hours after it is asked
for (approved or rejected by the behaviour file's share); the rest wait and escalate at
every approval timeout, as they would with nobody deciding. Settlements above the agent's
discount limit are approved or rejected after the same delay. Decisions go through the
workflow's own update handlers (`sim_acts.decide_legal`, `sim_acts.decide_settlement`),
validators first: one the loan no longer awaits is refused and does nothing.
"""

from __future__ import annotations

import random
from datetime import timedelta

from duecourse.lab import sim_acts
from duecourse.lab.behaviour import Supervisor as SupervisorBehaviour
from duecourse.lab.sim_loan import LoanRun


class Supervisor:
    """Decides for one `LoanRun`, drawing from its own generator."""

    def __init__(self, run: LoanRun, s: SupervisorBehaviour, rng: random.Random) -> None:
        self.run, self.s, self.rng = run, s, rng
        run.on_approval = self.legal_requested

    def _later(self) -> timedelta:
        return timedelta(hours=self.s.decide_hours)

    def legal_requested(self) -> None:
        """A legal referral awaits approval: decided later, or left to time out."""
        if self.rng.random() >= self.s.legal_decides:
            return
        approve = self.rng.random() < self.s.legal_approves
        reason = "referral approved" if approve else "referral rejected: keep negotiating"
        self.run.at(self.run.now + self._later(),
                    lambda: sim_acts.decide_legal(self.run, approve, reason))

    def settlement_pending(self) -> None:
        """A settlement beyond the agent's discount limit awaits approval."""
        approve = self.rng.random() < self.s.settlement_approves
        reason = "discount approved" if approve else "discount too deep"
        self.run.at(self.run.now + self._later(),
                    lambda: sim_acts.decide_settlement(self.run, approve, reason))
