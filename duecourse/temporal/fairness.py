"""Fairness between platforms: each loan's workflow starts with its platform's fairness key.

Every collection workflow starts with `Priority(fairness_key=<platform id>)`, or
`LENDER` for the lender's own loans (CLI, starter); its activities and child workflows
inherit the workflow's priority, and so does a run continued as new. The key is recorded
in the history (`WorkflowExecutionStarted.priority`) on every server.

What the key does depends on the server. With task-queue fairness enabled - Temporal
Cloud: the namespace's Fairness setting; a self-hosted server: the dynamic config
`matching.enableFairness=true`, which `duecourse dev`, the test servers
(duecourse.temporal.devserver) and docker-compose.yml (deploy/temporal/dynamicconfig.yaml)
set - the matching service keeps a virtual queue per key and dispatches round-robin
between them, so a platform handing over 50,000 loans at once cannot starve another's
workflow and activity tasks (tests/test_fairness_dispatch.py). Without it the key is
carried and ignored: tasks are dispatched first in, first out.
"""

from __future__ import annotations

from temporalio.common import Priority

LENDER = "_lender"
"""The fairness key of the lender's own loans: one tenant among the platforms, under a key
no platform id can take (ids start with a letter or a digit)."""
MAX_KEY_BYTES = 64  # Temporal's limit for a fairness key


def fairness_key(platform: str | None) -> str:
    """The key of `platform`'s loans (ids are at most 64 ASCII characters; a longer id
    from before ids were checked is cut, still one key per platform in practice)."""
    if not platform:
        return LENDER
    return platform.encode()[:MAX_KEY_BYTES].decode(errors="ignore")


def priority_for(platform: str | None) -> Priority:
    """The priority a loan of `platform` (None: the lender's own) starts with."""
    return Priority(fairness_key=fairness_key(platform))
