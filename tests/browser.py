"""Headless Chromium for the web UI's tests, driven by Playwright; and ``python -m tests.browser``,
which ``make test`` runs first to make sure there is one.

Where the browser comes from, in order: ``LEDGER_CHROMIUM`` (a path to a Chromium or Chrome
binary), Debian's ``chromium`` package (``/usr/lib/chromium/chromium``, or ``chromium`` on the
PATH), then Playwright's own download. ``ensure()`` installs one when none is found: Debian's
package when running as root on Debian (apt-get), else ``playwright install chromium`` (needs the
internet); if neither works it says in one line what to install and exits non-zero. DEVELOPERS.md
says how to get one without the internet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

DEBIAN: Final = (Path("/usr/lib/chromium/chromium"), Path("/usr/bin/chromium"))
ARGS: Final = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
HINT: Final = ("no Chromium for the web UI tests: install Debian's 'chromium' package (apt-get install chromium), "
               "or run '.venv/bin/playwright install chromium', or set LEDGER_CHROMIUM to a Chromium binary "
               "(DEVELOPERS.md)")


def _playwright_own() -> Path | None:
    try:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            found = Path(p.chromium.executable_path)
    except Exception:  # whatever Playwright says, it has no browser to give
        return None
    return found if found.exists() else None


def executable() -> Path | None:
    """The Chromium to launch (None: Playwright's own, which it finds itself)."""
    given = os.environ.get("LEDGER_CHROMIUM")
    if given:
        return Path(given)
    for candidate in DEBIAN:
        if candidate.exists():
            return candidate
    on_path = shutil.which("chromium")
    return Path(on_path) if on_path else None


def available() -> bool:
    return executable() is not None or _playwright_own() is not None


def ensure() -> int:
    if available():
        return 0
    if os.geteuid() == 0 and Path("/etc/debian_version").exists() and shutil.which("apt-get"):
        print("installing Debian's chromium for the web UI tests", file=sys.stderr)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=False, env=env, **quiet)  # type: ignore[call-overload]
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=False, env=env, **quiet)  # type: ignore[call-overload]
        if available():
            return 0
    playwright = Path(sys.executable).parent / "playwright"
    if playwright.exists():
        subprocess.run([str(playwright), "install", "chromium"], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if available():
            return 0
    print(HINT, file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(ensure())
