"""Load isolation between requests: cheap requests are served while the expensive lane is full,
expensive ones past it get 503 + Retry-After, and one token past its own limits gets 429 while
another token is served."""

from __future__ import annotations

import asyncio
import random
import re
import uuid

import pytest

from api import app as app_mod
from api import lanes
from ledger import records
from tests import credfiles, tokens_support
from tests.test_http_streams import post, target_event

PROBLEM = "application/problem+json"


def registered(target: str) -> records.NewEvent:
    return records.NewEvent(uuid.uuid4(), "TargetRegistered", {"target": target, "labels": {"n": target}})


@pytest.fixture(autouse=True)
def cluster_credential(settings):
    """The credential the cheap appends' targets name (the rules refuse a target without one)."""
    credfiles.add_anonymous(settings, "cluster")


@pytest.fixture
async def app(settings, request):
    return app_mod.make_app(settings.replace(**getattr(request, "param", {})))


def tuned(**options):
    return pytest.mark.parametrize("app", [options], indirect=True, ids=["tuned"])


async def seed(store, count: int) -> int:
    for start in range(0, count, 500):
        await store.append(f"target-t{start}", "any", [registered(f"t{start}") for _ in range(500)])
    return count


async def status_of(resp) -> tuple[int, str | None, str]:
    async with resp:
        await resp.read()
        return resp.status, resp.headers.get("Retry-After"), resp.content_type


@tuned(expensive_concurrency=2, expensive_wait=0.05, client_expensive_limit=1000)
async def test_cheap_requests_are_served_while_the_expensive_lane_is_saturated(client, store):
    head = await seed(store, 3000)
    lane = client.app[lanes.LANE]
    saw_full = asyncio.Event()

    async def watch() -> None:
        while not saw_full.is_set():
            if lane.busy == lane.limit:
                saw_full.set()
            await asyncio.sleep(0.001)

    async def replay() -> tuple[int, str | None, str]:
        return await status_of(await client.get(f"/v1/state?at={random.randint(1, head)}"))

    async def cheap(i: int) -> list[int]:
        await saw_full.wait()
        statuses = [
            (await status_of(await post(client, f"target-cheap-{i}",
                                        {"events": [target_event(f"cheap-{i}")]})))[0],
            (await status_of(await client.get("/v1/digest")))[0],
            (await status_of(await client.get("/v1/streams/target-t0?limit=1")))[0],
            (await status_of(await client.get("/healthz")))[0],
        ]
        return statuses

    watcher = asyncio.create_task(watch())
    expensive = [asyncio.create_task(replay()) for _ in range(40)]
    cheap_results = await asyncio.wait_for(asyncio.gather(*(cheap(i) for i in range(10))), 60)
    expensive_results = await asyncio.wait_for(asyncio.gather(*expensive), 120)
    watcher.cancel()

    assert all(statuses == [201, 200, 200, 200] for statuses in cheap_results), cheap_results
    refused = [r for r in expensive_results if r[0] == 503]
    assert refused, "the lane never refused: it was not saturated"
    assert all(r[0] in (200, 503) for r in expensive_results), expensive_results
    assert all(r[1] is not None and int(r[1]) > 0 and r[2] == PROBLEM for r in refused)
    assert lane.refused == len(refused)
    metrics = await (await client.get("/metrics")).text()
    assert f"ledger_expensive_refused_total {float(len(refused))}" in metrics
    open_now = re.search(r"^ledger_connections_open (\d+)\.0$", metrics, re.MULTILINE)
    assert open_now is not None and int(open_now.group(1)) >= 1  # the test server runs behind the gate
    await asyncio.sleep(0)
    assert lane.busy == 0 and not lane.expensive


@tuned(client_expensive_limit=1, expensive_concurrency=2, expensive_wait=30.0)
async def test_a_token_past_its_expensive_limit_gets_429_while_another_token_is_served(client, store):
    head = await seed(store, 1000)
    other = await tokens_support.issue(client, "other-reader", role="viewer")
    lane = client.app[lanes.LANE]
    # The test holds every turn, so the first request of each token waits in the lane (and counts).
    for _ in range(lane.limit):
        await lane.turns.acquire()
    first = asyncio.create_task(client.get(f"/v1/state?at={head}"))
    theirs = asyncio.create_task(client.get(f"/v1/state?at={head - 1}", headers=other))
    async with asyncio.timeout(30):
        while sum(lane.expensive.values()) < 2:
            await asyncio.sleep(0.001)
    status, retry_after, content_type = await status_of(await client.get(f"/v1/verify?to={head}"))
    assert (status, content_type) == (429, PROBLEM) and retry_after is not None and int(retry_after) > 0
    for _ in range(lane.limit):
        lane.turns.release()
    assert (await status_of(await first))[0] == 200
    answer = await theirs
    assert answer.status == 200 and (await answer.json())["head"] == head + 1  # its token's TokenIssued


@tuned(client_stream_limit=2)
async def test_a_token_past_its_stream_limit_gets_429_while_another_token_streams(client):
    other = await tokens_support.issue(client, "other-watcher", role="viewer")
    mine = [await client.get("/v1/feed/live") for _ in range(2)]
    assert [r.status for r in mine] == [200, 200]
    refused = await client.get("/v1/feed/live")
    status, retry_after, content_type = await status_of(refused)
    assert (status, content_type) == (429, PROBLEM) and retry_after is not None
    theirs = await client.get("/v1/feed/live", headers=other)
    assert theirs.status == 200
    for resp in (*mine, theirs):
        resp.close()
    lane = client.app[lanes.LANE]
    async with asyncio.timeout(10):
        while lane.streams:
            await asyncio.sleep(0.01)
    again = await client.get("/v1/feed/live")
    assert again.status == 200
    again.close()


async def test_the_lanes_table_names_exactly_the_routes_served_on_the_expensive_lane_or_a_stream_slot(app):
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method not in ("GET", "HEAD"):
            assert lanes.kind_of(route.handler) == "cheap", f"{route.method} {resource}"
            continue
        key = ("GET", resource.canonical)
        expected = "expensive" if key in lanes.EXPENSIVE else "stream" if key in lanes.STREAMS else "cheap"
        assert lanes.kind_of(route.handler) == expected, f"{route.method} {resource.canonical}"
