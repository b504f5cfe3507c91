"""Running ``ledger`` as a user does: a subprocess in a directory of the test's choosing, with no
``LEDGER_*`` variable from the environment but the suite's admin token (``LEDGER_TOKEN``, as the
suite's in-process clients send it), and a service URL where nothing listens unless the test gives
one (so no test ever talks to a service someone runs on :8080)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from ledger import pgembed
from tests import servers

_PATH = re.compile(r"(?<![\w:/.-])(/[\w.-]+(?:/[\w.-]+)*)")


def dead_url() -> str:
    return f"http://127.0.0.1:{pgembed.free_port()}"


def run(*argv: str, cwd: Path, env: dict[str, str] | None = None, url: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    full_env["PYTHONPATH"] = str(servers.ROOT)
    full_env["LEDGER_URL"] = url or dead_url()
    full_env["LEDGER_TOKEN"] = servers.ADMIN_TOKEN
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "cli.main", *argv], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


async def run_async(*argv: str, cwd: Path, env: dict[str, str] | None = None, url: str | None = None,
                    timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """:func:`run` from a test whose event loop serves what the command talks to."""
    return await asyncio.to_thread(run, *argv, cwd=cwd, env=env, url=url, timeout=timeout)


def paths_in(text: str) -> list[str]:
    """Absolute file-system paths in ``text`` (not the paths inside URLs)."""
    return _PATH.findall(text)


def missing_paths(text: str) -> list[str]:
    return [p for p in paths_in(text) if not Path(p).exists()]
