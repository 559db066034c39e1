"""The activity's clock: the Temporal server's time at the attempt's start, plus the time
elapsed since on this process's monotonic clock.

Times an activity records (a send's fence, its delivery, a lease) are compared with the
workflow's `workflow.now()` - the audit orders a contact against the stop facts the
workflow recorded. Anchoring both on the server's clock keeps them comparable, also on the
time-skipping test server, where the server's time runs ahead of the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import activity


def activity_clock() -> Callable[[], datetime]:
    """A `now()` for the running activity attempt."""
    started = activity.info().started_time
    t0 = time.monotonic()
    return lambda: started + timedelta(seconds=time.monotonic() - t0)
