"""The single batching writer: every append in this process goes through one task.

Concurrent appends queue here; the writer takes everything queued, writes it in one transaction
under one advisory lock, sends one NOTIFY and answers every caller with its own result. A
conflicting request (wrong expected version, reused event id) fails alone; the rest of the batch
commits. Group commit is what makes single-event requests cheap: while one transaction is in
flight the next batch forms.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg

from ledger import dbfaults, errors, hashing, records

log = logging.getLogger(__name__)

# Why one lock for the whole log: positions are assigned by reading the head and counting on from
# it, and readers tail the log with "position > N". If two transactions could assign positions
# concurrently, the later position might commit first and a tailing reader would move past the
# earlier one before it became visible, skipping it forever. Holding a transaction-scoped advisory
# lock from "read head" until commit makes commit order equal position order and keeps positions
# dense and gapless across every process that appends to this database.
APPEND_LOCK: Final = 0x4C45444745524150  # "LEDGERAP"
NOTIFY_CHANNEL: Final = "ledger_events"

# The head, the batch's event ids already stored (idempotent retries) and its streams' versions.
_READ: Final = """
SELECT 0 AS kind, position, hash, recorded_at, NULL::uuid AS id, NULL::text AS stream,
       NULL::int AS version, NULL::text AS type, NULL::text AS data
  FROM (SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1) AS head
UNION ALL
SELECT 1, position, NULL, NULL, id, stream, version, type, data::text
  FROM events WHERE id = ANY($1::uuid[])
UNION ALL
SELECT 2, NULL, NULL, NULL, NULL, s.stream, v.version, NULL, NULL
  FROM unnest($2::text[]) AS s(stream)
  CROSS JOIN LATERAL (SELECT version FROM events WHERE events.stream = s.stream
                      ORDER BY version DESC LIMIT 1) AS v
