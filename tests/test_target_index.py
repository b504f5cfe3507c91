"""The targets a command decides on come from the API process's index of them
(projections/targetindex.py): built whole once, then caught up with only the target events after
the last call, and still every target as of now, whatever the projector's lag, after a reset of the
log under the running process, and with many requests at once."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from api import keys
from ledger import errors, events, records
from projections import loading, targetindex
from tests.applier_support import append, eventually
from tests.projected import live_client, manifests, submit  # noqa: F401 - fixture
from tests.test_projector_stall import insert_raw_data

pytestmark = pytest.mark.timeout(60)


async def _register(store, *names: str, **labels: str) -> None:
    for name in names:
        await append(store, events.TargetRegistered(target=name, labels=labels, server=f"https://{name}"))


async def _register_many(store, count: int, **labels: str) -> None:
    batch = [records.NewEvent(uuid.uuid4(), "TargetRegistered", {
        "target": f"t-{i}", "labels": labels, "server": f"https://t-{i}"}) for i in range(count)]
    for i, event in enumerate(batch):
        await store.append(f"target-t-{i}", "no_stream", [event])


async def test_a_second_revision_reads_only_the_target_events_after_the_first(client, store):
    await _register_many(store, 40, env="prod")
    index = client.app[keys.TARGETS]
    first = await submit(client, "web", selector="env=prod")
    assert len(first["matched_targets"]) == 40
    assert (index.seeds, index.rows_read) == (1, 40)
    await _register(store, "late", env="prod")
    await append(store, events.TargetRetired(target="t-0"))
    second = await submit(client, "web", selector="env=prod", value="2")
    assert set(second["matched_targets"]) == set(first["matched_targets"]) - {"t-0"} | {"late"}
    assert (index.seeds, index.rows_read) == (1, 42)
    exported = await (await client.get("/metrics")).text()
    assert "ledger_target_index_builds_total 1.0" in exported
    assert "ledger_target_index_rows_total 42.0" in exported


async def test_targets_registered_relabelled_and_retired_just_before_a_revision_decide_it(client, store):
    # The projector is off: the read models never see these, the log does.
    await _register(store, "a", "b", "c", env="prod")
    assert (await submit(client, "web", selector="env=prod"))["matched_targets"] == ["a", "b", "c"]
    await _register(store, "d", env="prod")
    await append(store, events.TargetUpdated(target="a", labels={"env": "dev"}, server="https://a"))
    await append(store, events.TargetRetired(target="b"))
    assert (await submit(client, "web", selector="env=prod", value="2"))["matched_targets"] == ["c", "d"]
    appended = await client.post("/v1/streams/deployment-api/events", json={"events": [{
        "type": "RevisionSubmitted", "data": {"deployment": "api", "revision": 1, "selector": "env",
                                              "manifests": manifests("1", "api")}}]})
    assert appended.status == 201, await appended.text()
    stored = await store.read_stream("deployment-api")
    assert json.loads(stored[0].data)["matched_targets"] == ["a", "c", "d"]


async def test_a_lagging_projector_leaves_nothing_out(live, db):
    store = live.app[keys.STORE]
    await _register(store, "a", "b", env="prod")
    await eventually(lambda: _projected(db, 2), what="read models caught up")
    assert (await submit(live, "web", selector="env=prod"))["matched_targets"] == ["a", "b"]
    seeded = await live.app[keys.TARGETS].now(store)
    assert seeded["a"].labels is seeded["b"].labels  # built from the read model, alike labels shared
    async with db.transaction():
        # The projector waits for this lock: it cannot fold what follows before the revision.
        await db.execute("LOCK TABLE read_targets IN ACCESS EXCLUSIVE MODE")
        await _register(store, "c", env="prod")
        await append(store, events.TargetRetired(target="a"))
        second = await submit(live, "web", selector="env=prod", value="2")
    assert second["matched_targets"] == ["b", "c"]


async def _projected(db, position: int) -> bool:
    return bool(await db.fetchval("SELECT position >= $1 FROM projection_checkpoints", position))


async def test_a_mapping_handed_out_is_never_changed_by_a_later_call(client, store):
    await _register(store, "a", env="prod")
    index = client.app[keys.TARGETS]
    before = await index.now(store)
    await append(store, events.TargetUpdated(target="a", labels={"env": "dev"}, server="https://a"))
    await _register(store, "b", env="prod")
    after = await index.now(store)
    assert (dict(before["a"].labels), sorted(before)) == ({"env": "prod"}, ["a"])
    assert (dict(after["a"].labels), sorted(after)) == ({"env": "dev"}, ["a", "b"])
    with pytest.raises(TypeError):
        before["b"] = after["b"]  # type: ignore[index]


async def test_concurrent_loads_fold_each_event_once(client, store):
    index = client.app[keys.TARGETS]
    await _register(store, "a", "b", env="prod")
    seeded = await asyncio.gather(*(index.now(store) for _ in range(8)))
    assert all(found is seeded[0] for found in seeded)
    await _register(store, "c", "d", "e", env="prod")
    caught_up = await asyncio.gather(*(index.now(store) for _ in range(8)))
    assert all(found is caught_up[0] for found in caught_up)
    assert sorted(caught_up[0]) == ["a", "b", "c", "d", "e"]
    assert (index.seeds, index.rows_read) == (1, 5)


async def test_a_log_reset_under_the_running_api_seeds_the_index_anew(client, store, db):
    await _register(store, "a", "b", env="prod")
    assert (await submit(client, "web", selector="env=prod"))["matched_targets"] == ["a", "b"]
    # Another log of the same length and more (a restore, a reset): the event the index folded up
    # to is now another event, so nothing of the old fleet may survive into a decision.
    await db.execute("ALTER TABLE events DISABLE TRIGGER USER")
    await db.execute("TRUNCATE events")
    await db.execute("ALTER TABLE events ENABLE TRIGGER USER")
    fresh = [records.NewEvent(uuid.uuid4(), "TargetRegistered", {"target": name, "labels": {"env": "prod"},
                                                                 "server": f"https://{name}"})
             for name in ("x", "y", "z")]
    for event in fresh:
        await insert_raw_data(db, f"target-{event.data['target']}", event.type, event.data)
    index = client.app[keys.TARGETS]
    assert sorted(await loading.targets(store, index)) == ["x", "y", "z"]
    assert index.seeds == 2


async def test_an_undecodable_target_event_stops_every_decision_and_leaves_the_index_as_it_was(
        client, store, db):
    await _register(store, "a", env="prod")
    index = client.app[keys.TARGETS]
    before = await index.now(store)
    poison = await insert_raw_data(db, "target-b", "TargetRegistered", {"target": "b", "labels": {"env": 1}})
    for _ in range(2):
        answer = await client.post("/v1/deployments/web/revisions", json={
            "manifests": manifests(),
            "selector": "env=prod"})
        assert answer.status == 503, await answer.text()
        assert (await answer.json(content_type=None))["position"] == poison
    with pytest.raises(errors.Undecodable):
        await index.now(store)
    assert (sorted(before), dict(before["a"].labels)) == (["a"], {"env": "prod"})
    assert await db.fetchval("SELECT count(*) FROM events WHERE category = 'deployment'") == 0



async def test_a_seed_built_off_the_event_loop_is_the_same_fleet(client, store, monkeypatch):
    monkeypatch.setattr(targetindex, "INLINE_ROWS", 3)
    await _register(store, "a", "b", "c", "d", env="prod")
    await append(store, events.TargetRetired(target="b"))
    found = await client.app[keys.TARGETS].now(store)
    assert {n: (dict(t.labels), t.retired) for n, t in found.items()} == {
        "a": ({"env": "prod"}, False), "b": ({"env": "prod"}, True), "c": ({"env": "prod"}, False),
        "d": ({"env": "prod"}, False)}
