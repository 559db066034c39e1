"""Run a duecourse worker from a checkout: `python worker.py` (same as `duecourse worker
--migrate`). The worker itself is `duecourse.runtime`."""

from duecourse.runtime import main

if __name__ == "__main__":
    main()