"""

# One NOTIFY per committed batch, sent with the insert (delivered at commit, never per row).
_INSERT: Final = """
WITH inserted AS (
    INSERT INTO events (position, stream, version, id, type, data, metadata, recorded_at, prev_hash, hash)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::uuid[], $5::text[],
                         $6::jsonb[], $7::jsonb[], $8::timestamptz[], $9::text[], $10::text[])
)
SELECT pg_notify($11, $12)
"""

# Large batches go by COPY (binary, no per-element array checks): an extra round trip or two is
# nothing beside encoding thousands of array elements.
COPY_FROM: Final = 128
_COLUMNS: Final = ("position", "stream", "version", "id", "type", "data", "metadata", "recorded_at",
                   "prev_hash", "hash")


def _notify_and_commit(head: int) -> str:
    # One simple-protocol message; the channel is a constant and the head an integer.
    return f"SELECT pg_notify('{NOTIFY_CHANNEL}', '{int(head)}'); COMMIT"


# The fast path's single autocommitted statement: the same insert, under the same lock.
_INSERT_LOCKED: Final = f"""
WITH locked AS (SELECT pg_advisory_xact_lock({APPEND_LOCK})),
inserted AS (
    INSERT INTO events (position, stream, version, id, type, data, metadata, recorded_at, prev_hash, hash)
    SELECT u.* FROM locked, unnest($1::bigint[], $2::text[], $3::int[], $4::uuid[], $5::text[],
                                   $6::jsonb[], $7::jsonb[], $8::timestamptz[], $9::text[], $10::text[]) AS u
)
SELECT pg_notify($11, $12)
"""


@dataclass
class Stats:
    """Counters the metrics endpoint reads; plain numbers so this layer knows nothing of Prometheus."""

    batches: int = 0
    events: int = 0
    requests: int = 0
    rejected: int = 0
    fast_path: int = 0
    checked_path: int = 0
    failed_batches: int = 0
    batch_seconds: float = 0.0


@dataclass
class _Pending:
    request: records.AppendRequest
    future: asyncio.Future[records.AppendResult]


def _check_expected(stream: str, expected: records.ExpectedVersion, actual: int) -> None:
    ok = (
        expected == "any"
        or (expected == "no_stream" and actual == 0)
        or (expected == "exists" and actual > 0)
        or (isinstance(expected, int) and expected == actual)
    )
    if not ok:
        raise errors.WrongExpectedVersion(stream, expected, actual)


class BatchingWriter:
    def __init__(self, pool: asyncpg.Pool, *, max_batch_events: int = 5000, timeout: float = 5.0):
        self._pool = pool
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._max = max_batch_events
        self._timeout = timeout
        self._conn: Any = None
        self._head: tuple[int, str, dt.datetime] | None = None
        self.stats = Stats()
        self._versions: dict[str, int] = {}

    async def append(self, request: records.AppendRequest) -> records.AppendResult:
        future: asyncio.Future[records.AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(request, future))
        return await future

    async def run(self) -> None:
        """Forever: take what is queued, commit it, answer. Started by the app's cleanup_ctx."""
        try:
            await self._run()
        finally:
            await self._drop_connection()

    async def _connection(self) -> Any:
        """The writer's own connection, held across batches (no pool round trip or reset per batch)."""
        if self._conn is not None:
            try:
                closed = self._conn.is_closed()
            except asyncpg.InterfaceError:
                # The pool takes a connection back by itself when the server ends it.
                self._conn, closed = None, False
            if closed:
                await self._drop_connection()
        if self._conn is None:
            self._conn = await self._pool.acquire(timeout=self._timeout)
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._pool.release(conn, timeout=1))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            count = len(batch[0].request.events)
            while count < self._max and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                count += len(item.request.events)
            live = [p for p in batch if not p.future.done()]
            if live:
                await self._commit_or_split(live)

    async def _commit_or_split(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            try:
                outcomes = await self._commit(batch)
            except Exception as exc:
                if not dbfaults.is_unavailable(exc):
                    raise
                # The connection broke (the server ended it, or it was cut). Retrying once on a new one
                # is safe even if the first attempt committed: the same event ids come back as
                # duplicates with their original positions. If the database is really gone, this
                # fails as fast as the first attempt.
                outcomes = await self._commit(batch)
        except Exception as exc:
            self.stats.failed_batches += 1
            if dbfaults.is_data_error(exc) and len(batch) > 1:
                # One request's content was refused by PostgreSQL: retry each alone so the others land.
                for pending in batch:
                    await self._commit_or_split([pending])
                return
            failure = self._translate(exc)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(failure)
            return
        self.stats.batches += 1
        self.stats.batch_seconds += time.perf_counter() - started
        for pending, outcome in zip(batch, outcomes):
            self.stats.requests += 1
            if pending.future.done():
                continue
            if isinstance(outcome, BaseException):
                self.stats.rejected += 1
                pending.future.set_exception(outcome)
            else:
                if not outcome.duplicate:
                    self.stats.events += len(outcome.positions)
                pending.future.set_result(outcome)

    @staticmethod
    def _translate(exc: BaseException) -> BaseException:
        if dbfaults.is_unavailable(exc):
            return errors.StoreUnavailable(f"{type(exc).__name__}: {exc}")
        if dbfaults.is_data_error(exc):
            return errors.InvalidEvent(str(exc))
        log.exception("append failed", exc_info=exc)
        return exc

    async def _commit(self, batch: list[_Pending]) -> list[records.AppendResult | BaseException]:
        conn = await self._connection()
        try:
            fast = self._fast_plan(batch)
            if fast is not None:
                try:
                    return await self._insert_fast(conn, fast)
                except asyncpg.UniqueViolationError:
                    self._forget()
                    if conn.is_in_transaction():
                        await conn.execute("ROLLBACK", timeout=self._timeout)
            return await self._commit_checked(conn, batch)
        except BaseException as exc:
            self._forget()
            if dbfaults.is_unavailable(exc) or isinstance(exc, asyncio.CancelledError):
                await self._drop_connection()
            elif not conn.is_closed() and conn.is_in_transaction():
                try:
                    await conn.execute("ROLLBACK", timeout=self._timeout)
                except Exception:  # the connection is no longer trustworthy
                    await self._drop_connection()
            raise

    # The fast path: one round trip. The writer remembers the head and the versions of the streams it
    # wrote, plans the batch from that memory and inserts it in one autocommitted statement. It relies
    # on constraints, not on a snapshot: positions are dense, so if anything was appended since (by
    # another process), position head+1 already exists and the primary key refuses the whole
    # statement; a stale stream version trips UNIQUE (stream, version), a retried id trips UNIQUE (id).
    # Any refusal, and any batch whose checks fail against memory, goes the checked path, which reads
    # the truth under the lock and answers conflicts precisely.

    def _fast_plan(self, batch: list[_Pending]) -> _Plan | None:
        if self._head is None:
            return None
        streams = {p.request.stream for p in batch}
        versions = {s: self._versions.get(s, 0) for s in streams}
        plan = _plan(batch, self._head, versions, {})
        if any(isinstance(o, BaseException) or o.duplicate for o in plan.outcomes):
            return None
        return plan

    async def _insert_fast(self, conn: asyncpg.Connection, plan: _Plan) -> list[records.AppendResult | BaseException]:
        if len(plan.rows) >= COPY_FROM:
            await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK})", timeout=self._timeout)
            await self._copy(conn, plan)
            await conn.execute(_notify_and_commit(plan.head[0]), timeout=self._timeout)
        else:
            await conn.execute(_INSERT_LOCKED, *plan.columns(), NOTIFY_CHANNEL, str(plan.head[0]),
                               timeout=self._timeout)
        self.stats.fast_path += 1
        self._remember(plan)
        return plan.outcomes

    async def _commit_checked(
        self, conn: asyncpg.Connection, batch: list[_Pending]
    ) -> list[records.AppendResult | BaseException]:
        # Four round trips: BEGIN + lock (one simple-protocol message), the reads, the insert with its
        # NOTIFY, COMMIT. The lock is its own statement, before the head is read: under READ COMMITTED
        # a statement's snapshot is taken when it starts.
        await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK})", timeout=self._timeout)
        ids = [e.id for p in batch for e in p.request.events]
        streams = list({p.request.stream for p in batch})
        head: tuple[int, str, dt.datetime] = (0, hashing.GENESIS, _EPOCH)
        stored: dict[UUID, Any] = {}
        versions: dict[str, int] = {s: 0 for s in streams}
        for r in await conn.fetch(_READ, ids, streams, timeout=self._timeout):
            if r["kind"] == 0:
                head = (r["position"], r["hash"], r["recorded_at"])
            elif r["kind"] == 1:
                stored[r["id"]] = r
            else:
                versions[r["stream"]] = r["version"]
        plan = _plan(batch, head, versions, stored)
        if len(plan.rows) >= COPY_FROM:
            await self._copy(conn, plan)
            await conn.execute(_notify_and_commit(plan.head[0]), timeout=self._timeout)
        elif plan.rows:
            await conn.execute(_INSERT, *plan.columns(), NOTIFY_CHANNEL, str(plan.head[0]), timeout=self._timeout)
            await conn.execute("COMMIT", timeout=self._timeout)
        else:
            await conn.execute("COMMIT", timeout=self._timeout)
        self.stats.checked_path += 1
        self._remember(plan)
        return plan.outcomes

    async def _copy(self, conn: asyncpg.Connection, plan: _Plan) -> None:
        await conn.copy_records_to_table("events", records=plan.rows, columns=_COLUMNS,
                                         timeout=self._timeout)

    def _remember(self, plan: _Plan) -> None:
        self._head = plan.head
        if len(self._versions) > _MAX_REMEMBERED_STREAMS:
            self._versions.clear()
        self._versions.update(plan.versions)

    def _forget(self) -> None:
        self._head = None
        self._versions.clear()


