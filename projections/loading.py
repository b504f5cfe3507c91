"""Loading the state a command decides on, straight from the log, so it is never stale.

A command must see every event committed before it, whatever the projector's lag: the stream it
writes to is folded from the events table (manifests elided server-side, since no command needs
them and a long history would otherwise be read in full), and the targets used to resolve
``matched_targets`` come from the process's index of them (projections/targetindex.py: seeded from
the targets read model plus the target events after its checkpoint, read in one snapshot of the
database, then caught up from the log on every call).

A rollout stream grows by an outcome per target per revision, so a long history is tens of
thousands of rows: beyond ``INLINE_ROWS`` the fold runs in a worker thread (as replay's does,
api/lanes.py), and the event loop keeps serving meanwhile. An event that does not decode stops
the decision (``ledger.errors.Undecodable``: 503 naming it, nothing written), never passed by
(projections/undecodable.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from ledger import store as store_mod
from projections import fleet, freezes, tables, targetindex, undecodable

INLINE_ROWS: Final = 2_000

_STREAM: Final = """
SELECT position, stream, version, type,
       CASE WHEN type = 'RevisionSubmitted' THEN (data || '{"manifests": []}'::jsonb)::text
            ELSE data::text END,
       metadata::text, recorded_at
FROM events WHERE stream = $1 ORDER BY version
"""
_ROLLOUT: Final = """
SELECT position, stream, version, type,
       CASE WHEN type = 'RevisionSubmitted' THEN (data || '{"manifests": []}'::jsonb)::text
            ELSE data::text END,
       metadata::text, recorded_at
FROM events WHERE stream = ANY($1::text[]) AND position <= $2 ORDER BY position
"""
# Active deployments whose current revision names an object called one of $2 (narrowed further by
# projections.sharing), as of the read models' checkpoint.
_HOLDING: Final = """
SELECT d.name FROM read_deployments d
JOIN read_revisions r ON r.deployment = d.name AND r.revision = d.current_revision
WHERE NOT d.removed AND d.name <> $1
  AND EXISTS (SELECT 1 FROM jsonb_array_elements(r.manifests) m WHERE m->'metadata'->>'name' = ANY($2::text[]))
"""
# ... and those changed since the checkpoint that ever named one (their stream's own index finds them).
_CHANGED: Final = """
SELECT c.stream FROM (SELECT DISTINCT stream FROM events
                      WHERE category = 'deployment' AND position > $1 AND stream <> $2) c
WHERE EXISTS (SELECT 1 FROM events e WHERE e.stream = c.stream AND e.type = 'RevisionSubmitted'
              AND EXISTS (SELECT 1 FROM jsonb_array_elements(e.data->'manifests') m
                          WHERE m->'metadata'->>'name' = ANY($3::text[])))
