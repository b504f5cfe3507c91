"""Running the real service as a subprocess, for tests that kill it; and the suite's admin token.

Every app and service the suite starts accepts ``ADMIN_TOKEN`` (as ``LEDGER_ADMIN_TOKEN``), and the
suite's clients send it by default (tests/conftest.py), so a test acts as an admin unless it says
otherwise. It is made afresh per run, like any secret.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
from aiohttp import test_utils, web

from api import server
from ledger import pgembed, secrets

ADMIN_TOKEN = secrets.new()
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def session(**kwargs: object) -> aiohttp.ClientSession:
    """A client session that authenticates as the suite's admin."""
    headers = {**ADMIN_HEADERS, **(kwargs.pop("headers", None) or {})}  # type: ignore[dict-item]
    return aiohttp.ClientSession(headers=headers, **kwargs)  # type: ignore[arg-type]

ROOT = Path(__file__).resolve().parent.parent


class GatedTestServer(test_utils.TestServer):
    """The test server behind the same connection gate as ``ledger serve`` (api/server.py)."""

    async def _make_runner(self, **kwargs: object) -> web.BaseRunner:
        return server.Runner(self.app, **kwargs)  # type: ignore[arg-type]


class ServiceProcess:
    def __init__(self, database_url: str, data_dir: Path, **env: str) -> None:
        self.port = pgembed.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")},
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_HTTP_PORT": str(self.port),
            "LEDGER_DATA_DIR": str(data_dir),
            "LEDGER_LOG_LEVEL": "WARNING",
            "LEDGER_ADMIN_TOKEN": ADMIN_TOKEN,
            **env,
        }
        self.log = data_dir / f"service-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, *, url: str | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        """Start and wait for ready at ``url`` (this process's http:// URL unless given)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve"], cwd=ROOT, env=self.env,
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"service exited: {self.log.read_text()[-3000:]}")
                try:
                    async with session.get((url or self.url) + "/readyz", ssl=ssl_context or True) as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("service did not become ready: " + self.log.read_text()[-3000:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
