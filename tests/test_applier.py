"""The applier converges targets to their deployments' current revisions, for every trigger.

Each test runs the service in-process with the applier on, talks to emulated clusters over real
HTTP through kubernetes-asyncio, appends events to the store, and asserts effects: objects (and
their labels) on the clusters, outcome events in the log with their ids and attempts.
"""

from __future__ import annotations

import pytest

from emulator import Emulator
from handlers import outcomes as outcomes_mod
from ledger import events
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
    rollback,
    submit,
    succeeded,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings)


def labels_of(obj: dict | None) -> dict:
    assert obj is not None
    return obj["metadata"].get("labels", {})


async def test_a_revision_is_applied_to_the_selected_targets_with_ledger_labels(store, db, emu: Emulator):  # noqa: F811
    for name, region in (("eu-1", "eu"), ("eu-2", "eu"), ("us-1", "us")):
        await register(store, emu, name, region=region)
    revision = await submit(store, "web", [configmap("web-config", greeting="hi"), deployment_object("web"),
                                           namespace()], "region=eu")
    found = await eventually(lambda: _succeeded(db, "web", revision, {"eu-1", "eu-2"}), what="applied to eu")
    for cluster in ("eu-1", "eu-2"):
        cm = emu.cluster(cluster).get("v1", "ConfigMap", "apps", "web-config")
        assert cm is not None and cm["data"] == {"greeting": "hi"}
        assert labels_of(cm)["ledger.dev/deployment"] == "web"
        assert labels_of(cm)["ledger.dev/revision"] == "1"
        assert labels_of(emu.cluster(cluster).get("apps/v1", "Deployment", "apps", "web"))["ledger.dev/revision"] == "1"
        assert emu.cluster(cluster).applied_config("v1", "ConfigMap", "apps", "web-config", "ledger") is not None
        # The namespace is applied before the objects in it, though the manifest lists it last.
        patches = [r.path for r in emu.cluster(cluster).requests if r.method == "PATCH"]
        assert patches[0] == "/api/v1/namespaces/apps"
    assert emu.cluster("us-1").get("v1", "ConfigMap", "apps", "web-config") is None
    outcome = next(o for o in found if o["target"] == "eu-1")
    assert outcome["attempt"] == 1
    assert outcome["id"] == outcomes_mod.event_id("web", 1, "eu-1", 1)
    assert {(o["kind"], o["name"]) for o in outcome["objects"]} == {
        ("Namespace", "apps"), ("ConfigMap", "web-config"), ("Deployment", "web")}
    assert outcome["metadata"]["actor"] == "applier"


async def _succeeded(db, deployment, revision, targets):
    found = await outcomes(db, deployment)
    return found if succeeded(found, revision, targets) else None


