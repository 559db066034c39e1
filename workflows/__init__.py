"""Temporal workflows: deterministic orchestration only (timers, handlers, activity calls).

Empty on purpose: the sandbox imports this package before each run's workflow module, so
anything imported here would be re-imported for every loan. The worker's list of
workflows is `duecourse.runtime.WORKFLOWS`.
"""
