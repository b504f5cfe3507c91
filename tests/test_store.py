"""The event store contract: positions, versions, expected versions, idempotency, atomicity,
immutability, the hash chain, reads and subscriptions — against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
import pytest

from ledger import errors, migrate, notifier, records, store, writer
from tests import chain


def registered(target: str, **labels: str) -> records.NewEvent:
    return records.NewEvent(uuid.uuid4(), "TargetRegistered", {"target": target, "labels": labels})


def paused(name: str, reason: str = "") -> records.NewEvent:
    return records.NewEvent(uuid.uuid4(), "DeploymentPaused", {"deployment": name, "reason": reason})


async def test_appends_get_dense_positions_and_stream_versions(store, db):
    a = await store.append("target-a", "no_stream", [registered("a"), registered("a")])
    b = await store.append("target-b", "any", [registered("b")])
    c = await store.append("target-a", 2, [registered("a")])
    assert (a.positions, a.first_version, a.last_version) == ((1, 2), 1, 2)
    assert (b.positions, b.first_version) == ((3,), 1)
    assert (c.positions, c.first_version) == ((4,), 3)
    assert [e.version for e in await store.read_stream("target-a")] == [1, 2, 3]
    assert await chain.check_log(db) == 4


@pytest.mark.parametrize(
    ("expected", "current_events", "ok"),
    [
        ("any", 0, True), ("any", 2, True),
        ("no_stream", 0, True), ("no_stream", 1, False),
        ("exists", 0, False), ("exists", 1, True),
        (2, 2, True), (1, 2, False), (3, 2, False),
    ],
)
async def test_expected_version_is_enforced(store, db, expected, current_events, ok):
    if current_events:
        await store.append("target-x", "any", [registered("x") for _ in range(current_events)])
    if ok:
        result = await store.append("target-x", expected, [registered("x")])
        assert result.last_version == current_events + 1
    else:
        with pytest.raises(errors.WrongExpectedVersion) as info:
            await store.append("target-x", expected, [registered("x")])
        assert (info.value.expected, info.value.actual) == (expected, current_events)
        assert await db.fetchval("SELECT count(*) FROM events") == current_events


async def test_retry_with_same_ids_returns_original_positions_and_writes_nothing(store, db):
    events = [registered("a"), registered("a")]
    first = await store.append("target-a", "no_stream", events)
    await store.append("target-b", "any", [registered("b")])
    again = await store.append("target-a", "no_stream", events)
    assert again.positions == first.positions and again.duplicate
    assert (again.first_version, again.last_version) == (1, 2)
    assert await db.fetchval("SELECT count(*) FROM events") == 3


async def test_same_id_with_other_content_is_a_conflict(store, db):
    event = registered("a", region="eu")
    await store.append("target-a", "any", [event])
    changed = records.NewEvent(event.id, event.type, {"target": "a", "labels": {"region": "us"}})
    with pytest.raises(errors.EventIdConflict) as info:
        await store.append("target-a", "any", [changed])
    assert info.value.position == 1
    with pytest.raises(errors.EventIdConflict):
        await store.append("target-a", "any", [event, registered("a")])
    assert await db.fetchval("SELECT count(*) FROM events") == 1


async def test_a_conflict_fails_only_its_own_request_in_a_batch(store, db):
    await store.append("target-a", "any", [registered("a")])
    good = [store.append(f"target-g{i}", "no_stream", [registered(f"g{i}")] * 1) for i in range(20)]
    bad = store.append("target-a", "no_stream", [registered("a"), registered("a")])
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(results[-1], errors.WrongExpectedVersion)
    assert all(isinstance(r, records.AppendResult) for r in results[:-1])
    assert await db.fetchval("SELECT count(*) FROM events WHERE stream = 'target-a'") == 1
    assert await chain.check_log(db) == 21


async def test_a_request_with_a_repeated_id_is_refused_whole(store, db):
    event = registered("a")
    with pytest.raises(errors.InvalidEvent):
        await store.append("target-a", "any", [event, event])
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_content_postgres_refuses_fails_alone(store, db):
    bad = records.NewEvent(uuid.uuid4(), "DeploymentPaused", {"deployment": "d", "reason": "nul\u0000"})
    results = await asyncio.gather(
        store.append("deployment-d", "any", [bad]),
        store.append("deployment-e", "any", [paused("e")]),
        return_exceptions=True,
    )
    assert isinstance(results[0], errors.InvalidEvent)
    assert isinstance(results[1], records.AppendResult)
    assert await chain.check_log(db) == 1


async def test_updates_deletes_and_truncates_are_rejected(store, db):
    await store.append("target-a", "any", [registered("a")])
    for statement in ("UPDATE events SET type = 'X'", "DELETE FROM events", "TRUNCATE events"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await db.execute(statement)
    assert await chain.check_log(db) == 1


async def _racer(st: store.EventStore, stream: str, n: int, rng: random.Random) -> list[records.AppendResult]:
    done: list[records.AppendResult] = []
    while len(done) < n:
        version = await st.stream_version(stream)
        batch = [paused(stream.split("-", 1)[1], f"{len(done)}-{i}") for i in range(rng.randint(1, 4))]
        try:
            done.append(await st.append(stream, version or "no_stream", batch))
        except errors.WrongExpectedVersion:
            await asyncio.sleep(0)
    return done


async def test_sixteen_racing_writers_on_one_stream(store, db):
    rng = random.Random(1)
    results = await asyncio.gather(*(_racer(store, "deployment-hot", 8, rng) for _ in range(16)))
    flat = [r for rs in results for r in rs]
    versions = [v for r in flat for v in range(r.first_version, r.last_version + 1)]
    assert sorted(versions) == list(range(1, len(versions) + 1))
    for r in flat:
        assert list(r.positions) == list(range(r.positions[0], r.positions[0] + len(r.positions)))
    assert await chain.check_log(db) == len(versions)


async def test_sixteen_racing_writers_on_many_streams_and_two_writers(store, db, database_url):
    # A second store on the same database stands for a second process: its own pool and writer.
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    other = store.__class__(pool, notifier.Notifier(database_url))
    other_task = asyncio.create_task(other.writer.run())
    try:
        rng = random.Random(2)
        jobs = [
            _racer(store if i % 2 else other, f"deployment-s{i % 5}", 6, rng) for i in range(16)
        ]
        results = await asyncio.gather(*jobs)
    finally:
        other_task.cancel()
        await pool.close()
    total = sum(len(r.positions) for rs in results for r in rs)
    assert await chain.check_log(db) == total


async def test_read_all_filters_by_type_and_category_and_pages(store):
    await store.append("target-a", "any", [registered("a")])
    await store.append("deployment-d", "any", [paused("d"), paused("d")])
    await store.append("target-b", "any", [registered("b")])
    assert [e.position for e in await store.read_all(0, 2)] == [1, 2]
    assert [e.position for e in await store.read_all(2, 10)] == [3, 4]
    assert [e.stream for e in await store.read_all(0, 10, categories=["target"])] == ["target-a", "target-b"]
    assert [e.position for e in await store.read_all(0, 10, types=["DeploymentPaused"])] == [2, 3]
    with pytest.raises(errors.StreamNotFound):
        await store.read_stream("target-none")


async def test_one_notify_per_committed_batch(store, database_url):
    listener = await asyncpg.connect(database_url)
    got: list[str] = []
    await listener.add_listener(writer.NOTIFY_CHANNEL, lambda *a: got.append(a[-1]))
    try:
        await store.append("target-a", "any", [registered("a") for _ in range(25)])
        await asyncio.sleep(0.3)
        assert got == ["25"]
    finally:
        await listener.close()


async def _take(aiter, n: int) -> list[records.RecordedEvent]:
    out = []
    async for event in aiter:
        out.append(event)
        if len(out) == n:
            break
    return out


async def test_subscription_catches_up_then_follows_live(store):
    await store.append("target-a", "any", [registered("a") for _ in range(5)])
    sub = store.subscribe(2, batch=2)
    first = await asyncio.wait_for(_take(sub, 3), 5)
    assert [e.position for e in first] == [3, 4, 5]
    waiting = asyncio.create_task(_take(sub, 2))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await store.append("target-b", "any", [registered("b"), registered("b")])
    assert [e.position for e in await asyncio.wait_for(waiting, 5)] == [6, 7]


async def test_subscription_survives_a_dropped_connection(store, db):
    await asyncio.wait_for(store.notifier.connected.wait(), 5)
    sub = store.subscribe(0)
    waiting = asyncio.create_task(_take(sub, 2))
    await asyncio.sleep(0.1)
    killed = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert killed >= 1
    for _ in range(50):
        try:
            await store.append("target-a", "any", [registered("a")])
            break
        except errors.StoreUnavailable:
            await asyncio.sleep(0.1)
    await store.append("target-a", "any", [registered("a")])
    assert [e.position for e in await asyncio.wait_for(waiting, 10)] == [1, 2]


async def test_two_processes_migrating_at_once_apply_each_migration_once(pg_admin_url):
    name = "m_" + uuid.uuid4().hex[:10]
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f"CREATE DATABASE {name}")
    url = pg_admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        conns = [await asyncpg.connect(url) for _ in range(2)]
        applied = await asyncio.gather(*(migrate.migrate(c) for c in conns))
        assert sorted(applied[0] + applied[1]) == [n for _, n, _ in migrate.available()]
        assert await conns[0].fetchval("SELECT count(*) FROM schema_migrations") == len(migrate.available())
        for c in conns:
            await c.close()
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


async def test_large_batches_go_by_copy_with_one_notify_and_retry_idempotently(store, db, database_url):
    listener = await asyncpg.connect(database_url)
    got: list[str] = []
    await listener.add_listener(writer.NOTIFY_CHANNEL, lambda *a: got.append(a[-1]))
    try:
        first = [paused("big", str(i)) for i in range(200)]
        cold = await store.append("deployment-big", "no_stream", first)  # nothing remembered yet: checked path
        warm = await store.append("deployment-big", 200, [paused("big", str(i)) for i in range(200)])  # fast path
        again = await store.append("deployment-big", "no_stream", first)  # a retry: refused by COPY, then found
        await asyncio.sleep(0.3)
    finally:
        await listener.close()
    assert cold.positions == tuple(range(1, 201)) and warm.positions == tuple(range(201, 401))
    assert again.duplicate and again.positions == cold.positions
    assert got == ["200", "400"]
    assert store.writer.stats.fast_path >= 1 and store.writer.stats.checked_path >= 2
    assert await chain.check_log(db) == 400


async def test_a_large_batch_planned_on_a_stale_head_is_refused_whole_then_written_after_the_truth(
    store, db, database_url
):
    # Another process appends between two of this writer's COPY batches: the one-message COPY
    # transaction planned from the remembered head is refused by the primary key, rolled back, and
    # the batch goes again the checked way, after the other process's event.
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    other = store.__class__(pool, notifier.Notifier(database_url))
    other_task = asyncio.create_task(other.writer.run())
    try:
        await store.append("deployment-big", "no_stream", [paused("big", str(i)) for i in range(200)])
        await store.append("deployment-big", 200, [paused("big", str(i)) for i in range(200)])
        fast = store.writer.stats.fast_path
        await other.append("deployment-small", "no_stream", [paused("small")])
        late = await store.append("deployment-big", 400, [paused("big", str(i)) for i in range(200)])
    finally:
        other_task.cancel()
        await pool.close()
    assert late.positions == tuple(range(402, 602)) and late.first_version == 401
    assert store.writer.stats.fast_path == fast  # the stale plan did not count as written
    assert store.writer.stats.resent == 0  # another process moved the head: no point sending it again
    assert not await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'")
    assert await chain.check_log(db) == 601
