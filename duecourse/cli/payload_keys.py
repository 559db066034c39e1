"""`duecourse payload-keys`: make and rotate the keys that seal payloads in Temporal.

Key material is never printed: only key ids, which name a key in sealed payloads' metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from duecourse.cli.common import console, fail, settings
from duecourse.security.payload_keys import PayloadKeyError, add_key, ring_from_settings

ROTATION = ("Rotate by appending: `new --file PATH` on the key file every worker and client "
            "reads adds a newest key, and new payloads are sealed with it once each process "
            "restarts (restart the workers, the API and any long-running client). Keep the "
            "old keys in the file until no running workflow's history holds payloads they "
            "sealed (a loan runs for months: keep them at least as long as the namespace "
            "keeps histories); a payload whose key was removed fails its workflow task with "
            "an error naming the key id.")

commands = typer.Typer(help="Payload encryption keys (AES-256-GCM) for Temporal.\n\n"
                       + ROTATION, no_args_is_help=True)


@commands.command()
def new(file: Annotated[Path, typer.Option(
        "--file", help="key file to create, or to append the newest key to")]) -> None:
    """Create a key file, or append a newest key to one (rotation); prints the key id.

    The file is created readable by its owner only. Point DUECOURSE_PAYLOAD_KEY_FILE at it
    (or keep it at <data dir>/payload-keys)."""
    existed = file.expanduser().exists()
    try:
        key_id = add_key(file)
    except PayloadKeyError as err:
        fail(str(err))
    except OSError as err:
        fail(f"cannot write the payload key file {file} ({err.strerror or err})")
    what = "appended as the newest key of" if existed else "created in"
    console.print(f"Payload key {escape(key_id)} {what} {escape(str(file))}.",
                  highlight=False)
    if existed:
        console.print("Restart the workers and clients to seal with it; keep the older "
                      "keys while any running workflow needs them.", highlight=False)


@commands.command("list")
def list_keys() -> None:
    """The key ids the current settings load, oldest first, newest marked (no key material)."""
    try:
        ring = ring_from_settings(settings())
    except PayloadKeyError as err:
        fail(str(err))
    console.print(f"Payload keys from {escape(ring.source)}:", highlight=False)
    for key_id in ring.key_ids:
        mark = "  (newest: seals new payloads)" if key_id == ring.newest[0] else ""
        console.print(f"  {escape(key_id)}{mark}", highlight=False)
