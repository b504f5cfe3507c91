"""Drift: on every resync the applier compares each live object with what it applied, records
``DriftDetected`` once per occurrence (however many resyncs see it, and across a restart), heals it
unless the revision says ``self_heal: false``, and counts a deleted object as drift.

Objects are changed behind the ledger's back through the emulator's own API, as another field
manager (``kubectl-edit``) would; everything else runs for real: PostgreSQL, the applier, HTTP
to the emulated cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from emulator import Emulator
from handlers import applier as applier_mod
from handlers import drift as drift_mod
from handlers import outcomes as outcomes_mod
from ledger import credfile, events, records
from ledger import settings as settings_mod
from tests.applier_support import (
    append,
    client,  # noqa: F401 - fixture
    configmap,
    deployment_object,
    emu,  # noqa: F401 - fixture
    eventually,
    live,
    namespace,
    outcomes,
    register,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(90)

EDITOR = "kubectl-edit"


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings, resync_interval=0.2)


async def _submit(es, manifests: list[dict[str, Any]], *, self_heal: bool = True) -> int:
    return await append(es, events.RevisionSubmitted(deployment="web", revision=1, manifests=manifests,
                                                     selector="region=eu", self_heal=self_heal))


async def _drifts(db) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT id, position, data::text AS data FROM events WHERE type = 'DriftDetected'"
                          " ORDER BY position")
    return [{"id": r["id"], "position": r["position"], **json.loads(r["data"])} for r in rows]


def _inspections(emulator: Emulator) -> int:
    """Resync passes seen by eu-1: dry-run applies of the ConfigMap."""
    return len([r for r in emulator.cluster("eu-1").requests
                if r.method == "PATCH" and r.query.get("dryRun") == "All" and r.path.endswith("/configmaps/a")])


async def _resyncs(emulator: Emulator, n: int) -> None:
    """Wait until ``n`` more resync passes have looked at the target."""
    seen = _inspections(emulator)
    await eventually(lambda: _true(_inspections(emulator) >= seen + n), what=f"{n} more resync passes")


async def _true(value: bool) -> bool:
    return value


async def _applied(db, attempts: int) -> list[dict[str, Any]]:
    found = [o for o in await outcomes(db, "web") if o["type"] == "ApplySucceeded"]
    return found if len(found) >= attempts else []


CM = {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "namespace": "apps"}


async def test_drift_is_recorded_once_over_several_resyncs_healed_and_a_later_drift_is_new(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    await _submit(store, [namespace(), configmap("a", v="1"), deployment_object("web")])
    await eventually(lambda: _applied(db, 1), what="revision 1 applied")
    cluster = emu.cluster("eu-1")
    await _resyncs(emu, 3)
    # Quiet resyncs, while the cluster's controllers move the Deployment's status: nothing recorded.
    assert await _drifts(db) == []
    assert [o["attempt"] for o in await outcomes(db, "web")] == [1]

    cluster.patch_object("v1", "ConfigMap", "apps", "a", {"data": {"v": "manual", "extra": "x"}}, manager=EDITOR)
    # Another manager's own field (data.extra) is not drift: it is neither reported nor removed.
    await eventually(lambda: _true(live(cluster, "v1", "ConfigMap", "apps", "a")["data"] == {"v": "1", "extra": "x"}),
                     what="drift healed")
    await _resyncs(emu, 3)
    found = await _drifts(db)
    assert len(found) == 1
    first = found[0]
    assert first["fields"] == ["data.v"]
    assert (first["deployment"], first["revision"], first["target"], first["object"]) == ("web", 1, "eu-1", CM)
    assert first["id"] == drift_mod.event_id("web", 1, "eu-1", 1)
    heals = await _applied(db, 2)
    assert [o["attempt"] for o in heals][:2] == [1, 2]
    assert heals[1]["position"] > first["position"], "drift is recorded before it is healed"
    assert [m["manager"] for m in live(cluster, "v1", "ConfigMap", "apps", "a")["metadata"]["managedFields"]
            if "f:v" in json.dumps(m["fieldsV1"])] == ["ledger"]

    # kubectl scale: the Deployment's spec.replicas drifted, and only that.
    cluster.patch_object("apps/v1", "Deployment", "apps", "web", {"spec": {"replicas": 5}}, manager=EDITOR)
    await eventually(lambda: _count(db, 2), what="the scaled Deployment recorded")
    found = await _drifts(db)
    assert (found[1]["object"]["kind"], found[1]["fields"]) == ("Deployment", ["spec.replicas"])
    await eventually(lambda: _applied(db, 3), what="scale healed")
    assert live(cluster, "apps/v1", "Deployment", "apps", "web")["spec"]["replicas"] == 1

    # Healed means the occurrence ended: drifting again is a new one, recorded and healed again.
    cluster.patch_object("v1", "ConfigMap", "apps", "a",
                         {"metadata": {"labels": {"ledger.dev/revision": "7"}}}, manager=EDITOR)
    await eventually(lambda: _applied(db, 4), what="label drift healed")
    await _resyncs(emu, 2)
    found = await _drifts(db)
    assert [d["fields"] for d in found] == [["data.v"], ["spec.replicas"], ["metadata.labels[ledger.dev/revision]"]]
    assert [d["id"] for d in found] == [drift_mod.event_id("web", 1, "eu-1", n) for n in (1, 2, 3)]
    assert [o["attempt"] for o in await outcomes(db, "web")] == [1, 2, 3, 4]
    assert live(cluster, "v1", "ConfigMap", "apps", "a")["metadata"]["labels"]["ledger.dev/revision"] == "1"


async def test_a_deleted_object_is_drift_and_is_recreated(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    await _submit(store, [namespace(), configmap("a", v="1")])
    await eventually(lambda: _applied(db, 1), what="revision 1 applied")
    cluster = emu.cluster("eu-1")
    assert cluster.delete_object("v1", "ConfigMap", "apps", "a")
    await eventually(lambda: _true(cluster.get("v1", "ConfigMap", "apps", "a") is not None), what="recreated")
    await _resyncs(emu, 2)
    found = await _drifts(db)
    assert [(d["object"], d["fields"]) for d in found] == [(CM, [drift_mod.DELETED])]
    assert live(cluster, "v1", "ConfigMap", "apps", "a")["data"] == {"v": "1"}
    assert [o["attempt"] for o in await _applied(db, 2)] == [1, 2]

    # The namespace deleted takes the ConfigMap with it: both recorded (one batch), both recreated.
    assert cluster.delete_object("v1", "Namespace", None, "apps")
    await eventually(lambda: _applied(db, 3), what="namespace recreated")
    assert live(cluster, "v1", "ConfigMap", "apps", "a")["data"] == {"v": "1"}
    found = await _drifts(db)
    assert [(d["object"]["kind"], d["fields"]) for d in found[1:]] == [
        ("Namespace", [drift_mod.DELETED]), ("ConfigMap", [drift_mod.DELETED])]
    assert found[2]["position"] == found[1]["position"] + 1


async def test_without_self_heal_drift_is_recorded_once_and_left_alone(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    await _submit(store, [namespace(), configmap("a", v="1"), configmap("b", v="1")], self_heal=False)
    await eventually(lambda: _applied(db, 1), what="revision 1 applied")
    cluster = emu.cluster("eu-1")
    cluster.patch_object("v1", "ConfigMap", "apps", "a", {"data": {"v": "manual"}}, manager=EDITOR)
    cluster.delete_object("v1", "ConfigMap", "apps", "b")
    await eventually(lambda: _drifts(db), what="drift recorded")
    await _resyncs(emu, 3)
    found = await _drifts(db)
    assert [(d["object"]["name"], d["fields"]) for d in found] == [("a", ["data.v"]), ("b", ["(deleted)"])]
    assert live(cluster, "v1", "ConfigMap", "apps", "a")["data"] == {"v": "manual"}
    assert cluster.get("v1", "ConfigMap", "apps", "b") is None
    assert [o["attempt"] for o in await outcomes(db, "web")] == [1]

    # Put back by hand, then changed again: the first occurrence ended, the second is recorded.
    cluster.patch_object("v1", "ConfigMap", "apps", "a", {"data": {"v": "1"}}, manager=EDITOR)
    await _resyncs(emu, 2)
    assert len(await _drifts(db)) == 2
    cluster.patch_object("v1", "ConfigMap", "apps", "a", {"data": {"v": "manual"}}, manager=EDITOR)
    await eventually(lambda: _count(db, 3), what="the new occurrence recorded")
    await _resyncs(emu, 2)
    found = await _drifts(db)
    assert [(d["object"]["name"], d["fields"]) for d in found] == [
        ("a", ["data.v"]), ("b", ["(deleted)"]), ("a", ["data.v"])]
    assert len({d["id"] for d in found}) == 3
    assert [o["attempt"] for o in await outcomes(db, "web")] == [1]


async def _count(db, n: int) -> bool:
    return len(await _drifts(db)) >= n


class TestRestart:
    """The applier run by the test itself, so it can be stopped and started again."""

    @pytest.fixture
    def settings(self, settings: settings_mod.Settings) -> settings_mod.Settings:
        return fast_settings(settings, applier=False, resync_interval=0.2)

    @contextlib.asynccontextmanager
    async def _applier(self, store, settings) -> AsyncIterator[applier_mod.Applier]:
        runner = applier_mod.Applier(store, settings.database_url or "", settings,
                                     credfile.Watched.from_settings(settings))
        task = asyncio.create_task(runner.run())
        try:
            await asyncio.wait_for(runner.ready.wait(), 30)
            yield runner
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def test_a_restart_does_not_record_an_unhealed_drift_again(self, store, db, emu, settings):  # noqa: F811
        await register(store, emu, "eu-1", region="eu")
        await _submit(store, [namespace(), configmap("a", v="1")], self_heal=False)
        cluster = emu.cluster("eu-1")
        async with self._applier(store, settings):
            await eventually(lambda: _applied(db, 1), what="revision 1 applied")
            cluster.patch_object("v1", "ConfigMap", "apps", "a", {"data": {"v": "manual"}}, manager=EDITOR)
            await eventually(lambda: _drifts(db), what="drift recorded")
        async with self._applier(store, settings):
            await _resyncs(emu, 3)
        assert len(await _drifts(db)) == 1
        assert live(cluster, "v1", "ConfigMap", "apps", "a")["data"] == {"v": "manual"}

    async def test_drift_recorded_by_a_process_that_died_before_healing_is_healed_not_recorded_again(
            self, store, db, emu, settings):  # noqa: F811
        await register(store, emu, "eu-1", region="eu")
        await _submit(store, [namespace(), configmap("a", v="1")])
        cluster = emu.cluster("eu-1")
        async with self._applier(store, settings):
            await eventually(lambda: _applied(db, 1), what="revision 1 applied")
        cluster.patch_object("v1", "ConfigMap", "apps", "a", {"data": {"v": "manual"}}, manager=EDITOR)
        # What a process that crashed right after recording the drift left in the log.
        recorded = events.DriftDetected(deployment="web", revision=1, target="eu-1",
                                        object=events.ObjectRef(api_version="v1", kind="ConfigMap", name="a",
                                                                namespace="apps"), fields=["data.v"])
        await store.append("rollout-web", "any", [records.NewEvent(
            id=drift_mod.event_id("web", 1, "eu-1", 1), type="DriftDetected", data=events.to_data(recorded),
            metadata={"actor": outcomes_mod.ACTOR})])
        async with self._applier(store, settings):
            await eventually(lambda: _applied(db, 2), what="drift healed")
            await _resyncs(emu, 2)
        assert live(cluster, "v1", "ConfigMap", "apps", "a")["data"] == {"v": "1"}
        assert [d["fields"] for d in await _drifts(db)] == [["data.v"]]
