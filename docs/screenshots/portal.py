"""Redraw docs/screenshots/portal-page.png, the README's picture of the borrower's page.

The picture is taken by tests/test_portal_browser.py::test_the_readme_screenshot: a real
worker on the time-skipping server hands over an English demo loan, the app runs on
uvicorn, and Debian's headless `chromium` opens the link from the loan's sent message at
phone width (390 CSS px, 2x pixels). The test checks the picture (drawn, under 300 KB);
this script runs it with DUECOURSE_README_SCREENSHOT set so it also replaces the file.
Nothing is downloaded. Run from the repository root, in the project's environment:

    python docs/screenshots/portal.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PNG = ROOT / "docs" / "screenshots" / "portal-page.png"
TEST = "tests/test_portal_browser.py::test_the_readme_screenshot"


def _stamp() -> int | None:
    return PNG.stat().st_mtime_ns if PNG.exists() else None


def main() -> int:
    """Run the test; fail when it fails or skips (no chromium: nothing was drawn)."""
    before = _stamp()
    env = {**os.environ, "DUECOURSE_README_SCREENSHOT": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          TEST], cwd=ROOT, env=env, check=False)
    if run.returncode != 0:
        return run.returncode
    if _stamp() in (None, before):
        print(f"{PNG} was not redrawn (is chromium on PATH?)", file=sys.stderr)
        return 1
    print(f"wrote {PNG.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
