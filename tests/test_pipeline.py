"""The pipelined writer: batches planned from memory and sent before the one ahead has committed.

What keeps that safe is the guard of sql/010 (lock, then "the head is the event this batch was planned
after"), so it is tested on its own first, against real PostgreSQL; then the writer's handling of a
batch overtaken at the lock, and of a batch ahead that fails while the next is already sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid

import asyncpg
import pytest

from ledger import errors, hashing, notifier, records, writer
from tests import chain


def paused(name: str, reason: str = "") -> records.NewEvent:
    return records.NewEvent(uuid.uuid4(), "DeploymentPaused", {"deployment": name, "reason": reason})


async def _insert(conn: asyncpg.Connection, position: int, prev: str) -> str:
    digest = hashing.chain(prev, str(position).encode())
    await conn.execute(
        "INSERT INTO events (position, stream, version, id, type, data, metadata, recorded_at, prev_hash, hash)"
        " VALUES ($1::bigint, 'deployment-g', $1::int, $2, 'DeploymentPaused', '{}', '{}', now(), $3, $4)",
        position, uuid.uuid4(), prev, digest)
    return digest


async def test_the_guard_passes_only_at_the_planned_head(db):
    await db.execute("SELECT events_lock_at_head(0, $1)", hashing.GENESIS)  # empty log
    first = await _insert(db, 1, hashing.GENESIS)
    await db.execute("SELECT events_lock_at_head(1, $1)", first)
    with pytest.raises(asyncpg.SerializationError, match="planned after 0") as refused:
        await db.execute("SELECT events_lock_at_head(0, $1)", hashing.GENESIS)
    assert refused.value.detail == "1"  # the head it found, for the writer to tell overtaken from moved
    with pytest.raises(asyncpg.SerializationError):  # the right position after another event
        await db.execute("SELECT events_lock_at_head(1, $1)", hashing.GENESIS)


async def test_the_guard_waits_for_the_lock_and_then_sees_what_its_holder_committed(db, database_url):
    # The snapshot question: the guarded statement starts before the batch ahead commits, and must
    # still read that batch's last event once the lock is granted.
    first = await _insert(db, 1, hashing.GENESIS)
    ahead = await asyncpg.connect(database_url)
    behind = await asyncpg.connect(database_url)
    try:
        await ahead.execute("BEGIN")
        await ahead.execute("SELECT pg_advisory_xact_lock($1)", writer.APPEND_LOCK)
        second = await _insert(ahead, 2, first)
        waiting = asyncio.create_task(behind.execute("SELECT events_lock_at_head(2, $1)", second))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # queued behind the lock
        await ahead.execute("COMMIT")
        await asyncio.wait_for(waiting, 5)  # no serialization_failure: it read position 2
    finally:
        await ahead.close()
        await behind.close()


async def test_a_batch_overtaken_at_the_lock_is_sent_again_as_planned(store, db, monkeypatch):
    # Two connections, two backends: nothing orders their lock requests, so the batch sent second can
    # take the lock first and find the head short of what it was planned after. Reproduced here by
    # answering the first attempt of one batch the way PostgreSQL does in that race (our own method,
    # not the database client, stands in for the race); the writer must send the same plan again,
    # not forget its memory.
    w = store.writer
    await store.append("deployment-p", "no_stream", [paused("p", "warm")])  # memory from the checked path
    real_send = writer.BatchingWriter._send
    overtaken: list[int] = []

    async def send(self, conn, plan, *, again=False):  # type: ignore[no-untyped-def]
        if not again and not overtaken:
            overtaken.append(plan.base[0])
            refused = asyncpg.SerializationError("the log head moved")
            refused.detail = str(plan.base[0] - 1)  # the guard's DETAIL: the head it found
            return refused
        return await real_send(self, conn, plan, again=again)

    monkeypatch.setattr(writer.BatchingWriter, "_send", send)
    results = await asyncio.gather(*(store.append("deployment-p", "any", [paused("p", str(i))]) for i in range(20)))
    assert overtaken and w.stats.resent == 1 and w.stats.checked_path == 1
    assert sorted(p for r in results for p in r.positions) == list(range(2, 22))
    assert await chain.check_log(db) == 21


async def test_a_failed_batch_ahead_sends_the_next_one_the_checked_way(store, db, database_url):
    # The batch ahead is refused for real (an event id another process stored meanwhile), while the
    # batch behind it was planned after it: the guard refuses that one too, and both are answered
    # correctly from the truth.
    await store.append("deployment-f", "no_stream", [paused("f", "warm")])
    taken = paused("f", "taken")
    other = await asyncpg.connect(database_url)
    try:
        head = await other.fetchrow("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
        recorded = dt.datetime.now(dt.UTC)
        canonical = hashing.canonical(position=2, stream="deployment-x", version=1, id=taken.id,
                                      type=taken.type, data=taken.data, metadata={}, recorded_at=recorded)
        await other.execute(
            "INSERT INTO events (position, stream, version, id, type, data, metadata, recorded_at, prev_hash, hash)"
            " VALUES (2, 'deployment-x', 1, $1, $2, $3::jsonb, '{}', $4, $5, $6)",
            taken.id, taken.type, hashing.normalize(taken.data)[1], recorded, head["hash"],
            hashing.chain(head["hash"], canonical))
    finally:
        await other.close()
    results = await asyncio.gather(
        store.append("deployment-f", "any", [taken]),
        *(store.append("deployment-f", "any", [paused("f", str(i))]) for i in range(10)),
        return_exceptions=True,
    )
    assert isinstance(results[0], Exception)  # the id is stored, in another stream
    assert sorted(p for r in results[1:] for p in r.positions) == list(range(3, 13))  # type: ignore[union-attr]
    assert await chain.check_log(db) == 12


@pytest.mark.parametrize("writers", [1, 2])
async def test_pipelined_writers_under_mixed_load_store_every_acknowledged_event_once(store, db, database_url,
                                                                                      writers):
    # One writer (mostly planning from memory, batches in flight, refusals from stale versions and
    # retried ids) or two (two processes' worth: each other's appends void their memory). Clients mix
    # single and multi-event appends, exact expected versions that go stale, and retries of appends
    # already made. Every acknowledged event must be stored once, at the position it was given.
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    other = store.__class__(pool, notifier.Notifier(database_url))
    other_task = asyncio.create_task(other.writer.run())
    rng = random.Random(7)
    acknowledged: dict[uuid.UUID, int] = {}

    async def client(n: int) -> None:
        writer_store = store if writers == 1 or n % 2 else other
        stream = f"deployment-m{n % 6}"
        made: list[list[records.NewEvent]] = []
        for i in range(25):
            roll = rng.random()
            if roll < 0.15 and made:
                events, expected = rng.choice(made), "any"  # a retry: same ids, same content
            else:
                events = [paused(stream.split("-", 1)[1], f"{n}-{i}-{k}") for k in range(rng.choice((1, 1, 3)))]
                expected = (await writer_store.stream_version(stream)) if roll < 0.4 else "any"
            try:
                result = await writer_store.append(stream, expected or "no_stream", events)
            except errors.WrongExpectedVersion:
                continue
            made.append(events)
            for event, position in zip(events, result.positions, strict=True):
                assert acknowledged.setdefault(event.id, position) == position

    try:
        await asyncio.gather(*(client(n) for n in range(16)))
    finally:
        other_task.cancel()
        await pool.close()
    stored = {r["id"]: r["position"] for r in await db.fetch("SELECT id, position FROM events")}
    assert stored == acknowledged
    assert await chain.check_log(db) == len(stored)
    if writers == 1:  # conflicts and retries went the checked way without taking the rest with them
        assert store.writer.stats.fast_path > 0


async def test_a_new_stream_expected_not_to_exist_is_planned_from_memory(store):
    # A registration's common case: a stream nobody has written, appended with "no_stream". Memory
    # can vouch for it (its first event is version 1 whatever memory knows), so it needs no checked
    # transaction once the writer knows the head.
    await store.append("deployment-warm", "no_stream", [paused("warm")])
    w = store.writer
    checked, fast = w.stats.checked_path, w.stats.fast_path
    results = await asyncio.gather(*(store.append(f"deployment-new{i}", "no_stream", [paused(f"new{i}")])
                                     for i in range(20)))
    assert [r.first_version for r in results] == [1] * 20
    assert w.stats.checked_path == checked and w.stats.fast_path > fast


async def test_a_stream_created_elsewhere_refuses_the_guess_and_the_rest_of_the_batch_lands(store, db,
                                                                                          database_url):
    # Another process created deployment-elsewhere, so this writer's memory knows nothing of it: the
    # "no_stream" guess is refused by UNIQUE (stream, version), nothing of that request is written, it
    # is answered with the stream's real version, and the requests batched with it land.
    await store.append("deployment-warm", "no_stream", [paused("warm")])
    other = await asyncpg.connect(database_url)
    try:
        head = await other.fetchrow("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
        event = paused("elsewhere", "other process")
        recorded = dt.datetime.now(dt.UTC)
        canonical = hashing.canonical(position=head["position"] + 1, stream="deployment-elsewhere", version=1,
                                      id=event.id, type=event.type, data=event.data, metadata={},
                                      recorded_at=recorded)
        await other.execute(
            "INSERT INTO events (position, stream, version, id, type, data, metadata, recorded_at, prev_hash, hash)"
            " VALUES ($1, 'deployment-elsewhere', 1, $2, $3, $4::jsonb, '{}', $5, $6, $7)",
            head["position"] + 1, event.id, event.type, hashing.normalize(event.data)[1], recorded, head["hash"],
            hashing.chain(head["hash"], canonical))
    finally:
        await other.close()
    await store.append("deployment-warm", "any", [paused("warm", "again")])  # the writer learns the head
    results = await asyncio.gather(
        store.append("deployment-elsewhere", "no_stream", [paused("elsewhere", "mine")]),
        *(store.append(f"deployment-fresh{i}", "no_stream", [paused(f"fresh{i}")]) for i in range(10)),
        return_exceptions=True,
    )
    refused = results[0]
    assert isinstance(refused, errors.WrongExpectedVersion) and refused.actual == 1
    assert all(not isinstance(r, BaseException) and r.first_version == 1 for r in results[1:])
    assert await db.fetchval("SELECT count(*) FROM events WHERE stream = 'deployment-elsewhere'") == 1
    assert await chain.check_log(db) == 13