async def test_a_new_revision_updates_objects_and_prunes_the_ones_it_dropped(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    await submit(store, "web", [namespace(), configmap("a", v="1"), configmap("b", v="1")], "region=eu")
    await eventually(lambda: _succeeded(db, "web", 1, {"eu-1"}))
    await submit(store, "web", [namespace(), configmap("a", v="2")], "region=eu")
    found = await eventually(lambda: _succeeded(db, "web", 2, {"eu-1"}))
    cluster = emu.cluster("eu-1")
    assert live(cluster, "v1", "ConfigMap", "apps", "a")["data"] == {"v": "2"}
    assert labels_of(cluster.get("v1", "ConfigMap", "apps", "a"))["ledger.dev/revision"] == "2"
    assert cluster.get("v1", "ConfigMap", "apps", "b") is None
    second = next(o for o in found if o["revision"] == 2)
    assert second["pruned"] == [{"apiVersion": "v1", "kind": "ConfigMap", "name": "b", "namespace": "apps"}]


async def test_rollback_restores_the_old_manifests_as_a_new_revision(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    await submit(store, "web", [namespace(), configmap("a", v="1")], "region=eu")
    await submit(store, "web", [namespace(), configmap("a", v="2"), configmap("extra")], "region=eu")
    await eventually(lambda: _succeeded(db, "web", 2, {"eu-1"}))
    revision = await rollback(store, "web", 1)
    await eventually(lambda: _succeeded(db, "web", revision, {"eu-1"}))
    cluster = emu.cluster("eu-1")
    assert live(cluster, "v1", "ConfigMap", "apps", "a")["data"] == {"v": "1"}
    assert labels_of(cluster.get("v1", "ConfigMap", "apps", "a"))["ledger.dev/revision"] == str(revision)
    assert cluster.get("v1", "ConfigMap", "apps", "extra") is None


async def test_nothing_is_applied_while_paused_and_resume_applies_the_current_revision(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    await submit(store, "web", [namespace(), configmap("a", v="1")], "region=eu")
    await eventually(lambda: _succeeded(db, "web", 1, {"eu-1"}))
    await append(store, events.DeploymentPaused(deployment="web", reason="freeze"))
    await submit(store, "web", [namespace(), configmap("a", v="2")], "region=eu")
    await register(store, emu, "eu-2", region="eu")
    # A marker deployment submitted after the pause is applied: once it is, the paused one
    # would have been too.
    await submit(store, "marker", [configmap("marker", namespace="default")], "region=eu")
    await eventually(lambda: _succeeded(db, "marker", 1, {"eu-1", "eu-2"}))
    assert live(emu.cluster("eu-1"), "v1", "ConfigMap", "apps", "a")["data"] == {"v": "1"}
    assert emu.cluster("eu-2").get("v1", "ConfigMap", "apps", "a") is None
    assert [o for o in await outcomes(db, "web") if o["revision"] == 2] == []
    await append(store, events.DeploymentResumed(deployment="web"))
    await eventually(lambda: _succeeded(db, "web", 2, {"eu-1", "eu-2"}))
    assert live(emu.cluster("eu-1"), "v1", "ConfigMap", "apps", "a")["data"] == {"v": "2"}
    assert live(emu.cluster("eu-2"), "v1", "ConfigMap", "apps", "a")["data"] == {"v": "2"}


async def test_a_removed_deployment_is_pruned_from_every_target_then_recorded(store, db, emu: Emulator):  # noqa: F811
    for name in ("eu-1", "eu-2"):
        await register(store, emu, name, region="eu")
    await submit(store, "web", [namespace(), configmap("a"), deployment_object("web")], "region=eu")
    await eventually(lambda: _succeeded(db, "web", 1, {"eu-1", "eu-2"}))
    emu.cluster("eu-1").put_object(configmap("unrelated", namespace="default"))
    await append(store, events.DeploymentRemoved(deployment="web"))
    found = await eventually(lambda: _succeeded(db, "web", outcomes_mod.PRUNE, {"eu-1", "eu-2"}))
    for cluster in ("eu-1", "eu-2"):
        assert emu.cluster(cluster).get("v1", "ConfigMap", "apps", "a") is None
        assert emu.cluster(cluster).get("apps/v1", "Deployment", "apps", "web") is None
        assert emu.cluster(cluster).get("v1", "Namespace", None, "apps") is None
    assert emu.cluster("eu-1").get("v1", "ConfigMap", "default", "unrelated") is not None
    prune = next(o for o in found if o["revision"] == 0 and o["target"] == "eu-1")
    assert prune["objects"] == []
    # Dependents are deleted before the namespace that holds them.
    assert prune["pruned"][-1] == {"apiVersion": "v1", "kind": "Namespace", "name": "apps"}
    assert {p["kind"] for p in prune["pruned"]} == {"Namespace", "ConfigMap", "Deployment"}
    assert prune["id"] == outcomes_mod.event_id("web", 0, "eu-1", 1)


async def test_relabelled_targets_gain_or_lose_the_deployment(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    await register(store, emu, "us-1", region="us")
    await submit(store, "web", [namespace(), configmap("a")], "region=eu")
    await eventually(lambda: _succeeded(db, "web", 1, {"eu-1"}))
    await register(store, emu, "us-1", updated=True, region="eu")
    await register(store, emu, "eu-1", updated=True, region="moved")
    await eventually(lambda: _succeeded(db, "web", 1, {"us-1"}))
    await eventually(lambda: _succeeded(db, "web", 0, {"eu-1"}))
    assert emu.cluster("us-1").get("v1", "ConfigMap", "apps", "a") is not None
    assert emu.cluster("eu-1").get("v1", "ConfigMap", "apps", "a") is None
    # Back again: applied anew, with a fresh attempt number.
    await register(store, emu, "eu-1", updated=True, region="eu")
    found = await eventually(lambda: _count(db, "web", 1, "eu-1", 2))
    assert [o["attempt"] for o in found] == [1, 2]
    assert emu.cluster("eu-1").get("v1", "ConfigMap", "apps", "a") is not None


async def _count(db, deployment, revision, target, n):
    found = [o for o in await outcomes(db, deployment)
             if o["type"] == "ApplySucceeded" and o["revision"] == revision and o["target"] == target]
    return found if len(found) >= n else None


async def test_a_retired_target_is_left_alone(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    await register(store, emu, "eu-2", region="eu")
    await submit(store, "web", [namespace(), configmap("a", v="1")], "region=eu")
    await eventually(lambda: _succeeded(db, "web", 1, {"eu-1", "eu-2"}))
    await append(store, events.TargetRetired(target="eu-2"))
    before = len(emu.cluster("eu-2").requests)
    await submit(store, "web", [namespace(), configmap("a", v="2")], "region=eu")
    await append(store, events.DeploymentRemoved(deployment="web"))
    await eventually(lambda: _succeeded(db, "web", 0, {"eu-1"}))
    assert len(emu.cluster("eu-2").requests) == before
    assert live(emu.cluster("eu-2"), "v1", "ConfigMap", "apps", "a")["data"] == {"v": "1"}
    assert {o["target"] for o in await outcomes(db, "web") if o["position"] > 0 and o["revision"] != 1} == {"eu-1"}


async def test_a_target_whose_server_changes_is_applied_through_a_new_client(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "edge", cluster="eu-1", region="eu")
    await submit(store, "web", [namespace(), configmap("a")], "region=eu")
    await eventually(lambda: _succeeded(db, "web", 1, {"edge"}))
    await register(store, emu, "edge", cluster="eu-2", updated=True, region="eu")
    await eventually(lambda: _count(db, "web", 1, "edge", 2))
    assert emu.cluster("eu-2").get("v1", "ConfigMap", "apps", "a") is not None


class TestResync:
    @pytest.fixture
    def settings(self, settings: settings_mod.Settings) -> settings_mod.Settings:
        return settings.replace(resync_interval=0.3)

    async def test_periodic_resync_heals_manual_changes_and_records_only_the_heal(self, store, db, emu: Emulator):  # noqa: F811
        await register(store, emu, "eu-1", region="eu")
        await submit(store, "web", [namespace(), configmap("a", v="1")], "region=eu")
        await eventually(lambda: _succeeded(db, "web", 1, {"eu-1"}))
        cluster = emu.cluster("eu-1")
        # Quiet resyncs leave no trace in the log.
        await eventually(lambda: _resynced(cluster, 2), what="two resync passes")
        assert len(await outcomes(db, "web")) == 1
        cluster.patch_object("v1", "ConfigMap", "apps", "a", {"data": {"v": "manual"}})
        await eventually(lambda: _healed(cluster))
        found = await eventually(lambda: _count(db, "web", 1, "eu-1", 2))
        assert [o["attempt"] for o in found] == [1, 2]


async def _resynced(cluster, n):
    return len([r for r in cluster.requests if r.method == "PATCH"]) >= 2 * (n + 1)


async def _healed(cluster):
    return live(cluster, "v1", "ConfigMap", "apps", "a")["data"] == {"v": "1"}

