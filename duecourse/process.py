"""Ending short-lived processes that used a Temporal client.

The SDK's Rust runtime threads can call into Python while the interpreter finalizes,
which aborts the process ("PyGILState_Release ... finalizing", or a segfault) after the
work is done - temporalio/sdk-python#300, reproduced here about once in 40 runs. Command
line tools therefore flush what they wrote and leave without interpreter finalization.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Flush output and logs, then exit immediately with `code`."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe must not block exit
            stream.flush()
    os._exit(code)


def run_and_exit(entry: Callable[[], object]) -> NoReturn:
    """Run a CLI entry point (which may raise SystemExit) and exit via `exit_now`."""
    try:
        result = entry()
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            exit_now(done.code or 0)
        print(done.code, file=sys.stderr)
        exit_now(1)
    exit_now(result if isinstance(result, int) else 0)
