"""`python -m duecourse.cli ...`: the same as the `duecourse` script."""

from duecourse.cli import main

main()
