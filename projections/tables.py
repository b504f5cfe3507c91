"""The read-model tables: writing the rows a batch of events changed, and reading them back.

Rows are written from the folded fleet, never computed separately, so they hold exactly what
``projections.fleet`` says. ``Changes`` collects which rows a batch may have touched (from the event
types alone); ``write`` then upserts those rows from the fleet in a few set-based statements, so a
rollout updated a thousand times in one batch is written once. Rollout rows that may have vanished
(a deployment retargeted or removed, a target relabelled or retired) are deleted by deployment or
target and written again from the fleet.

``FORMAT`` names the fold: bump it whenever the fold's meaning or the snapshot encoding changes; a
projector that finds another format in its checkpoint rebuilds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import msgspec

from ledger import access, events
from projections import fleet

FORMAT: Final = 5
NAME: Final = "fleet"
TABLES: Final = ("read_targets", "read_deployments", "read_revisions", "read_rollouts", "fleet_snapshots")

_TARGET_COLUMNS: Final = ("name, labels::text, access::text, retired, version, position, registered_at,"
                          " updated_at")
_DEPLOYMENT_COLUMNS: Final = ("name, current_revision, selector, paused, pause_reason, removed, version,"
                              " position, created_at, updated_at")
_ROLLOUT_COLUMNS: Final = ("target, desired_revision, applied_revision, state, outcome, last_error,"
                           " last_attempt_at, attempts, objects_applied, health, reason, message")

_UPSERT_TARGETS: Final = """
INSERT INTO read_targets (name, labels, access, retired, version, position, registered_at, updated_at)
SELECT n, l::jsonb, a::jsonb, r, v, p, ra, ua
FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::int[], $6::bigint[], $7::timestamptz[],
            $8::timestamptz[])
     AS u(n, l, a, r, v, p, ra, ua)
ON CONFLICT (name) DO UPDATE SET
    labels = EXCLUDED.labels, access = EXCLUDED.access, retired = EXCLUDED.retired, version = EXCLUDED.version, position = EXCLUDED.position,
    registered_at = EXCLUDED.registered_at, updated_at = EXCLUDED.updated_at
"""
_UPSERT_DEPLOYMENTS: Final = """
INSERT INTO read_deployments (name, current_revision, selector, paused, pause_reason, removed, version,
                              position, created_at, updated_at)
SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::bool[], $5::text[], $6::bool[], $7::int[],
                     $8::bigint[], $9::timestamptz[], $10::timestamptz[])
ON CONFLICT (name) DO UPDATE SET
    current_revision = EXCLUDED.current_revision, selector = EXCLUDED.selector,
    paused = EXCLUDED.paused, pause_reason = EXCLUDED.pause_reason, removed = EXCLUDED.removed,
    version = EXCLUDED.version, position = EXCLUDED.position, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at
"""
_UPSERT_REVISIONS: Final = """
INSERT INTO read_revisions (deployment, revision, manifests, selector, message, matched_targets, actor,
                            recorded_at, position, rolled_back_to, progress_deadline_seconds, self_heal,
                            override_reason, override_freezes)
SELECT d, n, m::jsonb, s, msg, ARRAY(SELECT jsonb_array_elements_text(mt::jsonb)), a, ra, p, rb, pd, sh,
       NULLIF(orr, ''), ARRAY(SELECT jsonb_array_elements_text(ofz::jsonb))
FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::timestamptz[], $9::bigint[], $10::int[], $11::int[], $12::bool[], $13::text[], $14::text[])
     AS u(d, n, m, s, msg, mt, a, ra, p, rb, pd, sh, orr, ofz)
ON CONFLICT (deployment, revision) DO UPDATE SET
    manifests = EXCLUDED.manifests, selector = EXCLUDED.selector, message = EXCLUDED.message,
    matched_targets = EXCLUDED.matched_targets, actor = EXCLUDED.actor,
    recorded_at = EXCLUDED.recorded_at, position = EXCLUDED.position,
    rolled_back_to = EXCLUDED.rolled_back_to,
    progress_deadline_seconds = EXCLUDED.progress_deadline_seconds, self_heal = EXCLUDED.self_heal,
    override_reason = EXCLUDED.override_reason, override_freezes = EXCLUDED.override_freezes
