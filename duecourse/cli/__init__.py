"""`duecourse` command line (console script `duecourse = "duecourse.cli:main"`)."""

from duecourse.cli.app import app, main

__all__ = ["app", "main"]
