"""The embedded PostgreSQL is supervised by the ``ledger serve`` that owns it: killed, it is
restarted on the same data and port and the service carries on (the restart counted, /readyz not
ready meanwhile); when it cannot be restarted, the service stops with a clear message and a
non-zero exit instead of serving without its database.

Each test stops what it started: the service, and the PostgreSQL it ran (a SIGKILLed postmaster's
backends exit by themselves; ``stop`` runs again at the end in case a server is still up).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from ledger import pgembed
from tests import servers

pytestmark = pytest.mark.timeout(180)

# What successive appends send: a first revision, then pauses and resumes (each allowed by the rules
# on the state the ones before it leave).
BODIES = [{"events": [{"type": "RevisionSubmitted", "data": {
    "deployment": "web", "revision": 1, "selector": "",
    "manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}}]}}]}] + [
    {"events": [{"type": "DeploymentResumed" if n % 2 else "DeploymentPaused", "data": {"deployment": "web"}}]}
    for n in range(8)]


class Service:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = pgembed.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.appended = 0

    async def start(self) -> None:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")},
               "LEDGER_ADMIN_TOKEN": servers.ADMIN_TOKEN}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--data-dir", str(self.data_dir),
             "--http-port", str(self.port), "--applier", "false", "--projector", "true"],
            cwd=servers.ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT)
        for _ in range(600):
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                status, _ = await self.readyz()
                if status == 200:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError("service did not start: " + self.log.read_text()[-3000:])

    async def readyz(self) -> tuple[int, dict]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session, \
                session.get(self.url + "/readyz") as resp:
            return resp.status, await resp.json()

    async def get(self, path: str) -> str:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10),
                                         headers=servers.ADMIN_HEADERS) as session, \
                session.get(self.url + path) as resp:
            return await resp.text()

    async def append(self) -> int:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10),
                                         headers=servers.ADMIN_HEADERS) as session, \
                session.post(self.url + "/v1/streams/deployment-web/events", json=BODIES[self.appended]) as resp:
            if resp.status == 201:
                self.appended += 1
            return resp.status

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def postmaster(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


@pytest.fixture
async def service(private_dir) -> AsyncIterator[Service]:
    running = Service(private_dir / "ledger-data")
    pgdata = running.data_dir / "pg"
    try:
        await running.start()
        yield running
    finally:
        running.stop()
        for where in (pgdata, pgdata.with_name("pg-moved")):
            if (where / "PG_VERSION").exists():
                await asyncio.to_thread(pgembed.EmbeddedPostgres(where).stop, "immediate")


async def test_a_killed_embedded_postgres_is_restarted_and_the_service_carries_on(service):
    assert await service.append() == 201
    pgdata = service.data_dir / "pg"
    os.kill(postmaster(pgdata), signal.SIGKILL)

    seen: list[dict] = []
    for _ in range(1500):
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            status, body = await service.readyz()
            if status == 503:
                seen.append(body["not_ready"])
            elif seen and re.search(r'^ledger_task_restarts_total\{(process="supervisor",)?task="embedded-postgres"\} 1\.0$',
                                    await service.get("/metrics"), re.M):
                break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"never ready again after the restart: {seen[-1:]}, {service.log.read_text()[-3000:]}")
    assert any("embedded-postgres" in named or "database" in named for named in seen), seen
    assert pgembed.EmbeddedPostgres(pgdata).running_port() is not None

    statuses = [await service.append() for _ in range(3)]
    assert statuses == [201, 201, 201], service.log.read_text()[-3000:]
    assert '"position":4' in await service.get("/v1/streams/deployment-web")
    assert service.proc is not None
    service.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(service.proc.wait, 60) == 0
    assert pgembed.EmbeddedPostgres(pgdata).running_port() is None, "PostgreSQL still running after the service stopped"


async def test_an_embedded_postgres_that_cannot_be_restarted_stops_the_service_with_a_message(service):
    assert await service.append() == 201
    pgdata = service.data_dir / "pg"
    pid = postmaster(pgdata)
    pgdata.rename(pgdata.with_name("pg-moved"))  # nothing to restart from
    os.kill(pid, signal.SIGKILL)

    named = None
    for _ in range(1500):
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            status, body = await service.readyz()
            assert status == 503 or named is None
            named = body["not_ready"].get("embedded-postgres") or named
        if named is not None:
            break
        await asyncio.sleep(0.02)
    assert named is not None and named["status"] == "down", named
    assert "restart attempt" in named["reason"]

    assert service.proc is not None
    code = await asyncio.to_thread(service.proc.wait, 120)
    output = service.log.read_text()
    assert code == 1, output[-3000:]
    assert "ledger serve: embedded PostgreSQL" in output and "could not be restarted" in output
    assert "holds no PostgreSQL cluster any more" in output
    assert "Traceback" not in output
