"""The moving parts of the chaos proof (`benchmarks/chaos.py`), each real, none mocked:
the timeline of what was done when, the ledger's PostgreSQL database and the TCP proxy
that can make it vanish, the supervised worker processes, and the restartable Temporal
dev server.

Imported by `chaos.py`, which puts the repo root on `sys.path` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import URL, make_url
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from duecourse.temporal.devserver import DevServer, find_temporal_cli

ROOT = Path(__file__).resolve().parents[1]  # the repo: workers run `python worker.py` there
SETPRIV = shutil.which("setpriv")
DIE_WITH_US: list[str] = [SETPRIV, "--pdeathsig", "KILL", "--"] if SETPRIV else []
"""Children get SIGKILL if this script dies without cleaning up (killed itself, say by
CI's `timeout --kill-after`), so no worker or server outlives it."""


class RigError(RuntimeError):
    """The rig itself could not be built or run: not a finding about the engine."""


# ----------------------------------------------------------------------------- timeline
class Timeline:
    """What was done when, in seconds since the script started; also kept in a file."""

    def __init__(self, path: Path) -> None:
        self.origin = time.monotonic()
        self.wall_origin = datetime.now(UTC)
        self._file: TextIO = _open_append(path)

    def now(self) -> float:
        return time.monotonic() - self.origin

    def offset(self, at: datetime) -> float:
        """Seconds since the start for a wall-clock instant (ledger rows carry those)."""
        return (at - self.wall_origin).total_seconds()

    def note(self, text: str, *, console: bool = True) -> None:
        line = f"  {_clock(self.now())}  {text}"
        self._file.write(line + "\n")
        self._file.flush()
        if console:
            print(line, flush=True)

    def close(self) -> None:
        self._file.close()


def _clock(seconds: float) -> str:
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    return f"{sign}{int(seconds // 60):02d}:{seconds % 60:04.1f}"


def _open_append(path: Path) -> TextIO:
    return path.open("a", encoding="utf-8")


# ----------------------------------------------------------------------------- PostgreSQL
@dataclass
class Database:
    """A fresh ledger database on the server behind `admin_dsn`, dropped at the end."""

    admin_dsn: str
    name: str

    @property
    def host(self) -> str:
        return make_url(self.admin_dsn).host or "127.0.0.1"

    @property
    def port(self) -> int:
        return make_url(self.admin_dsn).port or 5432

    def url(self, host: str | None = None, port: int | None = None) -> str:
        """SQLAlchemy URL of this database, directly or through the proxy."""
        base = make_url(self.admin_dsn)
        url = URL.create("postgresql+asyncpg", username=base.username, password=base.password,
                         host=host or self.host, port=port or self.port, database=self.name)
        return url.render_as_string(hide_password=False)

    async def _admin(self) -> Any:
        try:
            return await asyncpg.connect(self.admin_dsn, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError) as err:
            shown = make_url(self.admin_dsn).render_as_string(hide_password=True)
            raise RigError(f"PostgreSQL is not reachable at {shown} ({err.__class__.__name__}:"
                           f" {err}); start it (`.ci/run` does) or pass --postgres "
                           "postgresql://USER@HOST:PORT/postgres") from err

    async def _execute(self, sql: str) -> None:
        conn = await self._admin()
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self) -> None:
        await self._execute(f'CREATE DATABASE "{self.name}"')

    async def drop(self) -> None:
        await self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class LedgerProxy:
    """A TCP proxy between the workers and PostgreSQL that can make the ledger vanish.

    `cut()` stops listening (new connections are refused) and resets every proxied
    connection in both directions; `restore()` listens again on the same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    @property
    def up(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.add(link)
        self.connections += 1
        pumps = [asyncio.create_task(self._pump(reader, up_writer)),
                 asyncio.create_task(self._pump(up_reader, writer))]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for side in link:
            side.transport.abort()
        self._links.discard(link)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()

    async def cut(self) -> int:
        """Refuse new connections and reset the open ones; returns how many were reset."""
        if self._server is not None:
            self._server.close()
            self._server = None
        dropped = len(self._links)
        for link in list(self._links):
            for side in link:
                side.transport.abort()
        self._links.clear()
        return dropped

    async def restore(self) -> None:
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# ----------------------------------------------------------------------------- workers
class WorkerSlot:
    """One `python worker.py` process; restarted by `supervise()` whenever it exits on its
    own (a crash, or a start that failed), killed with SIGKILL by the chaos schedule."""

    def __init__(self, name: str, env: dict[str, str], log: Path, timeline: Timeline) -> None:
        self.name = name
        self.env = env
        self.log = log
        self.timeline = timeline
        self.process: asyncio.subprocess.Process | None = None
        self.wanted = False  # the supervisor keeps it running while True
        self.down_until = 0.0  # monotonic: a killed worker stays down until then
        self.starts = 0
        self.failed_starts = 0
        self._log_offset = 0
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def spawn(self) -> None:
        self._log_offset = _file_size(self.log)
        out = _open_binary_append(self.log)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *DIE_WITH_US, sys.executable, "worker.py", cwd=ROOT, env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)  # Ctrl-C in a terminal reaches this script only
        finally:
            out.close()
        self.starts += 1

    async def wait_ready(self, limit: float) -> bool:
        """True once this run of the worker logged that it started; False if it exited."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.logged_start():
                return True
            if not self.alive:
                return False
            await asyncio.sleep(0.2)
        return False

    def logged_start(self) -> bool:
        """Whether this run of the worker (since its last spawn) logged that it started."""
        return _log_contains(self.log, self._log_offset, "worker started")

    def log_tail(self, lines: int = 12) -> str:
        return _log_tail(self.log, self._log_offset, lines)

    def kill(self) -> int | None:
        """SIGKILL the worker's process group (its own session); returns the pid."""
        if not self.alive:
            return None
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.pid

    def supervise(self) -> None:
        self.wanted = True
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._keep_running())

    async def _keep_running(self) -> None:
        streak = 0
        while self.wanted:
            if not self.alive:
                await asyncio.sleep(max(0.0, self.down_until - time.monotonic()))
                if not self.wanted:
                    break
                await self.spawn()
                started = time.monotonic()
                if await self.wait_ready(60):
                    assert self.process is not None
                    after = f" after {streak} failed start(s)" if streak else ""
                    self.timeline.note(f"{self.name} up (pid {self.process.pid}, ready in "
                                       f"{time.monotonic() - started:.1f} s{after})")
                    streak = 0
                elif self.wanted and self.down_until <= time.monotonic():
                    code = self.process.returncode if self.process else None
                    streak += 1
                    self.failed_starts += 1
                    if streak == 1:
                        last = self.log_tail(1).strip().replace("\n", " ")[:160]
                        self.timeline.note(f"{self.name} failed to start (exit {code}); "
                                           f"retrying every 3 s. Last log line: {last}")
                    self.kill()
                    self.down_until = time.monotonic() + 3
                    continue
            assert self.process is not None
            await self.process.wait()
            if self.wanted and self.down_until <= time.monotonic():
                self.timeline.note(f"{self.name} exited on its own (code "
                                   f"{self.process.returncode}); restarting in 3 s")
                self.down_until = time.monotonic() + 3

    async def stop(self, graceful: bool = True) -> None:
        """Stop for good: SIGTERM (the worker drains), then SIGKILL after 15 s."""
        self.wanted = False
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if self.process is None or self.process.returncode is not None:
            return
        if graceful:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
                return
            except TimeoutError:
                pass
        self.kill()
        await self.process.wait()


