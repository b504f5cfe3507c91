"""What the pages read: the read models (projections/tables.py) and the log, in a few set-based
queries per page.

The fleet matrix is the hot one (1,000 targets x 50 deployments): it reads the targets and the
deployments (small), the page's rollouts only, and the counts per deployment and per group with
``GROUP BY`` in PostgreSQL, all in one repeatable-read transaction with the projection's
checkpoint, so the ``position`` a page reports is exactly the log position it shows. What does
not depend on the page (targets, deployments, counts) is kept per position (``Cache``). The page's
live updates start after that position (api/ui/static/fleet.js), so nothing falls between.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from projections import fleet, selectors, tables

UNLABELLED: Final = ""
# Outcomes and observations per target, newest first (types of issues 12 and 13 included: a type
# absent from the log simply matches nothing).
OUTCOME_TYPES: Final = ("ApplySucceeded", "ApplyFailed", "TargetHealthy", "TargetDegraded", "DriftDetected")


@dataclass
class Cell:
    state: str
    revision: int
    error: str | None = None


@dataclass
class Matrix:
    position: int
    deployments: list[fleet.Deployment]
    targets: list[fleet.Target]  # the page's rows (grouped: every target matched)
    matched: int  # targets the selector matches
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    column_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    group_counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)


_COUNTS_ALL: Final = "SELECT deployment, state, count(*) FROM read_rollouts GROUP BY 1, 2"
# A list of target names is joined (a hash join), never tested with = ANY(), which compares each
# row with every name of the list.
_COUNTS_OF: Final = ("SELECT r.deployment, r.state, count(*) FROM read_rollouts r"
                     " JOIN unnest($1::text[]) AS f(name) ON f.name = r.target GROUP BY 1, 2")
_GROUP_COUNTS: Final = ("SELECT r.deployment, f.value, r.state, count(*) FROM read_rollouts r"
                        " JOIN unnest($1::text[], $2::text[]) AS f(name, value) ON f.name = r.target"
                        " GROUP BY 1, 2, 3")
# A page's hundred names: = ANY() (the index on target, or one pass) beats a join here.
_CELLS: Final = ("SELECT deployment, target, state, desired_revision,"
                 " CASE WHEN state IN ('degraded', 'failed', 'applying')"
                 " THEN concat_ws(': ', reason, coalesce(message, last_error)) END"
                 " FROM read_rollouts WHERE target = ANY($1::text[])")


@dataclass
class Overview:
    """What a fleet view needs besides its page of cells; it depends only on the log position and
    the view (selector, group), so it is kept per position (``Cache``)."""

    deployments: list[fleet.Deployment]
    chosen: list[fleet.Target]
    labels: list[str]
    column_counts: dict[str, dict[str, int]]
    groups: list[str]
    group_counts: dict[tuple[str, str], dict[str, int]]


class Cache:
    """Overviews by (position, selector, group), the last few. The read models at a checkpoint are
    exactly the fold of the log up to it, so an overview computed at a position stays true for it:
    dashboards open on the same fleet share one computation until the next event."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._found: collections.OrderedDict[tuple[int, str, str], Overview] = collections.OrderedDict()

    def get(self, key: tuple[int, str, str]) -> Overview | None:
        found = self._found.get(key)
        if found is not None:
            self._found.move_to_end(key)
        return found

    def put(self, key: tuple[int, str, str], overview: Overview) -> None:
        self._found[key] = overview
        while len(self._found) > self.size:
            self._found.popitem(last=False)


async def _overview(conn: asyncpg.Connection, selector: selectors.Selector | None, group: str) -> Overview:
    targets = [t for t in await tables.load_targets(conn) if not t.retired]
    deployments = [d for d in await tables.load_deployments(conn) if not d.removed]
    chosen = [t for t in targets if selector is None or selector.matches(t.labels)]
    names = [t.name for t in chosen]
    found = Overview(deployments, chosen, sorted({key for t in targets for key in t.labels}), {}, [], {})
    if group:
        values = [t.labels.get(group, UNLABELLED) for t in chosen]
        found.groups = sorted(set(values))
        for deployment, value, state, count in await conn.fetch(_GROUP_COUNTS, names, values):
            found.group_counts.setdefault((deployment, value), {})[state] = count
            column = found.column_counts.setdefault(deployment, {})
            column[state] = column.get(state, 0) + count
        return found
    every = selector is None
    for deployment, state, count in await (conn.fetch(_COUNTS_ALL) if every else conn.fetch(_COUNTS_OF, names)):
        found.column_counts.setdefault(deployment, {})[state] = count
    return found


