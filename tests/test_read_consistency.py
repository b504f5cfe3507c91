"""Reads see every write acknowledged before they arrive, by default, in this process and in another.

Each round writes, then reads at once from a random read endpoint with no query parameter, while
other tasks keep writing: the answer must reflect the write just acknowledged, and its ``as_of``
every write any writer had acknowledged before the GET was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from api import app as app_mod
from api import keys
from ledger import settings as settings_mod
from tests.projected import live_client, register, submit  # noqa: F401 - fixture

ROUNDS = 300
CROSS_ROUNDS = 200


class Acked:
    """The highest position any writer has been answered with."""

    def __init__(self) -> None:
        self.position = 0

    def note(self, position: int) -> None:
        self.position = max(self.position, position)


async def _json(client: TestClient, path: str) -> Any:
    response = await client.get(path)
    assert response.status == 200, (path, response.status, await response.text())
    return await response.json()


def _fresh(body: dict[str, Any], floor: int, path: str) -> None:
    assert body["as_of"] >= floor, f"{path} answered as of {body['as_of']}, a write at {floor} was acknowledged"


async def _background(client: TestClient, index: int, acked: Acked, stop: asyncio.Event) -> None:
    jitter = random.Random(index)
    round_ = 0
    while not stop.is_set():
        round_ += 1
        await asyncio.sleep(jitter.random() * 0.01)  # land at varied moments of the rounds
        if round_ % 2:
            answer = await register(client, f"bg{index}-{round_ % 7}", round=str(round_))
        else:
            answer = await submit(client, f"bg{index}", selector=f"bg={index}", value=str(round_))
        acked.note(answer["position"])


@contextlib.asynccontextmanager
async def _writing(clients: list[TestClient], acked: Acked, writers: int = 2) -> Any:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_background(clients[i % len(clients)], i, acked, stop)) for i in range(writers)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def _target_round(writer: TestClient, reader: TestClient, rng: random.Random, n: int,
                        acked: Acked) -> str:
    name = f"t{rng.randrange(20)}"
    written = await register(writer, name, round=str(n))
    acked.note(written["position"])
    floor = acked.position
    path = rng.choice([f"/v1/targets/{name}", "/v1/targets", f"/v1/targets?selector=round%3D{n}", "/v1/state"])
    body = await _json(reader, path)
    if path == "/v1/state":
        assert body["head"] >= floor
        found = next(t for t in body["targets"] if t["name"] == name)
    else:
        _fresh(body, floor, path)
        found = body if "targets" not in body else next((t for t in body["targets"] if t["name"] == name), None)
    assert found is not None and found["labels"]["round"] == str(n), (path, n, found)
    assert found["version"] >= written["version"]
    return path


async def _revision_round(writer: TestClient, reader: TestClient, rng: random.Random, n: int,
                          acked: Acked) -> str:
    name = f"d{rng.randrange(5)}"
    written = await submit(writer, name, selector="tier=none", value=str(n))
    acked.note(written["position"])
    floor = acked.position
    revision = written["revision"]
    path = rng.choice([f"/v1/deployments/{name}", "/v1/deployments", f"/v1/deployments/{name}/revisions?from_revision={revision}",
                       f"/v1/deployments/{name}/revisions/{revision}", f"/v1/deployments/{name}/diff", "/v1/state"])
    body = await _json(reader, path)
    if path.endswith(f"/revisions/{revision}"):
        assert body["manifests"][0]["data"]["k"] == str(n)
    elif path.endswith("/diff"):
        assert body["to"] == revision, body
        assert revision == 1 or f"+  k: '{n}'" in body["diff"].splitlines(), body
    elif path == "/v1/state":
        assert body["head"] >= floor
        found = next(d for d in body["deployments"] if d["name"] == name)
        assert found["current_revision"] == revision
    else:
        _fresh(body, floor, path)
        if "revisions" in body:
            assert [r["revision"] for r in body["revisions"]] == [revision]
        else:
            found = body if "deployments" not in body else next(d for d in body["deployments"] if d["name"] == name)
            assert found["current_revision"] == revision, (path, found)
    return path


async def _pause_round(writer: TestClient, reader: TestClient, rng: random.Random, n: int, acked: Acked) -> str:
    name = f"d{rng.randrange(5)}"
    if (await writer.get(f"/v1/deployments/{name}")).status == 404:
        return await _revision_round(writer, reader, rng, n, acked)
    current = await _json(writer, f"/v1/deployments/{name}")
    action = "resume" if current["paused"] else "pause"
    response = await writer.post(f"/v1/deployments/{name}/{action}", json={"reason": f"round {n}"})
    assert response.status in (200, 201), await response.text()
    acked.note((await response.json())["position"])
    floor = acked.position
    path = rng.choice([f"/v1/deployments/{name}", "/v1/deployments"])
    body = await _json(reader, path)
    _fresh(body, floor, path)
    found = body if "deployments" not in body else next(d for d in body["deployments"] if d["name"] == name)
    assert found["paused"] is (action == "pause"), (path, found)
    return path


Round = Callable[[TestClient, TestClient, random.Random, int, Acked], Awaitable[str]]
ROUND_KINDS: list[Round] = [_target_round, _target_round, _revision_round, _revision_round, _pause_round]


async def test_every_read_reflects_the_writes_acknowledged_before_it(live):
    rng = random.Random(9)
    acked = Acked()
    seen: set[str] = set()
    async with _writing([live], acked):
        for n in range(ROUNDS):
            seen.add((await rng.choice(ROUND_KINDS)(live, live, rng, n, acked)).split("?")[0])
    assert len(seen) > 10, seen


async def _two_instances(aiohttp_client: Any, settings: settings_mod.Settings) -> list[TestClient]:
    """Two service processes on one database, as ``ledger serve`` runs them behind a load balancer:
    each with its projector on, one holding the projection lock and the other standing by."""
    live = settings.replace(projector=True, read_wait_timeout=20.0)
    return [await aiohttp_client(app_mod.make_app(live)), await aiohttp_client(app_mod.make_app(live))]


async def test_a_read_in_another_instance_reflects_writes_acknowledged_by_the_first(aiohttp_client, settings):
    clients = await _two_instances(aiohttp_client, settings)
    rng = random.Random(10)
    acked = Acked()
    async with _writing(clients, acked):
        for n in range(CROSS_ROUNDS):
            writer, reader = rng.sample(clients, 2)
            await rng.choice(ROUND_KINDS)(writer, reader, rng, n, acked)


@contextlib.contextmanager
def _frozen(pid: int) -> Any:
    """The PostgreSQL backend ``pid`` stopped (SIGSTOP) for the block, and always continued after."""
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        assert b"postgres" in cmdline.read(), f"{pid} is not a local PostgreSQL backend"
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_a_read_waits_for_a_commit_whose_notification_is_still_on_its_way(aiohttp_client, settings):
    live = settings.replace(projector=True, read_wait_timeout=20.0)
    reader = await aiohttp_client(app_mod.make_app(live))
    ready = await register(reader, "eu-1", round="0")
    await _json(reader, "/v1/targets/eu-1")  # this instance's projector (the only one yet) holds the lock
    writer = await aiohttp_client(app_mod.make_app(live))
    notifier = reader.app[keys.STORE].notifier
    await asyncio.wait_for(notifier.connected.wait(), 10)
    assert notifier.backend_pid is not None and ready["position"] == 1
    with _frozen(notifier.backend_pid):
        # The reader's listening backend cannot pass the notification on: it is signalled, not sent.
        written = await register(writer, "eu-1", round="1")
        reading = asyncio.create_task(reader.get("/v1/targets/eu-1"))
        await asyncio.sleep(0.3)
    response = await asyncio.wait_for(reading, 20)
    assert response.status == 200
    body = await response.json()
    assert (body["labels"]["round"], body["version"]) == ("1", 2)
    assert body["as_of"] >= written["position"]


async def test_min_position_beyond_the_head_is_422_at_once_naming_it_and_the_head(aiohttp_client, settings):
    client = await aiohttp_client(app_mod.make_app(settings.replace(projector=True, read_wait_timeout=600.0)))
    head = (await register(client, "eu-1"))["position"]
    for path in ("/v1/targets", "/v1/targets/eu-1", "/v1/deployments", "/v1/deployments/web",
                 "/v1/deployments/web/revisions", "/v1/deployments/web/revisions/1", "/v1/deployments/web/diff"):
        for query in (f"min_position={head + 1}", f"min_position={head + 10**12}&consistency=eventual"):
            async with asyncio.timeout(10):  # a bound, not a measurement: the old wait was read_wait_timeout
                response = await client.get(f"{path}?{query}")
            assert response.status == 422, (path, query, await response.text())
            problem = await response.json()
            assert (problem["field"], problem["head"]) == ("min_position", head), problem
            assert response.content_type == "application/problem+json"
    fine = await client.get(f"/v1/targets?min_position={head}")
    assert fine.status == 200 and [t["name"] for t in (await fine.json())["targets"]] == ["eu-1"]


async def test_eventual_reads_answer_from_the_read_models_as_they_are_without_waiting(aiohttp_client, settings):
    # No projector anywhere: the read models never move, so only a read that does not wait can answer.
    waiting = await aiohttp_client(app_mod.make_app(settings.replace(read_wait_timeout=0.2)))
    eventual = await aiohttp_client(app_mod.make_app(settings.replace(read_wait_timeout=600.0)))
    await register(waiting, "eu-1")
    behind = await waiting.get("/v1/targets")
    assert behind.status == 504 and (await behind.json())["min_position"] == 1
    async with asyncio.timeout(10):  # a bound, not a measurement: waiting would take 600 s
        now = await eventual.get("/v1/targets?consistency=eventual")
        missing = await eventual.get("/v1/targets/eu-1?consistency=eventual")
    assert now.status == 200 and await now.json() == {"as_of": 0, "targets": []}
    assert missing.status == 404
    bad = await eventual.get("/v1/targets?consistency=sometimes")
    assert bad.status == 422 and (await bad.json())["field"] == "consistency"
