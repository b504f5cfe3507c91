"""The live feed: Server-Sent Events from a cursor into the live head, one shared tail, slow
consumers cut off with a final message, heartbeats, and clean ends at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import Callable

import pytest

from api import app as app_mod
from api import lanes, live
from ledger import records
from tests import servers


def paused(name: str, reason: str = "") -> records.NewEvent:
    return records.NewEvent(uuid.uuid4(), "DeploymentPaused", {"deployment": name, "reason": reason})


def registered(target: str) -> records.NewEvent:
    return records.NewEvent(uuid.uuid4(), "TargetRegistered", {"target": target})


CONFIG = live.Config(capacity=16, page=7, write_timeout=5.0)


def tuned(**options):
    """Run the test against an app with these heartbeat/config options."""
    return pytest.mark.parametrize("app", [options], indirect=True, ids=["tuned"])


@pytest.fixture
async def app(settings, request):
    options = getattr(request, "param", {})
    # One token opens every stream here: the per-client stream limit has its own tests (test_lanes.py).
    application = app_mod.make_app(settings.replace(sse_heartbeat=options.get("heartbeat", 30.0),
                                                    client_stream_limit=100))
    application[live.CONFIG] = options.get("config", CONFIG)
    return application


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def next_block(content) -> dict[str, str]:
    """The next SSE block: its fields, with comment lines joined under ``comment``."""
    block: dict[str, str] = {}
    while True:
        line = (await content.readline()).decode()
        if line == "":
            return block or {"eof": ""}
        line = line.rstrip("\n")
        if not line:
            if block:
                return block
            continue
        name, _, value = line.partition(":")
        key = name or "comment"
        block[key] = block.get(key, "") + value.removeprefix(" ")


async def events(content, count: int) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    while len(got) < count:
        block = await next_block(content)
        assert "eof" not in block, f"stream ended after {len(got)} events"
        if "id" in block:
            got.append(block)
    return got


async def test_catch_up_joins_the_live_tail_without_gap_or_duplicate(client, store):
    await store.append("target-a", "any", [registered("a") for _ in range(40)])
    resp = await client.get("/v1/feed/live?after=0")
    assert resp.headers["Content-Type"] == "text/event-stream"

    async def writer() -> None:
        for i in range(30):
            await store.append(f"deployment-d{i % 3}", "any", [paused(f"d{i % 3}", str(i))] * 1)

    writing = asyncio.create_task(writer())
    got = await asyncio.wait_for(events(resp.content, 70), 20)
    await writing
    assert [int(b["id"]) for b in got] == list(range(1, 71))
    assert got[0]["event"] == "TargetRegistered"
    cloud_event = json.loads(got[45]["data"])
    assert cloud_event["position"] == 46 and cloud_event["type"] == "dev.ledger.DeploymentPaused"
    resp.close()


async def test_last_event_id_wins_over_after_and_resumes_exactly_after_it(client, store):
    await store.append("target-a", "any", [registered("a") for _ in range(10)])
    resp = await client.get("/v1/feed/live?after=2", headers={"Last-Event-ID": "6"})
    assert [int(b["id"]) for b in await events(resp.content, 4)] == [7, 8, 9, 10]
    resp.close()
    resp = await client.get("/v1/feed/live?after=8")
    assert [int(b["id"]) for b in await events(resp.content, 2)] == [9, 10]
    resp.close()


async def test_without_a_cursor_the_stream_starts_at_the_live_head(client, store):
    await store.append("target-a", "any", [registered("a") for _ in range(3)])
    resp = await client.get("/v1/feed/live")
    await until(lambda: client.app[live.TAIL].readers == 1)
    await store.append("target-b", "any", [registered("b")])
    assert [int(b["id"]) for b in await events(resp.content, 1)] == [4]
    resp.close()


async def test_filters_apply_to_catch_up_and_live(client, store):
    await store.append("target-a", "any", [registered("a")])
    await store.append("deployment-d", "any", [paused("d")])
    resp = await client.get("/v1/feed/live?after=0&category=deployment")
    assert [b["id"] for b in await events(resp.content, 1)] == ["2"]
    await store.append("target-b", "any", [registered("b")])
    await store.append("deployment-e", "any", [paused("e")])
    assert [b["id"] for b in await events(resp.content, 1)] == ["4"]
    resp.close()


async def test_bad_last_event_id_is_a_problem(client):
    resp = await client.get("/v1/feed/live", headers={"Last-Event-ID": "seven"})
    assert resp.status == 422
    assert (await resp.json(content_type=None))["field"] == "Last-Event-ID"


async def test_a_cursor_beyond_the_head_is_422_naming_where_it_came_from(client, store):
    await store.append("target-a", "any", [registered("a") for _ in range(3)])
    for url, headers, field in (("/v1/feed/live?after=4", {}, "after"),
                                ("/v1/feed/live?after=1", {"Last-Event-ID": "9"}, "Last-Event-ID"),
                                ("/v1/feed/live", {"Last-Event-ID": str(2**62)}, "Last-Event-ID")):
        async with asyncio.timeout(10):  # a bound, not a measurement: it used to wait for good
            resp = await client.get(url, headers=headers)
            assert resp.status == 422, (url, headers)
            problem = await resp.json(content_type=None)
        assert resp.content_type == "application/problem+json"
        assert (problem["field"], problem["head"]) == (field, 3), problem
    resp = await client.get("/v1/feed/live", headers={"Last-Event-ID": "3"})
    await until(lambda: client.app[live.TAIL].readers == 1)
    await store.append("target-b", "any", [registered("b")])
    assert [int(b["id"]) for b in await events(resp.content, 1)] == [4]
    resp.close()


@tuned(heartbeat=0.05)
async def test_a_quiet_stream_sends_heartbeat_comments(client):
    resp = await client.get("/v1/feed/live")
    assert (await next_block(resp.content)) == {"retry": "2000"}
    assert (await next_block(resp.content)) == {"comment": "heartbeat"}
    resp.close()


async def test_fifty_subscribers_share_one_tail_and_hold_no_connection_each(client, store, db, settings):
    await store.append("target-a", "any", [registered("a") for _ in range(20)])
    streams = [await client.get("/v1/feed/live?after=0") for _ in range(50)]
    first = await asyncio.gather(*(events(s.content, 20) for s in streams))
    await until(lambda: client.app[live.TAIL].readers == 50)
    await until(lambda: client.app[live.TAIL].position == 20)
    backends = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
    # The pool, the expensive lane's pool (catch-up reads), the log's LISTEN connection, the
    # projection-progress LISTEN connection, the readiness probe's connection, this test's own.
    assert backends <= settings.db_pool_size + settings.expensive_concurrency + lanes.CATCH_UP_READS + 4
    await store.append("target-b", "any", [registered("b") for _ in range(5)])
    rest = await asyncio.gather(*(events(s.content, 5) for s in streams))
    for head, tail in zip(first, rest, strict=True):
        assert [int(b["id"]) for b in head + tail] == list(range(1, 26))
    for s in streams:
        s.close()
    await until(lambda: client.app[live.TAIL].readers == 0, 30)


async def _stalled_reader(client, query: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (client.server.host, client.server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"GET /v1/feed/live?{query} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
                 f"Authorization: Bearer {servers.ADMIN_TOKEN}\r\n\r\n".encode())
    await writer.drain()
    await until(lambda: client.app[live.TAIL].readers == 1)
    return reader, writer


BIG = "x" * 40_000


@tuned(config=live.Config(capacity=8, page=8, write_timeout=60.0))
async def test_a_consumer_that_falls_behind_the_ring_gets_an_overflow_naming_its_last_position(
        client, store):
    reader, writer = await _stalled_reader(client, "after=0")
    for i in range(20):
        await store.append("deployment-big", "any", [paused("big", f"{i}{BIG}") for _ in range(10)])
    await until(lambda: client.app[live.TAIL].position == 200)
    body = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    text = body.decode(errors="replace")
    positions = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    assert positions == list(range(1, len(positions) + 1))
    assert 0 < len(positions) < 200
    overflow = text[text.index("event: overflow"):].splitlines()[1]
    assert json.loads(overflow.removeprefix("data: "))["last_position"] == positions[-1]
    await until(lambda: client.app[live.TAIL].readers == 0)


@tuned(config=live.Config(capacity=4096, write_timeout=0.2, final_write_timeout=0.2))
@pytest.mark.parametrize("stalls", ["live", "catching up"])
async def test_a_stalled_consumer_is_let_go_after_the_write_timeout(client, store, stalls):
    async def append_big() -> None:
        for i in range(20):
            await store.append("deployment-big", "any", [paused("big", f"{i}{BIG}") for _ in range(10)])

    if stalls == "catching up":
        await append_big()
    reader, writer = await _stalled_reader(client, "after=0")
    if stalls == "live":
        await append_big()
    await until(lambda: client.app[live.TAIL].readers == 0)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(10):
            while chunk := await reader.read(1 << 20):
                received += chunk
    writer.close()
    positions = [int(line[4:]) for line in received.decode(errors="replace").splitlines()
                 if line.startswith("id: ")]
    assert positions == list(range(1, len(positions) + 1)) and len(positions) < 200


async def test_open_streams_end_cleanly_at_shutdown(client, store):
    await store.append("target-a", "any", [registered("a")])
    resp = await client.get("/v1/feed/live?after=0")
    assert [b["id"] for b in await events(resp.content, 1)] == ["1"]
    closing = asyncio.create_task(client.server.close())
    last = await asyncio.wait_for(next_block(resp.content), 10)
    assert "shutting down" in last["comment"]
    assert await asyncio.wait_for(next_block(resp.content), 10) == {"eof": ""}
    await asyncio.wait_for(closing, 10)
    resp.close()
