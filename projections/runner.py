"""The projector: folds the log into the read-model tables and keeps them current.

It keeps the live fleet in memory, folds every event through ``projections.fleet``, and writes the
rows the folded events changed together with its checkpoint in one transaction, many events per
transaction. After a restart it loads the fleet at its checkpoint (nearest snapshot plus the events
after it), catches up with a server-side cursor to the head, then follows live appends through
``EventStore.subscribe``. A position at or below the checkpoint is a duplicate delivery and is
skipped, never an error.

Decisions:

- **One projector per database**, held by a session advisory lock on its write connection: a second
  service process waits as a standby, and ``ledger rebuild`` refuses to run beside a live one. If
  the connection drops the lock goes with it, so the in-memory state is thrown away and the
  projector starts over from the database (supervised by ``ledger.tasks``).
- **Pipelined catch-up**: while one batch of rows is written (on the write connection) the next
  chunk of events is already being read (on the reader connection) and folded; rows are extracted
  from the fleet before the write starts, so folding on never changes what a transaction writes.
- **Snapshots** every ``snapshots.EVERY`` events, in the checkpoint transaction, compressed in a
  thread so the event loop keeps serving.
- **A fold that changed** (``tables.FORMAT`` differs from the checkpoint's) rebuilds from zero.
- **An event it cannot fold or store stalls it, visibly; it is never skipped.** The log's integrity
  comes first: the read models stop at the position before it. The projector reports itself
  ``stalled`` in the component registry with that position and the reason (so /readyz answers 503
  naming it, and /metrics shows ``ledger_projector_stalled``), throws its in-memory state away and
  tries again from its checkpoint with backoff, for ever, so a fix (a code upgrade, a repaired
  table) lets it continue by itself. When a whole batch failed to commit, the next attempt commits
  one event per transaction up to the end of that batch, which pins the stall to one position. A
  database that is unavailable is not a stall: that error goes to the supervisor (ledger.tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Final

import asyncpg
import msgspec

from ledger import components, db, dbfaults, errors, events, heap
from ledger import store as store_mod
from projections import fleet, progress, replay, snapshots, tables

log = logging.getLogger(__name__)

# Session advisory lock: at most one projector (or rebuild) per database.
LOCK: Final = 0x4C45444750524F4A  # "LEDGPROJ"
CHUNK: Final = 5000
NAME: Final = "projector"
STALL_FIRST_DELAY: Final = 0.5
STALL_MAX_DELAY: Final = 10.0


class ProjectorBusy(RuntimeError):
    """Another projector or rebuild holds the projection lock."""


class Stalled(Exception):
    """Positions ``first``..``last`` could not be folded or stored (one event when they are equal)."""

    def __init__(self, first: int, last: int, cause: BaseException, *, concerns: dict[str, Any] | None = None
                 ) -> None:
        self.first, self.last, self.cause = first, last, cause
        self.concerns = concerns or {}
        where = f"position {first}" if first == last else f"positions {first}..{last}"
        self.reason = f"cannot fold and store {where}: {components.error_text(cause)}"
        super().__init__(self.reason)

    def fields(self) -> dict[str, Any]:
        """The log fields of the stall: its position and, when known, the event's stream, type,
        deployment, target and revision."""
        return {"position": self.first, **self.concerns}


def _undecodable(row: Any) -> Stalled:
    """The stall for an event that does not decode (a log written by a newer version, or around the
    rules): the read models stop before it rather than pass it by, so an operator sees it."""
    position, type_, data = row[0], row[3], row[4]
    try:
        events.decode(type_, data)
    except events.DecodeError as exc:
        return Stalled(position, position, exc, concerns=_concerns(row))
    return Stalled(position, position, RuntimeError(f"{type_} at position {position} did not fold"),
                   concerns=_concerns(row))


def _concerns(row: Any) -> dict[str, Any]:
    """What the event in ``row`` is about, for the stall's log line: its stream and type, and the
    deployment, target and revision its data names (read leniently: the data may be what failed)."""
    found: dict[str, Any] = {"stream": row[1], "type": row[3]}
    try:
        data = msgspec.json.decode(row[4])
    except (msgspec.DecodeError, TypeError):
        return found
    if isinstance(data, dict):
        for name in ("deployment", "target", "revision"):
            value = data.get(name)
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                found[name] = value
    return found


class Projector:
    def __init__(
        self,
        dsn: str,
        *,
        store: store_mod.EventStore | None = None,
        progress_: progress.Progress | None = None,
        flush_every: int = snapshots.EVERY,
        snapshot_every: int = snapshots.EVERY,
        connect_timeout: float = 5.0,
        on_flush: Callable[[int], None] | None = None,
        registry: components.Registry | None = None,
    ) -> None:
        self.dsn = dsn
        self.store = store
        self.progress = progress_ or progress.Progress()
        self.flush_every = flush_every
        self.snapshot_every = snapshot_every
        self.connect_timeout = connect_timeout
        self.on_flush = on_flush
        self.registry = registry or components.Registry()
        self.state = fleet.empty()
        self.flushes = 0
        self._snapshot_at = 0
        self._planned = 0
        self._careful_until = 0
        self.stalled_at: int | None = None

    async def _connect(self) -> asyncpg.Connection:
        return await db.connect(self.dsn, timeout=self.connect_timeout)

    async def run(self) -> None:
        """Forever (for the service): take the lock, resume, catch up, follow live appends; when an
        event cannot be folded or stored, report the stall and start over with backoff."""
        if self.store is None:
            raise RuntimeError("following live appends needs an event store")
        delay = STALL_FIRST_DELAY
        while True:
            try:
                await self._run_once(self.store)
            except Stalled as stall:
                if stall.first != self.stalled_at:
                    delay = STALL_FIRST_DELAY
                self.stalled_at = stall.first
                pinned = stall.first == stall.last or self._careful_until >= stall.last
                where = ({"position": stall.first} if pinned
                         else {"from_position": stall.first, "to_position": stall.last})
                self.registry.stalled(NAME, stall.reason, **where, checkpoint=stall.first - 1,
                                      cause=components.error_text(stall.cause))
                self._careful_until = max(self._careful_until, stall.last)
                if not pinned:
                    log.error("projector stalled: %s; retrying one event per transaction to find which",
                              stall.reason, exc_info=stall.cause,
                              extra={"position": stall.first, "to_position": stall.last})
                    continue
                log.error("projector stalled: %s; the event is not skipped, retrying in %.1fs",
                          stall.reason, delay, exc_info=stall.cause, extra=stall.fields())
                await asyncio.sleep(delay)
                delay = min(delay * 2, STALL_MAX_DELAY)

    async def _run_once(self, store: store_mod.EventStore) -> None:
        conn = await self._connect()
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK):
                log.info("another projector holds the projection lock; standing by")
                await conn.execute("SELECT pg_advisory_lock($1)", LOCK)
            await self._resume(conn)
            await self._catch_up(conn)
            await asyncio.to_thread(heap.give_back)  # what the fold passed through (ledger/heap.py)
            log.info("projector caught up at position %d; following", self.state.position,
                     extra={"position": self.state.position})
            await self._follow(conn, store)
        finally:
            conn.terminate()

    async def rebuild(self, *, until: int | None = None) -> int:
        """Drop the read models and fold the log again from 0 (to ``until`` or the head)."""
        conn = await self._connect()
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK):
                raise ProjectorBusy("a projector is running on this database (a `ledger serve` process "
                                    "with projector enabled); stop it before rebuilding")
            async with conn.transaction():
                await tables.reset(conn)
            self.state = fleet.empty()
            self._snapshot_at = self._planned = 0
            self.progress.reset(0)
            await self._catch_up(conn, until=until)
            return self.state.position
        finally:
            await conn.close()

    async def _resume(self, conn: asyncpg.Connection) -> None:
        row = await tables.checkpoint_row(conn)
        if row is None or row[1] != tables.FORMAT:
            if row is not None:
                log.warning("read models hold fold format %d, this version folds %d: rebuilding",
                            row[1], tables.FORMAT)
            async with conn.transaction():
                await tables.reset(conn)
            self.state = fleet.empty()
        else:
            self.state = await replay.fleet_at(conn, row[0])
        self._snapshot_at = self._planned = self.state.position
        self.progress.reset(self.state.position)

    def _fold(self, changes: tables.Changes, row: Any) -> bool:
        if row[0] <= self.state.position:
            return False
        try:
            event = fleet.fold_row(self.state, *row)
        except Exception as exc:
            raise Stalled(row[0], row[0], exc, concerns=_concerns(row)) from exc
        if event is None:
            raise _undecodable(row)
        changes.note(event)
        return True

    async def _catch_up(self, conn: asyncpg.Connection, *, until: int | None = None) -> None:
        reader = await self._connect()
        pending: asyncio.Future[None] | None = None
        try:
            async with reader.transaction(isolation="repeatable_read", readonly=True):
                end = until if until is not None else await replay.head(reader)
                cursor = await reader.cursor(replay.EVENTS, self.state.position, end)
                changes = tables.Changes()
                state, note, fold_row = self.state, changes.note, fleet.fold_row
                flush_every, snapshot_every = self.flush_every, self.snapshot_every
                careful = self._careful_until
                async with contextlib.aclosing(replay.chunks(cursor, CHUNK)) as chunked:
                    async for rows in chunked:
                        for row in rows:
                            # The hot loop of a rebuild: _fold and _due written out.
                            position = row[0]
                            if position <= state.position:
                                continue
                            try:
                                event = fold_row(state, *row)
                            except Exception as exc:
                                raise Stalled(position, position, exc, concerns=_concerns(row)) from exc
                            if event is None:
                                raise _undecodable(row)
                            note(event)
                            if (changes.count >= flush_every or position % snapshot_every == 0
                                    or position <= careful):
                                if pending is not None:
                                    await pending
                                pending = asyncio.ensure_future(self._flush(conn, changes))
                                changes = tables.Changes()
                                note = changes.note
                if pending is not None:
                    await pending
                    pending = None
                if changes:
                    await self._flush(conn, changes)
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
            reader.terminate()

    async def _follow(self, conn: asyncpg.Connection, store: store_mod.EventStore) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.flush_every)

        async def pump() -> None:
            async for rec in store.subscribe(self.state.position, batch=1000):
                await queue.put((rec.position, rec.stream, rec.version, rec.type, rec.data, rec.metadata,
                                 rec.recorded_at))

        pumping = asyncio.create_task(pump(), name="projector-subscription")
        # The write connection holds the projection lock. Losing it (a database restart) while idle
        # would go unnoticed until the next event, and the projector would report itself up with
        # neither lock nor connection: watch for its end and start over at once.
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_lost(_conn: object) -> None:
            if not lost.done():
                lost.set_result(None)

        conn.add_termination_listener(on_lost)
        if conn.is_closed():
            on_lost(conn)
        try:
            while True:
                getting = asyncio.ensure_future(queue.get())
                await asyncio.wait([getting, pumping, lost], return_when=asyncio.FIRST_COMPLETED)
                if lost.done():
                    getting.cancel()
                    raise errors.StoreUnavailable("the projector's connection was lost")
                if not getting.done():
                    getting.cancel()
                    pumping.result()  # the subscription ended: re-raise why
                batch = [getting.result()]
                while not queue.empty() and len(batch) < self.flush_every:
                    batch.append(queue.get_nowait())
                changes = tables.Changes()
                for row in batch:
                    self._fold(changes, row)
                if changes:
                    await self._flush(conn, changes)
        finally:
            pumping.cancel()
            with contextlib.suppress(BaseException):
                await pumping

    def _flush(self, conn: asyncpg.Connection, changes: tables.Changes) -> asyncio.Future[None]:
        """Extract the rows now (synchronously), then write them and the checkpoint in one transaction."""
        position, recorded_at = self.state.position, self.state.recorded_at
        first, self._planned = self._planned + 1, position
        try:
            rows = tables.rows(self.state, changes)
        except Exception as exc:
            raise Stalled(first, position, exc) from exc
        packed = None
        if snapshots.due(self._snapshot_at, position, self.snapshot_every):
            packed = snapshots.pack(self.state)
            self._snapshot_at = position

        async def commit() -> None:
            snapshot = await asyncio.to_thread(snapshots.compress, packed) if packed is not None else None
            try:
                async with conn.transaction():
                    await rows.write(conn)
                    await tables.save_checkpoint(conn, position)
                    if snapshot is not None:
                        await snapshots.save(conn, position, recorded_at, snapshot)
                    await conn.execute("SELECT pg_notify($1, $2)", progress.CHANNEL, str(position))
            except Exception as exc:
                db.count_error(exc)
                if isinstance(exc, errors.StoreUnavailable) or dbfaults.is_unavailable(exc):
                    raise
                raise Stalled(first, position, exc) from exc
            self.flushes += 1
            self.progress.advance(position)
            if self.stalled_at is not None and position >= max(self.stalled_at, self._careful_until):
                log.info("projector moved past position %d, where it had stalled", self.stalled_at,
                         extra={"position": self.stalled_at})
                self.stalled_at = None
                self._careful_until = 0
                self.registry.up(NAME)
            if self.on_flush is not None:
                self.on_flush(position)

        return asyncio.ensure_future(commit())
