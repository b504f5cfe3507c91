"""SSE subscribers that stop reading: each is cut off within the write timeout, the bytes the
service holds for them stay bounded per subscriber and return to zero when they are gone, and a
well-behaved live reader keeps getting events meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import uuid

import pytest

from api import app as app_mod
from api import live
from ledger import records
from tests import servers
from tests.test_live import events, until

STALLED = 12
QUEUE_BYTES = 16 * 1024
SEND_BUFFER = 4096
PAYLOAD = "x" * 4000


def paused(name: str, reason: str) -> records.NewEvent:
    return records.NewEvent(uuid.uuid4(), "DeploymentPaused", {"deployment": name, "reason": reason})


@pytest.fixture
async def app(settings):
    return app_mod.make_app(settings.replace(
        sse_write_timeout=1.0, sse_queue_bytes=QUEUE_BYTES, sse_send_buffer=SEND_BUFFER,
        sse_heartbeat=30.0, client_stream_limit=100))


async def stalled_reader(client) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An SSE request over a raw socket with a small receive buffer that is then never read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (client.server.host, client.server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /v1/feed/live?after=0 HTTP/1.1\r\nHost: test\r\n"
                 b"Authorization: Bearer %s\r\n\r\n" % servers.ADMIN_TOKEN.encode())
    await writer.drain()
    return reader, writer


async def test_stalled_subscribers_are_cut_off_with_bounded_buffers_while_a_live_reader_is_served(
        client, store):
    for i in range(20):
        await store.append("deployment-big", "any", [paused("big", f"{i}-{j}{PAYLOAD}") for j in range(25)])
    app = client.app
    reader_resp = await client.get("/v1/feed/live")
    await until(lambda: app[live.TAIL].readers == 1)

    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, live.buffered(app))
            await asyncio.sleep(0.002)

    sampler = asyncio.create_task(sample())
    stalled = [await stalled_reader(client) for _ in range(STALLED)]
    await until(lambda: app[live.TAIL].readers == 1 + STALLED)
    await until(lambda: live.buffered(app) > 0)  # the stalled ones' buffers have filled

    await store.append("deployment-live", "any", [paused("live", str(i)) for i in range(5)])
    got = await asyncio.wait_for(events(reader_resp.content, 5), 10)
    assert [int(b["id"]) for b in got] == list(range(501, 506))

    # Cut off within the write timeout (1 s) plus the final write's (1 s); 20 s is the outer bound.
    await until(lambda: app[live.TAIL].readers == 1, 20)
    sampler.cancel()
    # Its queue, the transport's buffer up to the send buffer, and one chunk handed over past it.
    per_subscriber = QUEUE_BYTES + SEND_BUFFER + live.Config().chunk_bytes + 2 * len(PAYLOAD)
    assert 0 < peak <= STALLED * per_subscriber, (peak, STALLED * per_subscriber)
    assert live.buffered(app) == 0
    assert len(app[live.SUBSCRIBERS]) == 1
    metrics = await (await client.get("/metrics")).text()
    cut = {reason: float(m) for reason, m in re.findall(r'^ledger_sse_cut_off_total\{reason="(\w+)"\} (\S+)$',
                                                         metrics, re.MULTILINE)}
    assert sum(cut.values()) == STALLED and set(cut) == set(live.CUT_REASONS), cut

    for reader, writer in stalled:
        received = b""
        with contextlib.suppress(ConnectionResetError):
            async with asyncio.timeout(10):
                while chunk := await reader.read(1 << 20):
                    received += chunk
        writer.close()
        text = received.decode(errors="replace")
        positions = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
        assert positions == list(range(1, len(positions) + 1)) and len(positions) < 505

    await store.append("deployment-live", "any", [paused("live", "after")])
    assert [b["id"] for b in await asyncio.wait_for(events(reader_resp.content, 1), 10)] == ["506"]
    reader_resp.close()