def _file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _open_binary_append(path: Path) -> Any:
    return path.open("ab")


def _log_contains(path: Path, offset: int, needle: str) -> bool:
    if not path.exists():
        return False
    with path.open("rb") as log:
        log.seek(offset)
        return needle.encode() in log.read()


def _log_tail(path: Path, offset: int, lines: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as log:
        log.seek(offset)
        return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])


# ----------------------------------------------------------------------------- Temporal
class RestartableDevServer(DevServer):
    """The dev server, restartable on its own port right after a stop.

    `DevServer.start()` first checks the port with a bind() without SO_REUSEADDR; after a
    stop with clients connected, the old server's TIME_WAIT sockets make that check fail
    for about a minute although `temporal` itself binds at once. A restart therefore
    launches the same command again without that pre-check (the first start keeps it).
    """

    def command(self, binary: Path) -> list[str]:
        return [*DIE_WITH_US, *super().command(binary)]

    async def start_again(self) -> None:
        binary = find_temporal_cli(self.binary)
        assert self.log_file is not None and self.process is None
        self._log = _open_binary_append(self.log_file)
        self._log_offset = self._log.tell()
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command(binary), stdin=asyncio.subprocess.DEVNULL, stdout=self._log,
                stderr=asyncio.subprocess.STDOUT, process_group=0)
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise


QUIET_RUNTIME = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))
"""Our own client retries through the restart on purpose: its core's retry warnings would
drown the timeline."""