async def matrix(conn: asyncpg.Connection, selector: selectors.Selector | None, *, group: str, offset: int,
                 limit: int, cache: Cache | None = None) -> Matrix:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await tables.checkpoint(conn)
        key = (position, str(selector) if selector is not None else "", group)
        overview = cache.get(key) if cache is not None else None
        if overview is None:
            overview = await _overview(conn, selector, group)
            if cache is not None:
                cache.put(key, overview)
        found = Matrix(position, overview.deployments, overview.chosen, len(overview.chosen),
                       column_counts=overview.column_counts, groups=overview.groups,
                       group_counts=overview.group_counts, labels=overview.labels)
        if group:
            return found
        found.targets = overview.chosen[offset:offset + limit]
        for deployment, target, state, revision, error in await conn.fetch(_CELLS, [t.name for t in found.targets]):
            found.cells[deployment, target] = Cell(state, revision, error)
    return found


@dataclass
class Event:
    position: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: dt.datetime
    prev_hash: str
    hash: str
    id: str

    @property
    def actor(self) -> str | None:
        actor = self.metadata.get("actor")
        return actor if isinstance(actor, str) else None

    def pretty(self, what: str) -> str:
        return json.dumps(getattr(self, what), indent=2, sort_keys=True, ensure_ascii=False)


_EVENT_COLUMNS: Final = ("position, stream, version, type, data::text, metadata::text, recorded_at, prev_hash,"
                         " hash, id::text")


def _event(row: Any) -> Event:
    return Event(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]), row[6], row[7], row[8],
                 row[9])


@dataclass(frozen=True)
class LogFilter:
    types: tuple[str, ...] = ()
    stream: str = ""  # a whole stream name, or a category (no hyphen)
    actor: str = ""

    def where(self, args: list[Any]) -> str:
        clauses = []
        if self.types:
            args.append(list(self.types))
            clauses.append(f"type = ANY(${len(args)}::text[])")
        if self.stream:
            args.append(self.stream)
            clauses.append(f"stream = ${len(args)}" if "-" in self.stream else f"category = ${len(args)}")
        if self.actor:
            args.append(self.actor)
            clauses.append(f"metadata->>'actor' = ${len(args)}")
        return "".join(f" AND {c}" for c in clauses)


async def log_page(conn: asyncpg.Connection, wanted: LogFilter, *, before: int | None, after: int = 0,
                   limit: int = 50) -> list[Event]:
    """Events matching ``wanted``, newest first, below ``before`` and above ``after``."""
    args: list[Any] = [after]
    query = f"SELECT {_EVENT_COLUMNS} FROM events WHERE position > $1"
    if before is not None:
        args.append(before)
        query += f" AND position < ${len(args)}"
    query += wanted.where(args)
    args.append(limit)
    query += f" ORDER BY position DESC LIMIT ${len(args)}"
    return [_event(r) for r in await conn.fetch(query, *args)]


async def event_at(conn: asyncpg.Connection, position: int) -> Event | None:
    row = await conn.fetchrow(f"SELECT {_EVENT_COLUMNS} FROM events WHERE position = $1", position)
    return _event(row) if row is not None else None


async def outcomes(conn: asyncpg.Connection, target: str, limit: int = 20) -> list[Event]:
    """The target's latest outcomes and observations over every deployment, newest first."""
    rows = await conn.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE category = 'rollout' AND type = ANY($1::text[])"
        " AND data->>'target' = $2 ORDER BY position DESC LIMIT $3", list(OUTCOME_TYPES), target, limit)
    return [_event(r) for r in rows]


async def deployment_events(conn: asyncpg.Connection, name: str, limit: int = 20) -> list[Event]:
    """The latest events of the deployment's own stream and its rollout stream, newest first."""
    rows = await conn.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream = ANY($1::text[]) ORDER BY position DESC LIMIT $2",
        [f"deployment-{name}", f"rollout-{name}"], limit)
    return [_event(r) for r in rows]


async def in_waves(conn: asyncpg.Connection, name: str) -> bool:
    """Whether the deployment's latest revision carries a rollout strategy (waves to fold and show)."""
    found = await conn.fetchval(
        "SELECT coalesce(data->'strategy', 'null'::jsonb) <> 'null'::jsonb FROM events WHERE stream = $1"
        " AND type IN ('RevisionSubmitted', 'RolledBack') ORDER BY version DESC LIMIT 1", f"deployment-{name}")
    return bool(found)
