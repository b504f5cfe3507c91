"""Every target as of now for the commands of one API process, at the cost of what changed since.

A revision, a rollback or a scoped command resolves its targets against the whole fleet, retired
targets included, as of the head of the log (projections/loading.py says why never from the read
models alone). Loaded whole per command, 40,000 targets cost 0.2-0.7 s of decoding on the event
loop, and every request of the process waited behind it. Like Argo CD's and Fleet's informer
caches, the index keeps the fleet in memory and catches it up from the log on each call, so a
decision costs O(target events since the last one), not O(fleet):

- **Seeded once** from the targets read model and the target events after its checkpoint, read in
  one repeatable-read snapshot together with the head of the log (as the whole load always was);
  tens of thousands of rows are built in a worker thread, as loading's long folds are.
- **Caught up** on each call by one statement: the target events after the last position it has
  folded. The append lock makes commit order equal position order and positions gapless
  (ledger/writer.py), so a statement that sees an event sees every event before it: nothing
  committed before the call is missed, whatever the projector's lag.
- **The same log, or seeded anew.** The statement also reads the event at that last position; its
  hash covers the whole log before it (ledger/hashing.py), so an equal hash proves the log the
  index folded is still the prefix of this one. A database reset or restored under the running
  process (the event missing, or another hash) makes the index seed itself again. A projector
  rebuild changes nothing: the read model is read only when seeding.
- **Callers cannot corrupt it, nor it them.** A call returns a read-only mapping
  (projections/labelled.py, which also finds a selector's targets by label) that no later call
  changes: a catch-up folds into a copy of the dict and fresh copies of the targets it touches
  (``fleet.apply`` changes a target in place), then publishes them. Unchanged targets are shared
  between the mappings handed out; nobody may mutate a ``fleet.Target`` it got from here.
- **One at a time.** Concurrent calls queue on a lock, so a tail is never folded twice nor two
  folds interleaved; the one that waited reads only what came after. The wait counts within the
  call's database timeout: while PostgreSQL does not answer, queued calls answer 503 in time too
  instead of one timeout after another.
- **An event that does not decode** stops the call (``ledger.errors.Undecodable``: 503 naming it,
  nothing written, projections/undecodable.py) and leaves the index as it was, so every later
  call stops at it too until the log is repaired.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

from ledger import errors, events
from ledger import store as store_mod
from projections import compact, fleet, labelled, tables, undecodable

# Beyond this many rows a seed is built off the event loop (projections/loading.py's INLINE_ROWS).
INLINE_ROWS: Final = 2_000

_HEAD: Final = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
_SEED_TAIL: Final = """
SELECT position, stream, version, type, data::text, metadata::text, recorded_at
FROM events WHERE category = 'target' AND position > $1 ORDER BY position
"""
# The event the index last folded up to (its anchor), then the target events after it.
_CATCH_UP: Final = """
SELECT position, stream, version, type, data::text, metadata::text, recorded_at, hash
FROM events WHERE position = $1 OR (category = 'target' AND position > $1) ORDER BY position
"""


class Index:
    """The fleet's targets for one API process's commands (kept under ``api.keys.TARGETS``)."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout  # when a call names none: the store's (settings.db_timeout)
        self._lock = asyncio.Lock()
        self._found: dict[str, fleet.Target] = {}
        self._targets = labelled.build(self._found)
        self._position = 0
        self._anchor: str | None = None  # the hash of the event at _position; None: not seeded
        self.seeds = 0  # times the index was built whole
        self.rows_read = 0  # target rows read, the read model's and the log's

    async def now(self, store: store_mod.EventStore, *,
                  timeout: float | None = None) -> Mapping[str, fleet.Target]:
        """Every target (retired included) as of now; StoreUnavailable when not within ``timeout``,
        the wait for another call's load included."""
        limit = self._timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit), self._lock:
                if self._anchor is None or not await self._catch_up(store, limit):
                    await self._seed(store, limit)
                return self._targets
        except TimeoutError as exc:
            raise errors.StoreUnavailable(f"the targets were not loaded within {limit:g} s") from exc

    async def _seed(self, store: store_mod.EventStore, timeout: float) -> None:
        async with store.connection(timeout) as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                checkpoint = await tables.checkpoint(conn)
                rows = await tables.target_rows(conn, timeout=timeout)
                tail = await conn.fetch(_SEED_TAIL, checkpoint, timeout=timeout)
                head = await conn.fetchrow(_HEAD, timeout=timeout)
        self.rows_read += len(rows) + len(tail)
        if len(rows) + len(tail) > INLINE_ROWS:
            found = await asyncio.to_thread(_built, rows, tail)
        else:
            found = _built(rows, tail)
        self._publish(found, *(head if head is not None else (0, "")))
        self.seeds += 1

    async def _catch_up(self, store: store_mod.EventStore, timeout: float) -> bool:
        """Fold the target events after the anchor; False when the log is no longer the one folded."""
        async with store.connection(timeout) as conn:
            rows = await conn.fetch(_CATCH_UP, self._position, timeout=timeout)
        if self._position:
            if not rows or rows[0][0] != self._position or rows[0][7] != self._anchor:
                return False
            rows = rows[1:]
        self.rows_read += len(rows)
        if rows:
            found = self._found.copy()
            before: dict[str, fleet.Target | None] = {}
            state = fleet.empty()
            state.targets = found
            for row in rows:
                name = _named(row)
                if name is not None and name not in before:
                    before[name] = earlier = found.get(name)
                    if earlier is not None:
                        found[name] = msgspec.structs.replace(earlier)
                undecodable.fold("commands", state, row[:7])
            self._publish(labelled.changed(self._targets, found, before), rows[-1][0], rows[-1][7])
        return True

    def _publish(self, found: labelled.Targets, position: int, anchor: str) -> None:
        self._found = found.whole()
        self._targets = found
        self._position = position
        self._anchor = anchor


def _named(row: Sequence[Any]) -> str | None:
    """The target a target event changes (None when it does not decode: the fold stops at it)."""
    try:
        event = events.decode(row[3], row[4])
    except events.DecodeError:
        return None
    return getattr(event, "target", None)


def _built(rows: Sequence[Any], tail: Sequence[Any]) -> labelled.Targets:
    """The fleet's targets from the read model's rows and the log's tail, equal labels and access
    kept once (projections/compact.py, as the fold keeps them), indexed by label."""
    state = fleet.empty()
    for row in rows:
        target = tables.target_of(row)
        compact.targets((target,))  # at once: the decoded copies freed en masse stayed as ~20 MB of RSS
        state.targets[target.name] = target
    undecodable.fold_all("commands", state, tail)
    return labelled.build(state.targets)
