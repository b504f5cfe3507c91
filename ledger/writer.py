"""The single batching writer: every append in this process goes through it.

Concurrent appends queue here; the writer takes everything queued, writes it in one transaction
under one advisory lock, sends one NOTIFY and answers every caller with its own result. A
conflicting request (wrong expected version, reused event id) fails alone; the rest of the batch
commits. Group commit is what makes single-event requests cheap: while transactions are in flight
the next batch forms. Planning (checks, positions, hashes) is pure and lives in ledger/planner.py;
this module is the I/O: connections, the pipeline, the SQL.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg

from ledger import db, dbfaults, errors, pgcopy, planner, records

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

# Small batches: one autocommitted statement (prepared once, so PostgreSQL parses nothing per batch):
# the guard of sql/010 (lock, then check the head), the rows, the NOTIFY. The insert reads no table,
# and the guard, a volatile function, reads the head with a snapshot of its own taken after the lock.
_INSERT_GUARDED: Final = """
WITH guard AS (SELECT events_lock_at_head($11, $12)),
inserted AS (
    INSERT INTO events (position, stream, version, id, type, data, metadata, recorded_at, prev_hash, hash)
    SELECT u.* FROM guard, unnest($1::bigint[], $2::text[], $3::int[], $4::uuid[], $5::text[],
                                  $6::jsonb[], $7::jsonb[], $8::timestamptz[], $9::text[], $10::text[]) AS u
)
SELECT pg_notify($13, $14)
"""
# From this many rows a batch goes by binary COPY (no per-element array checks), the whole
# transaction in one message (ledger/pgcopy.py).
COPY_FROM: Final = 64
_COLUMNS: Final = ("position", "stream", "version", "id", "type", "data", "metadata", "recorded_at",
                   "prev_hash", "hash")
_BEGIN_LOCKED: Final = f"BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK})"
# Transactions the writer keeps in flight: one committing, the next already sent and queued behind
# the lock, so PostgreSQL goes from one batch to the next without waiting for this process.
PIPELINE_DEPTH: Final = 2
# How often a pipelined batch overtaken at the lock is sent again before it goes the checked way.
_RESENDS: Final = 3


def _guarded_begin(head: tuple[int, str, dt.datetime]) -> str:
    # sql/010_append_guard.sql: the lock, then "the head is still the event this batch follows".
    position, digest, _ = head
    if not _HEX64.fullmatch(digest):
        raise ValueError(f"not a hash: {digest!r}")
    return f"BEGIN; SELECT events_lock_at_head({int(position)}, '{digest}')"


def _notify_and_commit(head: int) -> str:
    # One NOTIFY per committed batch, delivered at commit; the channel is a constant, the head an int.
    return f"SELECT pg_notify('{NOTIFY_CHANNEL}', '{int(head)}'); COMMIT"


_HEX64: Final = re.compile(r"[0-9a-f]{64}")


@dataclass
class Stats:
    """Counters the metrics endpoint reads; plain numbers so this layer knows nothing of Prometheus."""

    batches: int = 0
    events: int = 0
    requests: int = 0
    rejected: int = 0
    fast_path: int = 0
    checked_path: int = 0
    resent: int = 0
    failed_batches: int = 0
    batch_seconds: float = 0.0


# A long request yields to the event loop this often while it is encoded, so the writer's own
# round trips are not held up behind it.
_YIELD_EVERY: Final = 64


@dataclass(slots=True)
class _Pending:
    request: records.AppendRequest
    future: asyncio.Future[records.AppendResult]
    encoded: list[planner.Encoded]


_MAX_REMEMBERED_STREAMS: Final = 100_000
_MAX_REMEMBERED_IDS: Final = 100_000


async def _encode_long(events: Sequence[records.NewEvent]) -> list[planner.Encoded]:
    """``_encode`` for a long request, yielding to the event loop between chunks."""
    encoded: list[planner.Encoded] = []
    metadata_seen: dict[int, tuple[Any, str, bytes]] = {}
    for start in range(0, len(events), _YIELD_EVERY):
        if start:
            await asyncio.sleep(0)
        encoded += planner.encode(events[start:start + _YIELD_EVERY], metadata_seen)
    return encoded


@dataclass(slots=True)
class _Lease:
    """One of the writer's connection slots and the connection in it (None once discarded)."""

    conn: Any