"""
_UPSERT_ROLLOUTS: Final = """
INSERT INTO read_rollouts (deployment, target, desired_revision, applied_revision, state, outcome,
                           last_error, last_attempt_at, attempts, objects_applied, health, reason,
                           message)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[],
                     $8::timestamptz[], $9::int[], $10::int[], $11::text[], $12::text[], $13::text[])
ON CONFLICT (deployment, target) DO UPDATE SET
    desired_revision = EXCLUDED.desired_revision, applied_revision = EXCLUDED.applied_revision,
    state = EXCLUDED.state, outcome = EXCLUDED.outcome, last_error = EXCLUDED.last_error,
    last_attempt_at = EXCLUDED.last_attempt_at, attempts = EXCLUDED.attempts,
    objects_applied = EXCLUDED.objects_applied, health = EXCLUDED.health, reason = EXCLUDED.reason,
    message = EXCLUDED.message
"""
_SAVE_CHECKPOINT: Final = """
INSERT INTO projection_checkpoints (name, position, format, updated_at) VALUES ($1, $2, $3, now())
ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, format = EXCLUDED.format,
                                 updated_at = EXCLUDED.updated_at
"""

_encode: Final = msgspec.json.Encoder()

# What each event type can change, looked up by exact type (cheaper than pattern matching per event).
_OUTCOME, _TARGET, _REVISION, _DEPLOYMENT = range(4)
_KINDS: Final[dict[type[Any], int]] = {
    events.ApplySucceeded: _OUTCOME, events.ApplyFailed: _OUTCOME,
    events.TargetHealthy: _OUTCOME, events.TargetDegraded: _OUTCOME,
    events.TargetRegistered: _TARGET, events.TargetUpdated: _TARGET, events.TargetRetired: _TARGET,
    events.RevisionSubmitted: _REVISION, events.RolledBack: _REVISION,
    events.DeploymentPaused: _DEPLOYMENT, events.DeploymentResumed: _DEPLOYMENT,
    events.DeploymentRemoved: _DEPLOYMENT,
}


@dataclass
class Changes:
    """Which read-model rows the events folded since the last write may have changed."""

    targets: set[str] = field(default_factory=set)
    deployments: set[str] = field(default_factory=set)
    revisions: set[tuple[str, int]] = field(default_factory=set)
    rollouts: set[tuple[str, str]] = field(default_factory=set)
    rollouts_of_deployments: set[str] = field(default_factory=set)
    rollouts_of_targets: set[str] = field(default_factory=set)
    count: int = 0

    def note(self, event: events.AnyEvent | None) -> None:
        """Count one folded event (None: one that did not decode) and the rows it may change."""
        self.count += 1
        kind = _KINDS.get(type(event))
        if kind == _OUTCOME:
            self.rollouts.add((event.deployment, event.target))  # type: ignore[union-attr]
        elif kind == _TARGET:
            self.targets.add(event.target)  # type: ignore[union-attr]
            self.rollouts_of_targets.add(event.target)  # type: ignore[union-attr]
        elif kind == _REVISION:
            self.deployments.add(event.deployment)  # type: ignore[union-attr]
            self.revisions.add((event.deployment, event.revision))  # type: ignore[union-attr]
            self.rollouts_of_deployments.add(event.deployment)  # type: ignore[union-attr]
        elif kind == _DEPLOYMENT:
            self.deployments.add(event.deployment)  # type: ignore[union-attr]
            self.rollouts_of_deployments.add(event.deployment)  # type: ignore[union-attr]

    def __bool__(self) -> bool:
        return self.count > 0


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in range(width)]


def _rollout_rows(state: fleet.Fleet, changes: Changes) -> list[tuple[Any, ...]]:
    keep: dict[tuple[str, str], fleet.Rollout] = {}
    for name in changes.rollouts_of_deployments:
        d = state.deployments.get(name)
        if d is not None:
            for target, rollout in d.rollouts.items():
                keep[(name, target)] = rollout
    if changes.rollouts_of_targets:
        for name, d in state.deployments.items():
            for target in changes.rollouts_of_targets:
                found = d.rollouts.get(target)
                if found is not None:
                    keep[(name, target)] = found
    for name, target in changes.rollouts:
        d = state.deployments.get(name)
        single = d.rollouts.get(target) if d is not None else None
        if single is not None:
            keep[(name, target)] = single
    return [
        (name, target, r.desired_revision, r.applied_revision, r.state, r.outcome, r.last_error,
         r.last_attempt_at, r.attempts, r.objects_applied, r.health, r.reason, r.message)
        for (name, target), r in keep.items()
    ]


@dataclass(frozen=True)
class Rows:
    """The rows to write, extracted from the fleet up front so folding may go on while they are
    written (see ``projections.runner``)."""

    targets: list[list[Any]]
    deployments: list[list[Any]]
    revisions: list[list[Any]]
    rollouts: list[list[Any]]
    drop_deployments: list[str]
    drop_targets: list[str]

    async def write(self, conn: asyncpg.Connection) -> None:
        """Upsert the rows; call inside the transaction that saves the checkpoint."""
        if self.targets[0]:
            await conn.execute(_UPSERT_TARGETS, *self.targets)
        if self.deployments[0]:
            await conn.execute(_UPSERT_DEPLOYMENTS, *self.deployments)
        if self.revisions[0]:
            await conn.execute(_UPSERT_REVISIONS, *self.revisions)
        if self.drop_deployments or self.drop_targets:
            await conn.execute(
                "DELETE FROM read_rollouts WHERE deployment = ANY($1::text[]) OR target = ANY($2::text[])",
                self.drop_deployments, self.drop_targets)
        if self.rollouts[0]:
            await conn.execute(_UPSERT_ROLLOUTS, *self.rollouts)


def rows(state: fleet.Fleet, changes: Changes) -> Rows:
    """The rows ``changes`` names, as ``state`` has them now."""
    targets = [state.targets[n] for n in changes.targets if n in state.targets]
    deployments = [state.deployments[n] for n in changes.deployments if n in state.deployments]
    revisions = []
    for name, number in changes.revisions:
        d = state.deployments.get(name)
        r = d.revisions.get(number) if d is not None else None
        if r is not None:
            revisions.append((name, number, r.manifests.decode(), r.selector, r.message,
                              _encode.encode(r.matched_targets).decode(), r.actor, r.recorded_at,
                              r.position, r.rolled_back_to, r.progress_deadline_seconds, r.self_heal,
                              r.override, _encode.encode(r.override_freezes).decode()))
    return Rows(
        targets=_columns([
            (t.name, _encode.encode(t.labels).decode(), _encode.encode(t.access).decode(), t.retired,
             t.version, t.position, t.registered_at, t.updated_at)
            for t in targets], 8),
        deployments=_columns([
            (d.name, d.current_revision, d.selector, d.paused, d.pause_reason, d.removed, d.version,
             d.position, d.created_at, d.updated_at)
            for d in deployments], 10),
        revisions=_columns(revisions, 14),
        rollouts=_columns(_rollout_rows(state, changes), 13),
        drop_deployments=sorted(changes.rollouts_of_deployments),
        drop_targets=sorted(changes.rollouts_of_targets),
    )


async def save_checkpoint(conn: asyncpg.Connection, position: int) -> None:
    await conn.execute(_SAVE_CHECKPOINT, NAME, position, FORMAT)


async def checkpoint_row(conn: asyncpg.Connection) -> tuple[int, int] | None:
    """(position, format) of the fleet projection, or None before its first write."""
    row = await conn.fetchrow("SELECT position, format FROM projection_checkpoints WHERE name = $1", NAME)
    return (row["position"], row["format"]) if row is not None else None


async def checkpoint(conn: asyncpg.Connection) -> int:
    """How far the read models have folded the log (0 when they never did, or hold another format)."""
    row = await checkpoint_row(conn)
    return row[0] if row is not None and row[1] == FORMAT else 0


async def reset(conn: asyncpg.Connection) -> None:
    """Empty every read model and snapshot and set the checkpoint to 0; call inside a transaction."""
    await conn.execute("TRUNCATE " + ", ".join(TABLES))
    await save_checkpoint(conn, 0)


_access_decoder: Final = msgspec.json.Decoder(access.Access)


def target_of(row: Any) -> fleet.Target:
    """A row of ``target_rows`` as the fleet's target."""
    return fleet.Target(row[0], msgspec.json.decode(row[1]), _access_decoder.decode(row[2]), *row[3:])


