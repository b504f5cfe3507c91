"""Faults: the service killed mid-append loses nothing acknowledged; PostgreSQL going away turns
into 503 + Retry-After and not-ready, and the service recovers by itself when it is back."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from api import app as app_mod
from ledger import settings as settings_mod
from tests import chain, credfiles, pgfixtures, servers


def registration(event_id: uuid.UUID) -> tuple[str, dict]:
    """A target registration on a stream of its own (always allowed), and that stream."""
    name = f"t{event_id.hex[:16]}"
    return f"target-{name}", {"events": [{"id": str(event_id), "type": "TargetRegistered",
                                          "data": {"target": name, "credentials": "cluster"}}]}


def cluster_credential(directory: Path) -> Path:
    """A credentials file with the one (anonymous) credential every registration here names."""
    return credfiles.write(directory, {"cluster": {"server": "https://127.0.0.1:6443", "anonymous": True}})


async def _writer(session, url, i, acked, stop):
    n = 0
    while not stop.is_set():
        event_id = uuid.uuid4()
        stream, body = registration(event_id)
        try:
            async with session.post(f"{url}/v1/streams/{stream}/events", json=body) as resp:
                if resp.status == 201:
                    acked[event_id] = (await resp.json())["positions"][0]
                    n += 1
        except (TimeoutError, aiohttp.ClientError):
            return


async def test_sigkill_during_32_concurrent_appends_loses_no_acknowledged_event(database_url, tmp_path, db):
    credentials = str(cluster_credential(tmp_path / "etc"))
    service = servers.ServiceProcess(database_url, tmp_path, LEDGER_APPLIER="false", LEDGER_PROJECTOR="false",
                                     LEDGER_CREDENTIALS=credentials)
    await service.start()
    acked: dict[uuid.UUID, int] = {}
    stop = asyncio.Event()
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with servers.session(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as session:
            writers = [asyncio.create_task(_writer(session, service.url, i, acked, stop)) for i in range(32)]
            while len(acked) < 400:
                await asyncio.sleep(0.01)
            service.kill()
            await asyncio.wait_for(asyncio.gather(*writers), 30)
        assert len(acked) >= 400
        restarted = servers.ServiceProcess(database_url, tmp_path, LEDGER_APPLIER="false",
                                           LEDGER_PROJECTOR="false", LEDGER_CREDENTIALS=credentials)
        await restarted.start()
        try:
            rows = await db.fetch("SELECT id, position FROM events WHERE id = ANY($1::uuid[])", list(acked))
            assert {r["id"]: r["position"] for r in rows} == acked
            total = await chain.check_log(db)
            assert total >= len(acked)
            async with servers.session() as session:
                some = next(iter(acked))
                stream, body = registration(uuid.uuid4())
                async with session.post(f"{restarted.url}/v1/streams/{stream}/events", json=body) as resp:
                    assert resp.status == 201
                    assert (await resp.json())["positions"] == [total + 1]
            assert await db.fetchval("SELECT count(*) FROM events WHERE id = $1", some) == 1
        finally:
            restarted.stop()
    finally:
        stop.set()
        service.kill()


@pytest.fixture
async def private_pg():
    path = Path(tempfile.mkdtemp(prefix="ledger-test-pg-"))
    server = pgfixtures.private_server(path / "pg")
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.destroy)
    shutil.rmtree(path, ignore_errors=True)


async def test_postgres_outage_is_503_then_recovers(aiohttp_client, private_pg, tmp_path):
    settings = settings_mod.Settings(database_url=private_pg.url(), data_dir=tmp_path / "d", db_timeout=2.0,
                                     projector=False, applier=False, retry_after=3,
                                     admin_token=servers.ADMIN_TOKEN, credentials=cluster_credential(tmp_path / "etc"))
    client = await aiohttp_client(app_mod.make_app(settings))
    stream, body = registration(uuid.uuid4())
    assert (await client.post(f"/v1/streams/{stream}/events", json=body)).status == 201

    await asyncio.to_thread(private_pg.stop, "fast")
    stream, body = registration(uuid.uuid4())
    resp = await asyncio.wait_for(client.post(f"/v1/streams/{stream}/events", json=body), 20)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "3"
    assert resp.content_type == "application/problem+json"
    assert "Traceback" not in await resp.text()
    ready = await asyncio.wait_for(client.get("/readyz"), 20)
    assert ready.status == 503
    read = await asyncio.wait_for(client.get("/v1/events"), 20)
    assert read.status == 503

    await asyncio.to_thread(private_pg.start)
    statuses = []
    for _ in range(100):
        resp = await client.post(f"/v1/streams/{stream}/events", json=body)
        statuses.append(resp.status)
        if resp.status == 201:
            break
        await asyncio.sleep(0.1)
    assert statuses[-1] == 201, (statuses, await resp.text())
    for _ in range(100):
        if (await client.get("/readyz")).status == 200:
            break
        await asyncio.sleep(0.1)
    assert (await client.get("/readyz")).status == 200
    conn = await asyncpg.connect(private_pg.url())
    try:
        assert await chain.check_log(conn) == 2
    finally:
        await conn.close()