@dataclass(slots=True)
class _Flight:
    """A transaction sent ahead: its batch, its plan, its slot and the task awaiting its answer."""

    batch: list[_Pending]
    plan: planner.Plan
    lease: _Lease
    task: asyncio.Task[BaseException | None]
    started: float
    answered: bool = False


class BatchingWriter:
    """Group commit, pipelined.

    The writer remembers the head and the versions of the streams it wrote, so it can plan a batch
    (positions, versions, hashes) without reading anything, and send the whole transaction in one
    message: the guard (lock, then check the head is the one planned after), the rows by COPY, the
    NOTIFY, COMMIT. It does not wait for that answer before planning and sending the next batch on
    its second connection, planned after the first one's last event: PostgreSQL queues it behind the
    lock and starts it the moment the first commits. A second loop takes the answers in order.

    A refused batch (the head moved because another process appended or the batch ahead failed; a
    stream version or event id that memory did not know about) wrote nothing. It goes again the
    checked way: under the lock, read the head, the stored ids and the versions, and answer every
    request precisely.
    """

    def __init__(self, pool: asyncpg.Pool, *, max_batch_events: int = 5000, timeout: float = 5.0,
                 depth: int = PIPELINE_DEPTH):
        self._pool = pool
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._max = max_batch_events
        self._timeout = timeout
        self._slots = asyncio.Semaphore(depth)
        self._idle: list[Any] = []
        self._flights: collections.deque[_Flight] = collections.deque()
        self._flight_sent = asyncio.Event()
        self._drained = asyncio.Event()  # set while no batch sent ahead awaits its answer
        self._drained.set()
        self._head: tuple[int, str, dt.datetime] | None = None
        self._versions: dict[str, int] = {}
        # The first event id (as an int: cheap to hash) of each request this writer wrote lately: a
        # request starting with one is a client's retry, for the checked way.
        self._recent: set[int] = set()
        # The head after the last batch known to be committed (in the order batches were sent).
        self._committed: tuple[int, str, dt.datetime] | None = None
        self.stats = Stats()

    @property
    def committed(self) -> int:
        """The last position this writer knows committed; set before any caller of it is answered."""
        return self._committed[0] if self._committed is not None else 0

    def append(self, request: records.AppendRequest) -> Awaitable[records.AppendResult]:
        """Queue ``request``; await the result. A short request is encoded right here and answered
        through a bare future (no coroutine frames to resume on the hottest path)."""
        if len(request.events) <= _YIELD_EVERY:
            return self._enqueue(request, planner.encode(request.events, {}))
        return self._append_long(request)

    async def _append_long(self, request: records.AppendRequest) -> records.AppendResult:
        return await self._enqueue(request, await _encode_long(request.events))

    def _enqueue(self, request: records.AppendRequest, encoded: list[planner.Encoded]) -> asyncio.Future[records.AppendResult]:
        future: asyncio.Future[records.AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(request, future, encoded))
        return future

    async def run(self) -> None:
        """Forever: take what is queued, send it, answer. Started by the app's cleanup_ctx."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._answer_flights())
                await self._send_batches(group)
        finally:
            await self._stop()

    async def _stop(self) -> None:
        """Answer what was committed, fail what is unknown, let go of every connection."""
        stopped = errors.StoreUnavailable("the writer stopped")
        while self._flights:
            flight = self._flights.popleft()
            task = flight.task
            committed = task.done() and not task.cancelled() and task.result() is None
            for pending, outcome in zip(flight.batch, flight.plan.outcomes, strict=True):
                if not pending.future.done():
                    if committed:
                        _resolve(pending.future, outcome)
                    else:
                        pending.future.set_exception(stopped)
            if not flight.answered:
                await self._give_back(flight.lease, None if committed else stopped)
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._release(conn)

    # Connections: the writer holds up to ``depth`` of its own across batches (no pool round trip or
    # reset per batch). A lease is one slot in use.

    async def _lease(self) -> _Lease:
        await self._slots.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
                if _usable(conn):
                    return _Lease(conn)
                await self._release(conn)
            return _Lease(await db.acquire(self._pool, timeout=self._timeout))
        except BaseException:
            self._slots.release()
            raise

    async def _renew(self, lease: _Lease, failure: BaseException) -> None:
        """After a failed transaction: roll it back, or drop a broken connection (the slot stays; the
        next commit on it takes a fresh connection, so failing here never waits on the server)."""
        conn = lease.conn
        if conn is not None and _usable(conn) and not dbfaults.is_unavailable(failure) \
                and not isinstance(failure, asyncio.CancelledError):
            try:
                if conn.is_in_transaction():
                    await conn.execute("ROLLBACK", timeout=self._timeout)
                return
            except Exception:  # the connection is no longer trustworthy
                pass
        lease.conn = None
        if conn is not None:
            await self._release(conn, broken=True)

    async def _give_back(self, lease: _Lease, failure: BaseException | None = None) -> None:
        conn, lease.conn = lease.conn, None
        try:
            if conn is None:
                return
            if failure is None and _usable(conn) and not conn.is_in_transaction():
                self._idle.append(conn)
            else:
                await self._release(conn)
        finally:
            self._slots.release()

    async def _release(self, conn: Any, *, broken: bool = False) -> None:
        await db.release(self._pool, conn, broken=broken)

    # The two loops.

    async def _take_batch(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        count = len(batch[0].request.events)
        while count < self._max and not self._queue.empty():
            item = self._queue.get_nowait()
            batch.append(item)
            count += len(item.request.events)
        return [p for p in batch if not p.future.done()]

    async def _send_batches(self, group: asyncio.TaskGroup) -> None:
        while True:
            batch = await self._take_batch()
            if not batch:
                continue
            try:
                lease = await self._lease()
            except Exception as exc:
                self._fail(batch, exc)
                continue
            # Planned once the slot is ours: from the newest memory, after every batch sent so far.
            vouched, rest = self._vouched(batch)
            plan, vouched, refused = self._fast_plan(vouched) if vouched else (None, [], [])
            rest += refused
            if plan is None:
                await self._checked(rest, lease)
                continue
            self._remember(plan, vouched)
            task = group.create_task(self._send(lease.conn, plan))
            self._flights.append(_Flight(vouched, plan, lease, task, time.perf_counter()))
            self._drained.clear()
            self._flight_sent.set()
            if rest:
                # What memory could not vouch for goes the checked way once the batches in flight
                # are answered, so it is planned after them rather than racing them for the lock,
                # and what it learns can join a memory with nothing unconfirmed in it.
                await self._drained.wait()
                try:
                    lease = await self._lease()
                except Exception as exc:
                    self._fail(rest, exc)
                    continue
                await self._checked(rest, lease)

    async def _send(self, conn: Any, plan: planner.Plan, *, again: bool = False) -> BaseException | None:
        try:
            await self._write_planned(conn, plan, again=again)
        except Exception as exc:
            return exc
        return None

    async def _answer_flights(self) -> None:
        while True:
            while not self._flights:
                self._flight_sent.clear()
                await self._flight_sent.wait()
            flight = self._flights[0]
            failure = await asyncio.shield(flight.task)
            for _ in range(_RESENDS):
                if not (_overtaken(failure, flight.plan) and flight.plan.base == self._committed
                        and flight.lease.conn is not None and _usable(flight.lease.conn)):
                    break
                # Overtaken at the lock by the batch sent after it (two connections, two backends:
                # nothing orders them). Everything ahead of it has committed now and its plan follows
                # on exactly, so the same transaction goes again, after rolling back the refused one.
                self.stats.resent += 1
                failure = await self._send(flight.lease.conn, flight.plan, again=True)
            if failure is None:
                flight.answered = True
                await self._give_back(flight.lease)
                self._flights.popleft()
                if not self._flights:
                    self._drained.set()
                self._committed = flight.plan.head
                self.stats.fast_path += 1
                self._finish(flight.batch, flight.plan.outcomes, flight.started)
                continue
            # Nothing of this batch was written (or, if the connection broke after COMMIT, the
            # retry finds its ids stored): forget what was planned and go the checked way, on the
            # same slot, so answering never waits for a slot the sender could take.
            self._forget()
            flight.answered = True
            self._flights.popleft()
            if not self._flights:
                self._drained.set()
            try:
                await self._renew(flight.lease, failure)
            except Exception as exc:
                await self._give_back(flight.lease, exc)
                self._fail(flight.batch, exc)
                continue
            if dbfaults.is_timeout(failure):
                # The server did not answer in time: going the checked way would wait as long again.
                await self._give_back(flight.lease, failure)
                self._fail(flight.batch, failure)
                continue
            await self._checked(flight.batch, flight.lease)

    def _finish(self, batch: list[_Pending], outcomes: list[records.AppendResult | BaseException],
                started: float) -> None:
        self.stats.batches += 1
        self.stats.batch_seconds += time.perf_counter() - started
        for pending, outcome in zip(batch, outcomes, strict=True):
            self.stats.requests += 1
            if pending.future.done():
                continue
            if isinstance(outcome, BaseException):
                self.stats.rejected += 1
            elif not outcome.duplicate:
                self.stats.events += len(outcome.positions)
            _resolve(pending.future, outcome)

    def _fail(self, batch: list[_Pending], exc: BaseException) -> None:
        self.stats.failed_batches += 1
        failure = self._translate(exc)
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(failure)

    # The checked way, one batch at a time, on a lease the caller took.

    async def _checked(self, batch: list[_Pending], lease: _Lease) -> None:
        failure: BaseException | None = None
        try:
            await self._commit_or_split(batch, lease)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            await self._give_back(lease, failure)

    async def _commit_or_split(self, batch: list[_Pending], lease: _Lease) -> None:
        started = time.perf_counter()
        try:
            try:
                outcomes = await self._commit(batch, lease)
            except Exception as exc:
                if not dbfaults.is_unavailable(exc) or dbfaults.is_timeout(exc):
                    raise
                # The connection broke (the server ended it, or it was cut). Retrying once on a new one
                # is safe even if the first attempt committed: the same event ids come back as
                # duplicates with their original positions. If the database is really gone, this
                # fails as fast as the first attempt. A timeout is not retried: a frozen server
                # would only make the caller wait a second timeout.
                outcomes = await self._commit(batch, lease)
        except Exception as exc:
            if dbfaults.is_data_error(exc) and len(batch) > 1:
                # One request's content was refused by PostgreSQL: retry each alone so the others land.
                self.stats.failed_batches += 1
                for pending in batch:
                    await self._commit_or_split([pending], lease)
                return
            self._fail(batch, exc)
            return
        self._finish(batch, outcomes, started)

    @staticmethod
    def _translate(exc: BaseException) -> BaseException:
        db.count_error(exc)
        if dbfaults.is_unavailable(exc):
            return errors.StoreUnavailable(f"{type(exc).__name__}: {exc}")
        if dbfaults.is_data_error(exc):
            return errors.InvalidEvent(str(exc))
        log.exception("append failed", exc_info=exc)
        return exc

    async def _commit(self, batch: list[_Pending], lease: _Lease) -> list[records.AppendResult | BaseException]:
        try:
            if lease.conn is None:
                lease.conn = await db.acquire(self._pool, timeout=self._timeout)
            return await self._commit_checked(lease.conn, batch)
        except BaseException as exc:
            self._forget()
            await self._renew(lease, exc)
            raise

    async def _commit_checked(
        self, conn: asyncpg.Connection, batch: list[_Pending]
    ) -> list[records.AppendResult | BaseException]:
        # Three round trips: BEGIN + lock (one simple-protocol message), the reads, and the rows
        # with the NOTIFY and COMMIT. The lock is its own statement, before the head is read: under
        # READ COMMITTED a statement's snapshot is taken when it starts.
        await conn.execute(_BEGIN_LOCKED, timeout=self._timeout)
        ids = [e.id for p in batch for e in p.request.events]
        streams = list({p.request.stream for p in batch})
        head = planner.EMPTY_LOG
        stored: dict[UUID, Any] = {}
        versions: dict[str, int] = {s: 0 for s in streams}
        for r in await conn.fetch(_READ, ids, streams, timeout=self._timeout):
            if r["kind"] == 0:
                head = (r["position"], r["hash"], r["recorded_at"])
            elif r["kind"] == 1:
                stored[r["id"]] = r
            else:
                versions[r["stream"]] = r["version"]
        plan = planner.plan(batch, head, versions, stored, dt.datetime.now(dt.UTC))
        if plan.rows:
            await self._copy(conn, plan)
        else:
            await conn.execute("COMMIT", timeout=self._timeout)
        self.stats.checked_path += 1
        if self._flights:
            # Batches sent ahead are unanswered: the versions they put in memory are not confirmed,
            # and a head read from the truth must not be paired with them (a plan from that pair
            # would pass the guard with a version ahead of its stream). Keep only what was read.
            self._forget()
        self._remember(plan, batch)
        self._committed = plan.head
        return plan.outcomes

    async def _write_planned(self, conn: Any, plan: planner.Plan, *, again: bool = False) -> None:
        """A batch planned from memory, guarded by the head it was planned after; one round trip."""
        if len(plan.rows) < COPY_FROM:
            if again and conn.is_in_transaction():
                await conn.execute("ROLLBACK", timeout=self._timeout)
            await conn.execute(_INSERT_GUARDED, *plan.columns(), plan.base[0], plan.base[1],
                               NOTIFY_CHANNEL, str(plan.head[0]), timeout=self._timeout)
        else:
            begin = _guarded_begin(plan.base)
            await self._copy(conn, plan, before="ROLLBACK; " + begin if again else begin)

    async def _copy(self, conn: Any, plan: planner.Plan, *, before: str = "") -> None:
        """The rows by COPY, then NOTIFY and COMMIT, in the same message as ``before``."""
        await pgcopy.copy_in_transaction(conn, "events", _COLUMNS, plan.rows, before=before,
                                         after=_notify_and_commit(plan.head[0]), timeout=self._timeout)

    # Memory: the head after the last batch sent, and the versions of the streams written.

    def _vouched(self, batch: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
        """Split off the requests memory cannot plan: a stream this writer has not written, unless
        the request expects it not to exist (its first event is then version 1, which UNIQUE (stream,
        version) refuses if the stream exists after all, and the batch goes the checked way; any
        other guess could write a version past a gap), and a request it wrote recently (a client's
        retry: the checked way answers it with the original positions). A retry it does not
        recognise is refused by UNIQUE (id) and goes the checked way all the same, only later."""
        if self._head is None:
            return [], batch
        vouched: list[_Pending] = []
        rest: list[_Pending] = []
        for pending in batch:
            request = pending.request
            known = (request.stream in self._versions or request.expected == "no_stream") \
                and request.events[0].id.int not in self._recent
            (vouched if known else rest).append(pending)
        return vouched, rest

    def _fast_plan(self, batch: list[_Pending]) -> tuple[planner.Plan | None, list[_Pending], list[_Pending]]:
        """A plan from memory for the requests it accepts (the plan's outcomes follow their order),
        those requests, and those it refuses (an expected version it contradicts, say). Those go the
        checked way, which answers from the truth: memory may be behind another process."""
        assert self._head is not None
        refused: list[_Pending] = []
        while batch:
            versions = {p.request.stream: self._versions.get(p.request.stream, 0) for p in batch}
            plan = planner.plan(batch, self._head, versions, {}, dt.datetime.now(dt.UTC))
            failed = {id(p) for p, o in zip(batch, plan.outcomes, strict=True) if isinstance(o, BaseException)}
            if not failed:
                return plan, batch, refused
            refused += [p for p in batch if id(p) in failed]
            batch = [p for p in batch if id(p) not in failed]
        return None, [], refused

    def _remember(self, plan: planner.Plan, batch: list[_Pending]) -> None:
        # Called when a batch is sent, before its answer: the next plan starts after it.
        self._head = plan.head
        if len(self._versions) > _MAX_REMEMBERED_STREAMS:
            self._versions.clear()
        self._versions.update(plan.versions)
        if len(self._recent) > _MAX_REMEMBERED_IDS:
            self._recent.clear()
        self._recent.update([p.request.events[0].id.int for p in batch])

    def _forget(self) -> None:
        self._head = None
        self._versions.clear()


def _overtaken(failure: BaseException | None, plan: planner.Plan) -> bool:
    """Refused by the guard because the head was short of this plan's base: the batch ahead of it
    had not committed yet (rather than another process having appended)."""
    if not isinstance(failure, asyncpg.SerializationError):
        return False
    try:
        return int(failure.detail or "") < plan.base[0]
    except ValueError:
        return False


def _usable(conn: Any) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # the pool took it back when the server ended it
        return False


def _resolve(future: asyncio.Future[records.AppendResult], outcome: records.AppendResult | BaseException) -> None:
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