_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX_REMEMBERED_STREAMS: Final = 100_000


@dataclass
class _Plan:
    rows: list[tuple[Any, ...]]
    outcomes: list[records.AppendResult | BaseException]
    head: tuple[int, str, dt.datetime]
    versions: dict[str, int]

    def columns(self) -> list[list[Any]]:
        return [list(column) for column in zip(*self.rows)] if self.rows else [[] for _ in _COLUMNS]


def _plan(
    batch: list[_Pending],
    head: tuple[int, str, dt.datetime],
    versions: dict[str, int],
    stored: dict[UUID, Any],
) -> _Plan:
    """Assign positions, versions and hashes after ``head``; each request gets its outcome."""
    position, prev_hash, last_time = head
    prev_raw = bytes.fromhex(prev_hash)
    now = dt.datetime.now(dt.UTC)
    recorded_at = max(now, last_time)
    recorded_text = hashing.format_time(recorded_at)
    versions = dict(versions)
    rows: list[tuple[Any, ...]] = []
    in_batch: dict[UUID, tuple[int, str, int, str, Any]] = {}
    outcomes: list[records.AppendResult | BaseException] = []
    # Events of one request usually share one metadata object: normalize it once.
    metadata_seen: dict[int, tuple[Any, str, bool]] = {}
    # Ids written earlier in this batch, for a later request that repeats them (only matters when
    # the batch holds more than one request).
    track = len(batch) > 1
    for pending in batch:
        req = pending.request
        try:
            duplicate = _duplicate(req, stored, in_batch)
            if duplicate is not None:
                outcomes.append(duplicate)
                continue
            actual = versions[req.stream]
            _check_expected(req.stream, req.expected, actual)
        except errors.LedgerError as exc:
            outcomes.append(exc)
            continue
        first_position = position + 1
        for event in req.events:
            position += 1
            actual += 1
            data, data_text, plain_data = hashing.normalize(event.data)
            known = metadata_seen.get(id(event.metadata))
            if known is None:
                known = metadata_seen[id(event.metadata)] = hashing.normalize(event.metadata)
            metadata, meta_text, plain_meta = known
            canonical = hashing.canonical(
                position=position,
                stream=req.stream,
                version=actual,
                id=event.id,
                type=event.type,
                data=data,
                metadata=metadata,
                recorded_at=recorded_text,
                plain=plain_data and plain_meta,
            )
            prev_raw = hashing.chain_raw(prev_raw, canonical)
            digest = prev_raw.hex()
            rows.append((position, req.stream, actual, event.id, event.type, data_text, meta_text,
                         recorded_at, prev_hash, digest))
            prev_hash = digest
            if track:
                in_batch[event.id] = (position, req.stream, actual, event.type, data)
        versions[req.stream] = actual
        outcomes.append(
            records.AppendResult(
                stream=req.stream,
                positions=tuple(range(first_position, position + 1)),
                first_version=actual - len(req.events) + 1,
                last_version=actual,
            )
        )
    new_head = (position, prev_hash, recorded_at) if rows else head
    return _Plan(rows, outcomes, new_head, versions)


