"""The projector: rows and checkpoint together, catch-up then live, restart from a snapshot,
duplicate deliveries, rebuild, and a changed fold format."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from api import keys
from ledger import records
from projections import fleet, progress, queries, replay, runner, snapshots, tables, views
from tests.projected import live_client, read, register, submit  # noqa: F401 - fixture


def new(kind: str, **data: Any) -> records.NewEvent:
    return records.NewEvent(uuid.uuid4(), kind, data)


async def seed(store) -> int:
    """A small history written straight into the log: 11 events."""
    await store.append("target-a", "no_stream", [new("TargetRegistered", target="a", labels={"env": "prod"})])
    await store.append("target-b", "no_stream", [new("TargetRegistered", target="b", labels={"env": "prod"})])
    manifests = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}}]
    for revision in (1, 2):
        await store.append("deployment-web", "any", [new(
            "RevisionSubmitted", deployment="web", revision=revision, manifests=manifests, selector="env=prod",
            matched_targets=["a", "b"])])
    await store.append("rollout-web", "any", [
        new("ApplySucceeded", deployment="web", revision=2, target="a"),
        new("ApplyFailed", deployment="web", revision=2, target="b", error="boom", retryable=True)])
    await store.append("target-b", 1, [new("TargetUpdated", target="b", labels={"env": "dev"})])
    await store.append("deployment-web", "any", [new("DeploymentPaused", deployment="web", reason="x")])
    await store.append("deployment-api", "any", [new(
        "RevisionSubmitted", deployment="api", revision=1, manifests=manifests, selector="env")])
    await store.append("target-a", "any", [new("TargetRetired", target="a")])
    await store.append("deployment-api", "any", [new("DeploymentRemoved", deployment="api")])
    return 11


async def read_models(conn) -> dict[str, Any]:
    """Everything the read models hold, in the shape of views.state (minus position)."""
    targets = (await queries.targets(conn, include_retired=True))["targets"]
    deployments = (await queries.deployments(conn, include_removed=True))["deployments"]
    detailed = []
    for d in deployments:
        one = await queries.deployment(conn, d["name"])
        assert one is not None
        one.pop("as_of")
        detailed.append(one)
    with_rollouts = []
    for t in targets:
        one = await queries.target(conn, t["name"])
        assert one is not None
        one.pop("as_of")
        with_rollouts.append(one)
    return {"targets": with_rollouts, "deployments": detailed}


def replayed(state: fleet.Fleet) -> dict[str, Any]:
    view = views.state(state)
    return {"targets": view["targets"], "deployments": view["deployments"]}


async def test_catch_up_then_live_keeps_rows_equal_to_the_fold_with_the_checkpoint(store, db, database_url):
    total = await seed(store)
    tracker = progress.Progress()
    projector = runner.Projector(database_url, store=store, progress_=tracker, snapshot_every=4)
    task = asyncio.create_task(projector.run())
    try:
        assert await tracker.reached(total, 20)
        await store.append("deployment-web", "any", [new("DeploymentResumed", deployment="web")])
        assert await tracker.reached(total + 1, 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await db.fetchrow("SELECT position, format FROM projection_checkpoints") == (total + 1, tables.FORMAT)
    assert await read_models(db) == replayed(await replay.fleet_at(db, total + 1))
    assert [r[0] for r in await db.fetch("SELECT position FROM fleet_snapshots ORDER BY 1")] == [4, 8, 12]


async def test_a_repeated_position_is_a_duplicate_delivery_not_an_error(store, database_url):
    await seed(store)
    projector = runner.Projector(database_url)
    await projector.rebuild()
    before = fleet.copy(projector.state)
    changes = tables.Changes()
    for rec in await store.read_all(0, 100):
        row = (rec.position, rec.stream, rec.version, rec.type, rec.data, rec.metadata, rec.recorded_at)
        assert projector._fold(changes, row) is False
    assert projector.state == before and not changes


async def test_a_restart_resumes_at_the_checkpoint_from_the_nearest_snapshot(store, db, database_url):
    total = await seed(store)
    first = runner.Projector(database_url, snapshot_every=4)
    await first.rebuild(until=8)
    assert [r[0] for r in await db.fetch("SELECT position FROM fleet_snapshots ORDER BY 1")] == [4, 8]
    await db.execute("DELETE FROM fleet_snapshots WHERE position = 8")
    again = runner.Projector(database_url, store=store, snapshot_every=4)
    conn = await again._connect()
    try:
        await again._resume(conn)
        assert again.state == await replay.fleet_at(db, 8)
        await again._catch_up(conn)
    finally:
        await conn.close()
    assert await tables.checkpoint(db) == total
    assert await read_models(db) == replayed(await replay.fleet_at(db, total))


async def test_replay_from_a_snapshot_equals_a_fold_from_zero(store, db, database_url):
    total = await seed(store)
    await runner.Projector(database_url, snapshot_every=3).rebuild()
    state = await replay.fleet_at(db, 10)
    assert (await snapshots.nearest(db, 10)).position == 9  # type: ignore[union-attr]
    from_zero = fleet.empty()
    for rec in await store.read_all(0, total, until=10):
        fleet.apply_recorded(from_zero, rec)
    assert state == from_zero


async def test_rebuild_refuses_while_a_projector_runs(live, database_url):
    position = (await register(live, "a"))["position"]
    await read(live, "/v1/targets", position)
    with pytest.raises(runner.ProjectorBusy):
        await runner.Projector(database_url).rebuild()


async def test_a_projector_finding_another_fold_format_rebuilds(store, db, database_url, aiohttp_client, settings):
    from api import app as app_mod

    total = await seed(store)
    await runner.Projector(database_url).rebuild()
    await db.execute("UPDATE projection_checkpoints SET format = 999")
    await db.execute("UPDATE read_targets SET labels = '{\"stale\": \"yes\"}'")
    client = await aiohttp_client(app_mod.make_app(settings.replace(projector=True)))
    assert await client.app[keys.PROGRESS].reached(total, 20)
    assert await db.fetchval("SELECT format FROM projection_checkpoints") == tables.FORMAT
    assert await db.fetchval("SELECT count(*) FROM read_targets WHERE labels ? 'stale'") == 0
