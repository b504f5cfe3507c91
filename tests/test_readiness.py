"""/readyz answers within 1 s (a Kubernetes probe's default timeout) whatever the database does:
stopped, or frozen with SIGSTOP so that connections are accepted and nothing answers. It tells
the truth meanwhile (503 naming the database, with Retry-After) and is ready again by itself once
the database answers. The bound is enforced as a timeout on each request, never measured."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from api import app as app_mod
from ledger import pgembed
from ledger import settings as settings_mod
from tests import pgfixtures

pytestmark = pytest.mark.timeout(120)

PROBE_BUDGET = 1.0
DB_TIMEOUT = 2.0


@pytest.fixture
async def private_pg() -> AsyncIterator[pgembed.EmbeddedPostgres]:
    path = Path(tempfile.mkdtemp(prefix="ledger-test-pg-"))
    server = pgfixtures.private_server(path / "pg")
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.destroy)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def client(aiohttp_client, private_pg, tmp_path):
    settings = settings_mod.Settings(database_url=private_pg.url(), data_dir=tmp_path / "d",
                                     db_timeout=DB_TIMEOUT, retry_after=3, projector=True, applier=True)
    client = await aiohttp_client(app_mod.make_app(settings))
    yield client
    await client.close()


async def _readyz(client) -> tuple[int, dict, str | None]:
    resp = await asyncio.wait_for(client.get("/readyz"), PROBE_BUDGET)
    return resp.status, await asyncio.wait_for(resp.json(), PROBE_BUDGET), resp.headers.get("Retry-After")


async def _until_database_named(client) -> dict:
    for _ in range(200):
        status, body, retry_after = await _readyz(client)
        if status == 503 and "database" in body["not_ready"]:
            assert retry_after == "3"
            return body
        assert status in (200, 503)
        await asyncio.sleep(0.05)
    raise AssertionError("/readyz never named the database")


@contextlib.contextmanager
def stopped(server: pgembed.EmbeddedPostgres) -> Iterator[None]:
    server.stop("fast")
    try:
        yield
    finally:
        server.start()


@pytest.mark.parametrize("outage", [pgfixtures.frozen, stopped], ids=["frozen", "stopped"])
async def test_readyz_answers_within_a_second_whatever_the_database_does(client, private_pg, outage):
    await _until_ready(client)
    with outage(private_pg):
        body = await _until_database_named(client)
        assert body["not_ready"]["database"]["status"] == "down"
        assert body["checks"]["database"] != "ok"
        for _ in range(int(DB_TIMEOUT * 2 / 0.1)):  # keep asking through the probe's own timeouts
            status, body, _ = await _readyz(client)
            assert status == 503 and "database" in body["not_ready"]
            await asyncio.sleep(0.1)
    await _until_ready(client)


async def _until_ready(client) -> None:
    for _ in range(300):
        status, body, _ = await _readyz(client)
        if status == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never ready again: {body}")
