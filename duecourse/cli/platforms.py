"""PLACEHOLDER (H6 owns this module): commands for platforms (tenants)."""

from __future__ import annotations

import typer

commands = typer.Typer(help="platforms (tenants)", no_args_is_help=True)
