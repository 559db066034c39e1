"""PLACEHOLDER (H1 owns this module): commands for payload encryption keys."""

from __future__ import annotations

import typer

commands = typer.Typer(help="payload encryption keys", no_args_is_help=True)