def _deployment(row: Any) -> fleet.Deployment:
    return fleet.Deployment(*row)


async def load_targets(conn: asyncpg.Connection, name: str | None = None) -> list[fleet.Target]:
    if name is None:
        rows = await conn.fetch(f"SELECT {_TARGET_COLUMNS} FROM read_targets ORDER BY name")
    else:
        rows = await conn.fetch(f"SELECT {_TARGET_COLUMNS} FROM read_targets WHERE name = $1", name)
    return [target_of(r) for r in rows]


async def target_rows(conn: asyncpg.Connection, *, timeout: float | None = None) -> list[Any]:
    """Every row of the targets read model, not yet built (``target_of``), so that a caller may
    build tens of thousands of them off the event loop."""
    return list(await conn.fetch(f"SELECT {_TARGET_COLUMNS} FROM read_targets", timeout=timeout))


async def load_deployments(conn: asyncpg.Connection, name: str | None = None) -> list[fleet.Deployment]:
    if name is None:
        rows = await conn.fetch(f"SELECT {_DEPLOYMENT_COLUMNS} FROM read_deployments ORDER BY name")
    else:
        rows = await conn.fetch(f"SELECT {_DEPLOYMENT_COLUMNS} FROM read_deployments WHERE name = $1", name)
    return [_deployment(r) for r in rows]


