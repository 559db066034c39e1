"""Start collection for every loan in a hand-over file from a checkout:
`python starter.py loans.csv` (same as `duecourse start`). The logic is `duecourse.handover`."""

from duecourse.handover import main
from duecourse.process import run_and_exit

if __name__ == "__main__":
    run_and_exit(main)
