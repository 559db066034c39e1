"""PLACEHOLDER (H2 owns this module): commands for the codec server."""

from __future__ import annotations

import typer

commands = typer.Typer(help="the codec server", no_args_is_help=True)
