"""Reading the read models for the API, rendered through ``projections.views``.

Each query runs in one repeatable-read transaction together with the projection's checkpoint, so
the ``position`` reported with the rows is exactly the log position they reflect.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from projections import fleet, freezerules, freezes, selectors, tables, views


def _states(rollouts: list[tuple[str, fleet.Rollout]]) -> list[str]:
    return [r.state for _, r in rollouts]


async def targets(conn: asyncpg.Connection, selector: selectors.Selector | None = None, *,
                  include_retired: bool = False) -> dict[str, Any]:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await tables.checkpoint(conn)
        found = await tables.load_targets(conn)
    chosen = [
        t for t in found
        if (include_retired or not t.retired)
        and (selector is None or (not t.retired and selector.matches(t.labels)))
    ]
    return {"as_of": position, "targets": [views.target(t) for t in chosen]}


async def target(conn: asyncpg.Connection, name: str) -> dict[str, Any] | None:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await tables.checkpoint(conn)
        found = await tables.load_targets(conn, name)
        rollouts = await tables.load_rollouts(conn, target=name) if found else []
    if not found:
        return None
    return {"as_of": position, **views.target(found[0]),
            "rollouts": [views.rollout(d, r) for d, r in rollouts]}


async def deployments(conn: asyncpg.Connection, *, include_removed: bool = False) -> dict[str, Any]:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await tables.checkpoint(conn)
        found = await tables.load_deployments(conn)
        counts = await tables.rollout_states(conn)
    listed = []
    for d in found:
        if d.removed and not include_removed:
            continue
        states = [state for state, n in counts.get(d.name, {}).items() for _ in range(n)]
        listed.append(views.deployment(d, states))
    return {"as_of": position, "deployments": listed}


async def deployment(conn: asyncpg.Connection, name: str, *, table: Mapping[str, freezes.Freeze] | None = None,
                     now: dt.datetime | None = None) -> dict[str, Any] | None:
    """The deployment with its rollouts; with the freeze ``table`` and ``now``, a rollout a freeze
    holds says so (``frozen``: the freezes and until when; absent otherwise, so the shape is the
    replay's, /v1/state, while nothing is frozen)."""
    holds: dict[str, freezerules.Hold] = {}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await tables.checkpoint(conn)
        found = await tables.load_deployments(conn, name)
        rollouts = await tables.load_rollouts(conn, deployment=name) if found else []
        if table and now is not None and any(r.state in freezerules.WAITING for _, r in rollouts):
            holds = await _holds(conn, name, [r for _, r in rollouts], table, now)
    if not found:
        return None
    return {"as_of": position, **views.deployment(found[0], _states(rollouts)),
            "rollouts": [{**views.rollout(d, r), **({"frozen": freezerules.view(holds[r.target])} if r.target in holds else {})}
                         for d, r in rollouts]}


async def _holds(conn: asyncpg.Connection, name: str, rollouts: list[fleet.Rollout],
                 table: Mapping[str, freezes.Freeze], now: dt.datetime) -> dict[str, freezerules.Hold]:
    """target -> the freezes holding its desired revision now (projections/freezerules.py's rule)."""
    waiting = [r for r in rollouts if r.state in freezerules.WAITING]
    labels = {t.name: t.labels for t in await tables.load_targets(conn) if t.name in {r.target for r in waiting}}
    revisions = {r.number: r for r in await tables.load_revisions(
        conn, name, numbers=sorted({r.desired_revision for r in waiting}))}
    holds = {}
    for r in waiting:
        recorded = revisions.get(r.desired_revision)
        found = freezerules.shown_frozen(
            table, labels.get(r.target, {}), now, state=r.state, revision=r.desired_revision,
            applied_revision=r.applied_revision, overridden=recorded is not None and bool(recorded.override))
        if found is not None:
            holds[r.target] = found
    return holds


async def overridden(conn: asyncpg.Connection, deployments: list[str]) -> set[tuple[str, int]]:
    """(deployment, revision) of the ``deployments``' revisions an admin let through freezes."""
    rows = await conn.fetch("SELECT deployment, revision FROM read_revisions"
                            " WHERE deployment = ANY($1::text[]) AND override_reason IS NOT NULL", deployments)
    return {(r[0], r[1]) for r in rows}


async def revisions(conn: asyncpg.Connection, name: str, *, from_revision: int = 1,
                    limit: int = 100) -> dict[str, Any] | None:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await tables.checkpoint(conn)
        found = await tables.load_deployments(conn, name)
        rows = await tables.load_revisions(conn, name, from_revision=from_revision, limit=limit + 1)
    if not found:
        return None
    following = rows[limit].number if len(rows) > limit else None
    return {"as_of": position, "deployment": name,
            "current_revision": found[0].current_revision,
            "revisions": [views.revision(name, r) for r in rows[:limit]],
            "next_from_revision": following}


async def revision(conn: asyncpg.Connection, name: str, number: int) -> fleet.Revision | None:
    rows = await tables.load_revisions(conn, name, with_manifests=True, numbers=[number])
    return rows[0] if rows else None


def manifests(revision_: fleet.Revision) -> list[dict[str, Any]]:
    parsed: list[dict[str, Any]] = json.loads(revision_.manifests)
    return parsed