def _duplicate(
    req: records.AppendRequest,
    stored: dict[UUID, Any],
    in_batch: dict[UUID, tuple[int, str, int, str, Any]],
) -> records.AppendResult | None:
    """The original result when every event of ``req`` is already stored with the same content."""
    if len(req.events) > 1 and len({e.id for e in req.events}) != len(req.events):
        raise errors.InvalidEvent("the same event id appears twice in one append")
    if not stored and not in_batch:
        return None
    found: list[tuple[int, str, int, str, Any]] = []
    for event in req.events:
        if event.id in in_batch:
            hit = in_batch[event.id]
        elif event.id in stored:
            r = stored[event.id]
            hit = (r["position"], r["stream"], r["version"], r["type"], json.loads(r["data"]))
        else:
            continue
        pos, stream, _version, type_, data = hit
        if stream != req.stream or type_ != event.type or data != event.data:
            raise errors.EventIdConflict(event.id, stream, pos, "same id, different content")
        found.append(hit)
    if not found:
        return None
    if len(found) != len(req.events):
        raise errors.EventIdConflict(
            req.events[0].id, found[0][1], found[0][0], "part of this append is stored already"
        )
    positions = [f[0] for f in found]
    versions = [f[2] for f in found]
    return records.AppendResult(
        stream=req.stream,
        positions=tuple(positions),
        first_version=min(versions),
        last_version=max(versions),
        duplicate=True,
    )
