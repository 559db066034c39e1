"""The analytic minimum of a loan's life: what Temporal must record for its business steps.

A path's business facts (contacts sent, stage changes, commands, payments, deadlines) fix
the least any engine could do durably: one start; one one-row write per business step
(opening the case, each contact, each stage change a timer brings, each command, each
payment); one timer per wait (before each contact, each deadline); one signal per payment;
one update per command; one search-attribute upsert per stage change and one for the
outcome. The floor workflow (benchmarks/cost_floor_workflow.py) runs exactly this shape,
so its counted history is the minimum's proof.

Plain data and arithmetic only: the floor workflow's sandbox imports it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """Counts of a loan's business steps; `park`: seconds of one long timer held while
    waiting for the first payment (a loan parked on its next step; 0 for none)."""

    contacts: int = 0
    timers: int = 0
    steps: int = 0
    commands: int = 0
    payments: int = 0
    upserts: int = 0
    park: float = 0.0
    timer_seconds: float = 0.05

    @property
    def activities(self) -> int:
        return 1 + self.contacts + self.steps + self.commands + self.payments

    def actions(self) -> Counter[str]:
        """Billable actions by kind (the kinds of benchmarks/cost_history.py)."""
        counted = Counter({"start": 1, "activities": self.activities,
                           "timers": self.timers + (1 if self.park else 0),
                           "signals": self.payments, "updates": self.commands,
                           "upserts": self.upserts})
        return +counted  # without the zero kinds

    @property
    def billable(self) -> int:
        return sum(self.actions().values())

    def formula(self) -> str:
        """The minimum spelled out: start + activities + timers + signals + updates +
        upserts, each with the facts it comes from."""
        return (f"1 start + {self.activities} writes (1 open + {self.contacts} contacts"
                f" + {self.steps} timed steps + {self.commands} commands + {self.payments}"
                f" payments) + {self.timers + (1 if self.park else 0)} timers"
                f" + {self.payments} signals + {self.commands} updates"
                f" + {self.upserts} upserts = {self.billable}")