async def load_rollouts(conn: asyncpg.Connection, *, deployment: str | None = None,
                        target: str | None = None) -> list[tuple[str, fleet.Rollout]]:
    """(deployment, rollout) pairs, ordered by deployment then target."""
    query = f"SELECT deployment, {_ROLLOUT_COLUMNS} FROM read_rollouts"
    args: list[str] = []
    if deployment is not None:
        args.append(deployment)
        query += f" WHERE deployment = ${len(args)}"
    if target is not None:
        args.append(target)
        query += (" AND" if len(args) > 1 else " WHERE") + f" target = ${len(args)}"
    rows = await conn.fetch(query + " ORDER BY deployment, target", *args)
    return [(r[0], fleet.Rollout(*r[1:])) for r in rows]


async def rollout_states(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    """deployment -> state -> count of its rollouts."""
    counts: dict[str, dict[str, int]] = {}
    for row in await conn.fetch("SELECT deployment, state, count(*) FROM read_rollouts GROUP BY 1, 2"):
        counts.setdefault(row[0], {})[row[1]] = row[2]
    return counts


async def load_revisions(conn: asyncpg.Connection, deployment: str, *, with_manifests: bool = False,
                         numbers: list[int] | None = None, from_revision: int = 1,
                         limit: int | None = None) -> list[fleet.Revision]:
    manifests = "manifests::text" if with_manifests else "'[]'"
    query = (f"SELECT revision, {manifests}, selector, message, matched_targets, actor, recorded_at,"
             " position, rolled_back_to, progress_deadline_seconds, self_heal, override_reason, override_freezes"
             " FROM read_revisions WHERE deployment = $1 AND revision >= $2")
    args: list[Any] = [deployment, from_revision]
    if numbers is not None:
        args.append(numbers)
        query += f" AND revision = ANY(${len(args)}::int[])"
    query += " ORDER BY revision"
    if limit is not None:
        args.append(limit)
        query += f" LIMIT ${len(args)}"
    rows = await conn.fetch(query, *args)
    return [fleet.Revision(r[0], r[1].encode(), r[2], r[3], tuple(r[4]), r[5], r[6], r[7], r[8],
                           progress_deadline_seconds=r[9], self_heal=r[10], override=r[11] or "",
                           override_freezes=tuple(r[12] or ())) for r in rows]
