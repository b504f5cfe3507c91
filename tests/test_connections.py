"""The connection cap of ``ledger serve`` (api/server.py, served here the way cli/serve.py serves):
past ``max_connections`` new connections get 503 and are closed, while open keep-alive
connections and the database's keep working."""

from __future__ import annotations

import asyncio
import resource
import socket

import aiohttp
import pytest

from api import app as app_mod
from api import server
from tests import credfiles, servers
from tests.test_http_streams import target_event

LIMIT = 50
IDLE = 80


async def first_bytes(reader: asyncio.StreamReader) -> bytes:
    """What the server sends unasked: the refusal, or nothing within a second (accepted and idle)."""
    try:
        return await asyncio.wait_for(reader.read(4096), 1.0)
    except TimeoutError:
        return b""


async def test_connections_past_the_limit_are_refused_while_open_ones_and_the_database_work(settings):
    credfiles.add_anonymous(settings, "cluster")
    app = app_mod.make_app(settings.replace(max_connections=LIMIT))
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    async with server.serving(app, sock):
        base = f"http://127.0.0.1:{port}"
        gate = app[server.GATE]
        async with servers.session(connector=aiohttp.TCPConnector(limit=1)) as kept:
            async with kept.get(base + "/healthz") as resp:
                assert resp.status == 200
            assert gate.open == 1

            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(IDLE)]
            async with asyncio.timeout(30):
                while gate.open + gate.refused < 1 + IDLE:
                    await asyncio.sleep(0.01)
            assert (gate.open, gate.refused) == (LIMIT, 1 + IDLE - LIMIT)

            answers = await asyncio.gather(*(first_bytes(reader) for reader, _ in idle))
            refused = [a for a in answers if a]
            assert len(refused) == 1 + IDLE - LIMIT
            assert all(a.startswith(b"HTTP/1.1 503 ") and b"Retry-After: " in a
                       and b"application/problem+json" in a for a in refused)

            async with kept.get(base + "/healthz") as resp:
                assert resp.status == 200
            async with kept.post(base + "/v1/streams/target-kept/events",
                                 json={"events": [target_event("kept")]}) as resp:
                assert resp.status == 201, await resp.text()
            async with kept.get(base + "/readyz") as resp:
                assert resp.status == 200, await resp.text()
            assert gate.open == LIMIT

            for _, writer in idle:
                writer.close()
            async with asyncio.timeout(30):
                while gate.open > 1:
                    await asyncio.sleep(0.01)
        async with servers.session() as fresh, fresh.get(base + "/healthz") as resp:
            assert resp.status == 200


@pytest.mark.parametrize(("configured", "fd_limit", "expected"), [
    (50, 100_000, 50),
    (0, 65_536, 65_536 - 256),
    (0, 200, 16),
])
def test_the_default_connection_limit_leaves_the_reserve_of_the_file_descriptor_limit(
        settings, configured, fd_limit, expected):
    assert server.connection_limit(settings.replace(max_connections=configured), fd_limit) == expected


def test_the_soft_file_descriptor_limit_is_raised_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and soft == hard and hard > 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard // 2, hard))
        assert server.raise_fd_limit() == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        now = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert now[0] == now[1] or now[1] == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
