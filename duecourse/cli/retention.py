"""PLACEHOLDER (H7 owns this module): commands for retention and erasure."""

from __future__ import annotations

import typer

commands = typer.Typer(help="retention and erasure", no_args_is_help=True)