"""
_WHOLE: Final = """
SELECT position, stream, version, type, data::text, metadata::text, recorded_at
FROM events WHERE stream = ANY($1::text[]) ORDER BY position
"""
_FREEZES: Final = """
SELECT position, stream, version, type, data::text, metadata::text, recorded_at
FROM events WHERE category = 'freeze' ORDER BY position
"""


@dataclass(frozen=True, slots=True)
class Stored:
    """An event already in the log, as an idempotent retry finds it."""

    position: int
    stream: str
    version: int
    type: str
    data: str
    metadata: str
    recorded_at: dt.datetime


@dataclass(frozen=True, slots=True)
class StreamState:
    """One stream folded: ``version`` and ``position`` of its last event (0 when it has none)."""

    state: fleet.Fleet
    version: int
    position: int


async def stream_state(store: store_mod.EventStore, stream: str, *, timeout: float | None = None) -> StreamState:
    async with store.connection(timeout) as conn:
        rows = await conn.fetch(_STREAM, stream, timeout=timeout)
    state = fleet.empty()
    await _fold(state, rows)
    return StreamState(state, rows[-1][2] if rows else 0, rows[-1][0] if rows else 0)


async def _fold(state: fleet.Fleet, rows: Sequence[Sequence[object]]) -> None:
    """Fold ``rows`` into ``state``; off the event loop when there are many."""
    if len(rows) > INLINE_ROWS:
        await asyncio.to_thread(undecodable.fold_all, "commands", state, rows)
    else:
        undecodable.fold_all("commands", state, rows)


async def deployment_with_rollout(store: store_mod.EventStore, index: targetindex.Index, name: str, *,
                                  timeout: float | None = None) -> tuple[fleet.Fleet, StreamState]:
    """A deployment as its progressive rollout sees it: the fleet's targets as of now, then the
    ``deployment-<name>`` and ``rollout-<name>`` streams folded in log order (manifests elided).
    Also the ``rollout-<name>`` stream's own state, for an append's expected version."""
    found = await targets(store, index, timeout=timeout)
    state = fleet.empty()
    state.targets.update(found)
    streams = [f"deployment-{name}", f"rollout-{name}"]
    async with store.connection(timeout) as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events", timeout=timeout)
            rows = await conn.fetch(_ROLLOUT, streams, head, timeout=timeout)
    await _fold(state, rows)
    version = position = 0
    for row in reversed(rows):
        if row[1] == streams[1]:
            version, position = row[2], row[0]
            break
    return state, StreamState(state, version, position)


async def by_ids(store: store_mod.EventStore, event_ids: list[UUID], *,
                 timeout: float | None = None) -> dict[UUID, Stored]:
    """The events stored under any of ``event_ids``, by id (missing ids are left out)."""
    async with store.connection(timeout) as conn:
        rows = await conn.fetch(
            "SELECT id, position, stream, version, type, data::text, metadata::text, recorded_at"
            " FROM events WHERE id = ANY($1::uuid[])", event_ids, timeout=timeout)
    return {row[0]: Stored(*row[1:]) for row in rows}


async def targets(store: store_mod.EventStore, index: targetindex.Index, *,
                  timeout: float | None = None) -> Mapping[str, fleet.Target]:
    """Every target (retired included) as of now, read-only: ``index`` caught up from the log
    (projections/targetindex.py)."""
    return await index.now(store, timeout=timeout)


async def freezes_now(store: store_mod.EventStore, *, timeout: float | None = None) -> dict[str, freezes.Freeze]:
    """Every freeze (removed ones included) folded from the log: they are few, so no read model."""
    async with store.connection(timeout) as conn:
        rows = await conn.fetch(_FREEZES, timeout=timeout)
    state = fleet.empty()
    for row in rows:
        undecodable.fold("commands", state, row)
    return state.freezes


async def holders(store: store_mod.EventStore, deployment: str, names: list[str],
                  found_targets: Mapping[str, fleet.Target], *, own: bool = False,
                  timeout: float | None = None) -> fleet.Fleet:
    """The other deployments that may hold an object called one of ``names`` now (projections/
    sharing.py decides which do), folded whole from the log over ``found_targets`` (loaded by
    :func:`targets`), so their rollouts are the targets they match now; with ``own``, the
    deployment's own stream too (a rollback restores its manifests).

    Candidates: those the read models show holding such a name at their checkpoint, and every
    deployment with an event after it, read in one snapshot: a deployment holding one at the head
    is one or the other, whatever the projector's lag.
    """
    own_stream = f"deployment-{deployment}"
    async with store.connection(timeout) as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            streams = {own_stream} if own else set()
            if names:
                checkpoint = await tables.checkpoint(conn)
                streams.update(f"deployment-{r[0]}" for r in await conn.fetch(
                    _HOLDING, deployment, names, timeout=timeout))
                streams.update(r[0] for r in await conn.fetch(
                    _CHANGED, checkpoint, own_stream, names, timeout=timeout))
            rows = await conn.fetch(_WHOLE, sorted(streams), timeout=timeout) if streams else []
    state = fleet.empty()
    state.targets.update(found_targets)
    for row in rows:
        undecodable.fold("commands", state, row)
    return state
