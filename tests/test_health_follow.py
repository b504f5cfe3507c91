"""Health followed after apply (issue 12): the applier watches what it applied through the emulator
over real HTTP and records TargetHealthy / TargetDegraded once per verdict.

Each test runs the service in-process with the applier on, appends events to the store and asserts
effects: health events in the log (ids, sequence, reasons), the objects' live status on the emulated
clusters, the applier's watch bookkeeping. Waits are bounded (``eventually``), never measured."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from api import keys
from emulator import Emulator
from handlers import follow
from ledger import events
from ledger import settings as settings_mod
from projections import health
from tests import credfiles
from tests.applier_support import (
    append,
    client,  # noqa: F401 - fixture
    configmap,
    deployment_object,
    emu,  # noqa: F401 - fixture
    eventually,
    namespace,
    register,
    submit,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings)


def pod_template(name: str, image: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": image}]}}


def every_kind() -> list[dict[str, Any]]:
    """One object of each kind the rules know, and two they call current once applied."""
    job_template = pod_template("migrate", "migrate:1")
    job_template["spec"]["restartPolicy"] = "Never"
    return [
        namespace(),
        configmap("settings", v="1"),
        deployment_object("web"),
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "apps"},
         "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                  "template": pod_template("db", "redis:7")}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "apps"},
         "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": pod_template("agent", "agent:1")}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "apps"},
         "spec": {"backoffLimit": 1, "template": job_template}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "apps"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "front", "namespace": "apps"},
         "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": "apps"},
         "spec": {"containers": [{"name": "main", "image": "probe:1"}]}},
    ]


async def health_events(db: Any, deployment: str = "web") -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, position, type, data::text AS data FROM events WHERE stream = 'rollout-' || $1"
        " AND type IN ('TargetHealthy', 'TargetDegraded') ORDER BY position", deployment)
    found = []
    for r in rows:
        event = events.decode(r["type"], r["data"])
        data = {name: msgspec.to_builtins(getattr(event, name)) for name in event.__struct_fields__}
        found.append({"id": r["id"], "position": r["position"], "type": r["type"], **data})
    return found


async def position_of(db: Any, type_: str, target: str, deployment: str = "web") -> int | None:
    found = await db.fetchval("SELECT min(position) FROM events WHERE stream = 'rollout-' || $1 AND type = $2"
                              " AND data->>'target' = $3", deployment, type_, target)
    return int(found) if found is not None else None


def _verdicts(found: list[dict[str, Any]]) -> dict[str, list[str]]:
    per: dict[str, list[str]] = {}
    for e in found:
        per.setdefault(e["target"], []).append(e["type"])
    return per


async def test_each_kind_is_followed_to_healthy_through_watches_and_recorded_once(client, store, db, tmp_path):  # noqa: F811
    kube = Emulator(["eu-1", "eu-2"], cluster_settings={"rollout_delay": 0.3, "nodes": 2})
    await kube.start()
    try:
        credfiles.add_emulator(tmp_path, kube)
        for name in ("eu-1", "eu-2"):
            await register(store, kube, name, region="eu")
        await submit(store, "web", every_kind(), "region=eu")
        found = await eventually(lambda: _when(health_events(db), lambda f: len(f) == 2), what="both healthy")
        assert {e["type"] for e in found} == {"TargetHealthy"}
        for event in found:
            assert event["id"] == follow.event_id("web", 1, event["target"], 1, 1)
            assert (event["revision"], event["attempt"], event["sequence"]) == (1, 1, 1)
            assert len(event["objects"]) == len(every_kind())
            applied = await position_of(db, "ApplySucceeded", event["target"])
            assert applied is not None and applied < event["position"]
            cluster = kube.cluster(event["target"])
            for manifest in every_kind():
                meta = manifest["metadata"]
                live = cluster.get(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])
                assert live is not None
                assert health.assess(live).status is health.Status.HEALTHY, (manifest["kind"], live.get("status"))
            watches = [r for r in cluster.requests if r.query.get("watch") == "true"]
            # one watch per kind with a rule (and namespace), none for Namespace and ConfigMap
            kinds = {r.path.rsplit("/", 1)[1] for r in watches}
            assert kinds == {"deployments", "statefulsets", "daemonsets", "jobs", "persistentvolumeclaims",
                             "services", "pods"}
        status = client.app[keys.APPLIER].health.status()
        assert status["following"] == 2 and status["watches"] == 14 and status["lists"] == 14
        # The state as it stood: progressing once applied, healthy at the head.
        applied = await position_of(db, "ApplySucceeded", "eu-1")
        then = await (await client.get(f"/v1/state?at={applied}")).json()
        now = await (await client.get("/v1/state?at=head")).json()
        assert {r["target"]: r["state"] for r in then["deployments"][0]["rollouts"]}["eu-1"] == "progressing"
        assert {r["target"]: r["state"] for r in now["deployments"][0]["rollouts"]} == {
            "eu-1": "healthy", "eu-2": "healthy"}
    finally:
        await kube.stop()


async def _when(found_coro: Any, check: Any) -> Any:
    found = await found_coro
    return found if check(found) else None


def crashloop(name: str, **spec: Any) -> dict[str, Any]:
    found = deployment_object(name, image=f"{name}:crashloop")
    found["spec"].update(spec)
    return found


AVAILABLE = {"replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1, "conditions": [
    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}


async def test_a_target_not_healthy_by_the_revisions_deadline_is_degraded_and_healthy_once_it_recovers(
        client, store, db, emu: Emulator):  # noqa: F811
    emu.cluster("eu-1").configure({"controllers": False})  # statuses only change when written
    for name in ("eu-1", "eu-2"):
        await register(store, emu, name, region="eu")
    await register(store, emu, "us-1", region="us")
    await append(store, events.RevisionSubmitted(
        deployment="web", revision=1, manifests=[namespace(), crashloop("web")], selector="region=eu",
        progress_deadline_seconds=1))
    # The Deployment's own deadline passes first: the rule's reason, from the emulator's condition.
    await append(store, events.RevisionSubmitted(
        deployment="api", revision=1, manifests=[namespace(), crashloop("api", progressDeadlineSeconds=1)],
        selector="region=us"))
    found = await eventually(lambda: _when(health_events(db), lambda f: len(f) == 2), what="both degraded")
    assert [(e["target"], e["type"], e["reason"]) for e in sorted(found, key=lambda e: e["target"])] == [
        ("eu-1", "TargetDegraded", "ProgressDeadline"), ("eu-2", "TargetDegraded", "ProgressDeadline")]
    for event in found:
        assert event["object"] == {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "apps", "name": "web"}
        assert event["message"].startswith("not healthy 1s after it was applied: ")
        assert event["id"] == follow.event_id("web", 1, event["target"], 1, 1)
    api = await eventually(lambda: _when(health_events(db, "api"), bool), what="api degraded")
    assert [(e["target"], e["type"], e["reason"]) for e in api] == [
        ("us-1", "TargetDegraded", "ProgressDeadlineExceeded")]
    web = await (await client.get("/v1/state?at=head")).json()
    rollouts = {(d["name"], r["target"]): r for d in web["deployments"] for r in d["rollouts"]}
    assert rollouts[("web", "eu-1")]["state"] == "degraded"
    assert rollouts[("web", "eu-1")]["reason"] == "ProgressDeadline"
    assert rollouts[("web", "eu-1")]["message"].startswith("Deployment apps/web: not healthy 1s after")
    assert rollouts[("api", "us-1")]["reason"] == "ProgressDeadlineExceeded"
    # The same apply, still followed: once the Deployment is available, the target is healthy again.
    live = emu.cluster("eu-1").get("apps/v1", "Deployment", "apps", "web")
    assert live is not None
    emu.cluster("eu-1").patch_object("apps/v1", "Deployment", "apps", "web", {"status": {
        **AVAILABLE, "observedGeneration": live["metadata"]["generation"]}})
    found = await eventually(lambda: _when(health_events(db), lambda f: len(f) == 3), what="eu-1 healthy again")
    assert _verdicts(found) == {"eu-1": ["TargetDegraded", "TargetHealthy"], "eu-2": ["TargetDegraded"]}
    again = found[-1]
    assert (again["sequence"], again["id"]) == (2, follow.event_id("web", 1, "eu-1", 1, 2))
    state = await (await client.get("/v1/state?at=head")).json()
    eu1 = next(r for d in state["deployments"] if d["name"] == "web" for r in d["rollouts"] if r["target"] == "eu-1")
    assert (eu1["state"], eu1["reason"]) == ("healthy", "ProgressDeadline")


def _informer(service: Any, target: str, kind: str = "Deployment") -> Any:
    informers = service.app[keys.APPLIER].health.watches.informers
    return next((i for key, i in informers.items() if key[0] == target and key[2] == kind), None)


async def test_a_dropped_watch_is_resumed_and_an_expired_one_listed_again(client, store, db, emu: Emulator):  # noqa: F811
    emu.cluster("eu-1").configure({"controllers": False})
    await register(store, emu, "eu-1", region="eu")
    await submit(store, "web", [namespace(), deployment_object("web")], "region=eu")
    informer = await eventually(lambda: _connected(client, "eu-1"), what="watching eu-1")
    assert (informer.lists, informer.resumes) == (1, 0)
    assert emu.cluster("eu-1").drop_watches() == 1
    await eventually(lambda: _connected(client, "eu-1", resumes=1), what="watch resumed")
    assert informer.lists == 1  # resumed from its resourceVersion, not listed again
    cluster = emu.cluster("eu-1")
    live = cluster.get("apps/v1", "Deployment", "apps", "web")
    assert live is not None
    cluster.patch_object("apps/v1", "Deployment", "apps", "web", {"status": {
        **AVAILABLE, "observedGeneration": live["metadata"]["generation"]}})
    found = await eventually(lambda: _when(health_events(db), bool), what="healthy through the resumed watch")
    assert [e["type"] for e in found] == ["TargetHealthy"]
    # History compacted past the watch's version, then the watch dropped: it must list again.
    cluster.compact()
    cluster.drop_watches()
    await eventually(lambda: _connected(client, "eu-1", lists=2), what="listed again after 410 Gone")
    degraded = {**AVAILABLE, "observedGeneration": live["metadata"]["generation"], "conditions": [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": 'ReplicaSet "web-1" has timed out progressing.'}]}
    cluster.patch_object("apps/v1", "Deployment", "apps", "web", {"status": degraded})
    found = await eventually(lambda: _when(health_events(db), lambda f: len(f) == 2), what="degraded later")
    assert [(e["type"], e["sequence"]) for e in found] == [("TargetHealthy", 1), ("TargetDegraded", 2)]
    assert found[1]["reason"] == "ProgressDeadlineExceeded"
    assert 'timed out progressing' in found[1]["message"]


async def _connected(service: Any, target: str, *, lists: int = 1, resumes: int = 0) -> Any:
    informer = _informer(service, target)
    if informer is None or not informer.connected or informer.lists < lists or informer.resumes < resumes:
        return None
    return informer


@pytest.mark.timeout(240)
async def test_200_targets_at_once_all_reach_healthy_with_one_watch_each(client, store, db, tmp_path):  # noqa: F811
    names = [f"edge-{n:03d}" for n in range(200)]
    kube = Emulator(names, cluster_settings={"rollout_delay": 0.2})
    await kube.start()
    try:
        credfiles.add_emulator(tmp_path, kube)
        for name in names:
            await register(store, kube, name, fleet="edge")
        await submit(store, "web", [namespace(), configmap("settings", v="1"), deployment_object("web")], "fleet=edge")
        found = await eventually(lambda: _when(health_events(db), lambda f: len(f) >= 200), timeout=200,
                                 what="200 targets healthy")
        assert sorted(e["target"] for e in found) == names
        assert {(e["type"], e["sequence"]) for e in found} == {("TargetHealthy", 1)}
        status = client.app[keys.APPLIER].health.status()
        assert (status["following"], status["watches"], status["clusters"]) == (200, 200, 200)
        for name in names:
            watches = [r for r in kube.cluster(name).requests if r.query.get("watch") == "true"]
            assert [r.path for r in watches] == ["/apis/apps/v1/namespaces/apps/deployments"]
        state = await (await client.get("/v1/state?at=head")).json()
        assert state["deployments"][0]["summary"]["healthy"] == 200
    finally:
        await kube.stop()
