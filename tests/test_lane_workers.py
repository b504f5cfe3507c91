"""The expensive lane's worker processes (api/workers.py, api/laneworker.py): they answer byte for
byte what the routes answered in-process, run at idle CPU priority with a deprioritised database
backend and no secret, fail a request they die during with 503 and are replaced, exit when idle,
and concurrent verifies of one range share one run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import msgspec
import pytest

from api import app as app_mod
from api import lanes, laneworker
from ledger import verify as verify_mod
from projections import replay, views
from tests.test_lanes import registered, seed, status_of

PROBLEM = "application/problem+json"
SCHED_IDLE = 5


@pytest.fixture
async def app(settings, request):
    options = {"expensive_idle_exit": 60.0, "client_expensive_limit": 100, **getattr(request, "param", {})}
    return app_mod.make_app(settings.replace(**options))


def tuned(**options):
    return pytest.mark.parametrize("app", [options], indirect=True, ids=["tuned"])


def stat(pid: int, of: int | None = None) -> list[str]:
    """/proc/<pid>/stat's fields (a thread's: ``of`` its process), numbered as proc(5) numbers them
    from 1 (index 0 is unused)."""
    text = Path(f"/proc/{of}/task/{pid}/stat" if of is not None else f"/proc/{pid}/stat").read_text()
    return ["", text[:text.index(" (")], "comm", *text[text.rindex(")") + 2:].split()]


def tasks(pid: int) -> list[int]:
    return [int(entry.name) for entry in Path(f"/proc/{pid}/task").iterdir()]


def proc(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def metric(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


async def until(condition, seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def test_the_answers_are_the_folds_and_chains_computed_in_process(client, store, db):
    head = await seed(store, 1500)
    for position in (0, 700, head):
        answer = await client.get(f"/v1/state?at={position}")
        assert answer.status == 200
        current = await replay.head(db)
        fleet = await replay.fleet_at(db, position)
        assert await answer.read() == msgspec.json.encode({"at": str(position), "head": current,
                                                           **views.state(fleet, None)})
    for query, first, last in (("", 1, None), ("?from=3&to=900", 3, 900)):
        answer = await client.get(f"/v1/verify{query}")
        assert answer.status == 200
        assert await answer.read() == msgspec.json.encode((await verify_mod.chain(db, first, last)).as_dict())
    beyond = await client.get(f"/v1/state?at={head + 1000}")
    assert beyond.status == 422 and (await beyond.json(content_type=None))["errors"][0]["field"] == "at"
    after = await client.get(f"/v1/verify?from={head + 1000}")
    assert after.status == 422 and (await after.json(content_type=None))["errors"][0]["field"] == "from"


async def test_a_worker_runs_at_idle_priority_its_backend_at_nice_19_and_holds_no_secret(client, store, settings):
    head = await seed(store, 500)
    assert (await client.get(f"/v1/state?at={head}")).status == 200
    workers = client.app[lanes.LANE].workers
    [pid] = workers.pids()
    threads = tasks(pid)
    assert len(threads) > 1  # the folds' thread too (a thread's priority is its own)
    for thread in threads:
        fields = stat(thread, pid)
        assert int(fields[19]) == 19 and int(fields[41]) == SCHED_IDLE, fields
    [backend] = workers.backends()
    assert int(stat(backend)[19]) == 19  # the database runs here, as this user's or as root's child
    assert int(stat(backend)[4]) != pid  # the backend is PostgreSQL's, not a process of the worker
    argv = proc(pid, "cmdline").split(b"\0")
    assert argv[1:3] == [b"-m", b"api.laneworker"]
    environment = proc(pid, "environ")
    assert b"LEDGER_" not in environment
    password = settings.database_url.split("@")[0].rpartition(":")[2].encode()
    for secret in (settings.database_url.encode(), password):
        if secret:
            assert secret not in b"".join(argv) and secret not in environment


async def test_a_worker_killed_during_a_request_gives_503_and_the_next_request_is_served(client, store):
    head = await seed(store, 500)
    first = await client.get(f"/v1/state?at={head}")
    assert first.status == 200
    expected = await first.read()
    lane = client.app[lanes.LANE]
    [pid] = lane.workers.pids()
    os.kill(pid, signal.SIGSTOP)  # it takes the next request, and cannot answer it
    try:
        asked = asyncio.create_task(client.get(f"/v1/state?at={head}"))
        await until(lambda: lane.busy == 1)
        await asyncio.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    finally:
        os.kill(pid, signal.SIGCONT)
    status, retry_after, content_type = await status_of(await asked)
    assert (status, content_type) == (503, PROBLEM) and retry_after is not None and int(retry_after) > 0
    again = await client.get(f"/v1/state?at={head}")
    assert again.status == 200 and await again.read() == expected
    assert pid not in lane.workers.pids() and len(lane.workers.pids()) == 1
    text = await (await client.get("/metrics")).text()
    assert metric(text, "ledger_lane_workers_lost_total") == 1
    assert metric(text, "ledger_lane_workers_started_total") == 2


@tuned(expensive_idle_exit=0.2)
async def test_workers_exit_once_the_lane_has_been_idle(client, store):
    head = await seed(store, 500)
    lane = client.app[lanes.LANE]
    answers = await asyncio.gather(*(client.get(f"/v1/state?at={head - n}") for n in range(3)),
                                   client.get("/v1/verify"))
    assert [answer.status for answer in answers] == [200] * 4
    started = lane.workers.started
    assert 1 <= started <= lane.limit
    await until(lambda: not lane.workers.pids())
    text = await (await client.get("/metrics")).text()
    assert metric(text, "ledger_lane_workers") == 0 and metric(text, "ledger_lane_workers_lost_total") == 0
    assert (await client.get("/v1/verify")).status == 200  # started again on demand
    assert lane.workers.started == started + 1


async def test_concurrent_verifies_of_one_range_share_one_run(client, store):
    await seed(store, 1000)
    lane = client.app[lanes.LANE]
    assert (await client.get("/v1/verify?to=800")).status == 200
    [pid] = lane.workers.pids()
    os.kill(pid, signal.SIGSTOP)  # the next run cannot end before every request has joined it
    try:
        asked = [asyncio.create_task(client.get("/v1/verify?to=900")) for _ in range(5)]
        await until(lambda: lane.coalesced == 4)
    finally:
        os.kill(pid, signal.SIGCONT)
    answers = await asyncio.gather(*asked)
    assert [answer.status for answer in answers] == [200] * 5
    bodies = {await answer.read() for answer in answers}
    assert len(bodies) == 1 and msgspec.json.decode(bodies.pop())["to"] == 900
    text = await (await client.get("/metrics")).text()
    assert metric(text, 'ledger_expensive_runs_total{kind="verify"}') == 2
    assert metric(text, "ledger_expensive_coalesced_total") == 4
    other = await client.get("/v1/verify?to=901")  # another range is a run of its own
    assert other.status == 200 and lane.runs["verify"] == 3


async def test_a_worker_whose_database_connection_ended_connects_again(client, store, db):
    await store.append("target-x", "any", [registered("x")])
    assert (await client.get("/v1/verify")).status == 200
    workers = client.app[lanes.LANE].workers
    [pid], [backend] = workers.pids(), workers.backends()
    assert await db.fetchval("SELECT pg_terminate_backend($1)", backend)
    await until(lambda: not alive(backend))
    again = await client.get("/v1/verify?to=1")
    assert again.status == 200 and (await again.json())["ok"]
    assert workers.pids() == [pid]
    [renewed] = workers.backends()
    assert renewed != backend and int(stat(renewed)[19]) == 19


async def test_a_worker_that_dies_while_idle_is_logged_with_its_exit_code_and_replaced(client, store, caplog):
    head = await seed(store, 500)
    assert (await client.get(f"/v1/state?at={head}")).status == 200
    workers = client.app[lanes.LANE].workers
    [pid] = workers.pids()
    os.kill(pid, signal.SIGKILL)
    await until(lambda: workers.lost == 1 and not workers.pids())
    assert any(f"lane worker {pid} exited unasked (exit code -9)" in r.getMessage() for r in caplog.records)
    assert (await client.get(f"/v1/state?at={head}")).status == 200
    assert workers.started == 2 and workers.lost == 1


@pytest.mark.parametrize("dsn, here", [
    ("postgresql://ledger@127.0.0.1:5432/ledger", True),
    ("postgresql://ledger@localhost/ledger", True),
    ("postgresql:///ledger?host=/run/postgresql", True),
    ("postgresql://ledger@10.0.0.5:5432/ledger", False),
    ("postgresql://ledger@db.internal/ledger", False),
    ("postgresql:///ledger?host=/run/postgresql&host=db.internal", False),
])
async def test_a_backend_is_deprioritised_only_when_the_database_is_on_this_host(db, dsn, here):
    backend = int(await db.fetchval("SELECT pg_backend_pid()"))
    before = os.getpriority(os.PRIO_PROCESS, backend)
    try:
        found, why_not = await laneworker.deprioritise_backend(db, dsn)
        assert found == backend
        if here:
            assert why_not == "" and os.getpriority(os.PRIO_PROCESS, backend) == 19
        else:  # what api/workers.py logs at INFO; the backend is left as it was
            assert why_not == "the database is on another host"
            assert os.getpriority(os.PRIO_PROCESS, backend) == before
    finally:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, backend, before)  # root may lower it back; else it ends with the test
