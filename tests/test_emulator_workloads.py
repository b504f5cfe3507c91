"""The emulator behaves like a cluster: workload status moves on its own, and watches work as on a real one.

Everything goes through kubernetes-asyncio over real HTTP (typed APIs with ``watch.Watch``, and the
DynamicClient), and each stage of a rollout is judged by the ledger's own health rules
(projections.health), so the emulator is checked against the rules that will follow it. Waiting is
always for an event on a watch, bounded by the watch's own ``timeoutSeconds``; nothing measures time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiClient, AppsV1Api, Configuration, CoreV1Api
from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.dynamic import DynamicClient

from emulator import Emulator, Fault, serve
from projections import health

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

MANAGER = "ledger"
HEALTHY, PROGRESSING, DEGRADED = health.Status.HEALTHY, health.Status.PROGRESSING, health.Status.DEGRADED


class Kube:
    def __init__(self, api: ApiClient, dyn: DynamicClient) -> None:
        self.api = api
        self.dyn = dyn
        self.apps = AppsV1Api(api)
        self.core = CoreV1Api(api)

    async def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        resource = await self.dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        result = await self.dyn.server_side_apply(resource, body=body, field_manager=MANAGER)
        return dict(result.to_dict())

    async def follow(
        self, obj: dict[str, Any], until: Callable[[dict[str, Any]], bool], *, timeout: int = 20
    ) -> list[dict[str, Any]]:
        """Watch one object from ``obj``'s resourceVersion until ``until`` holds for a new state.

        Returns every state seen (the last one satisfies ``until``); fails if the watch times out first.
        """
        resource = await self.dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        meta = obj["metadata"]
        seen: list[dict[str, Any]] = []
        watcher = watch.Watch()
        async for event in self.dyn.watch(
            resource,
            namespace=meta.get("namespace"),
            name=meta["name"],
            resource_version=meta["resourceVersion"],
            timeout=timeout,
            watcher=watcher,
        ):
            state = dict(event["raw_object"])
            seen.append(state)
            if until(state):
                watcher.stop()
                await watcher.close()
                return seen
        raise AssertionError(f"the watch ended before the awaited state; saw {[verdict(s) for s in seen]}")


def verdict(obj: dict[str, Any]) -> tuple[str, str]:
    found = health.assess(obj)
    return found.status.value, found.reason


def becomes(status: health.Status) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: health.assess(obj).status is status


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with serve(clusters=["a"]) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def kube(emu: Emulator, tmp_path: Path) -> AsyncIterator[Kube]:
    api = ApiClient(Configuration(host=emu.cluster_url("a")))
    dyn = await DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    yield Kube(api, dyn)
    await api.close()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def configure(http: aiohttp.ClientSession, emu: Emulator, **settings: Any) -> dict[str, Any]:
    """Change cluster a's settings over the admin API, as a test in another process would."""
    async with http.patch(f"{emu.base_url}/_emulator/clusters/a/settings", json=settings) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


def pod_template(app: str, image: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "main", "image": image}]}}


def deployment(name: str, image: str = "nginx:1.27", replicas: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, image),
            **spec,
        },
    }


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": labels or {}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


# ------------------------------------------------------------------------------------ workloads


async def test_deployment_becomes_available_after_the_rollout_delay(
    emu: Emulator, kube: Kube, http: aiohttp.ClientSession
) -> None:
    await configure(http, emu, rollout_delay=0.3)
    applied = await kube.apply(deployment("web"))
    assert applied["metadata"]["generation"] == 1
    assert verdict(applied)[0] == "progressing"  # nothing has observed it yet
    seen = await kube.follow(applied, becomes(HEALTHY))
    observed = seen[0]
    assert observed["status"]["observedGeneration"] == 1
    assert verdict(observed) == ("progressing", "LessAvailable")
    conditions = {c["type"]: c for c in observed["status"]["conditions"]}
    assert conditions["Progressing"]["reason"] == "ReplicaSetUpdated"
    assert conditions["Available"]["status"] == "False"
    done = seen[-1]["status"]
    assert (done["readyReplicas"], done["availableReplicas"], done["updatedReplicas"]) == (2, 2, 2)
    assert {c["type"]: c["reason"] for c in done["conditions"]} == {
        "Available": "MinimumReplicasAvailable",
        "Progressing": "NewReplicaSetAvailable",
    }
    status_writers = {m["manager"] for m in seen[-1]["metadata"]["managedFields"] if m.get("subresource")}
    assert status_writers == {"kube-controller-manager"}


async def test_deployment_stays_progressing_until_its_delay_has_passed(
    emu: Emulator, kube: Kube, http: aiohttp.ClientSession
) -> None:
    await configure(http, emu, rollout_delay=3600)
    applied = await kube.apply(deployment("slow"))
    seen: list[tuple[str, str]] = []
    async for event in watch.Watch().stream(
        kube.apps.list_namespaced_deployment,
        "default",
        resource_version=applied["metadata"]["resourceVersion"],
        timeout_seconds=1,
    ):
        seen.append(verdict(event["raw_object"]))
    assert seen == [("progressing", "LessAvailable")]  # observed, then nothing until the delay ends
    assert emu.cluster("a").controllers.pending() == 1


async def test_a_spec_change_bumps_generation_and_rolls_out_again(
    emu: Emulator, kube: Kube, http: aiohttp.ClientSession
) -> None:
    await configure(http, emu, rollout_delay=0.2)
    first = await kube.apply(deployment("web"))
    await kube.follow(first, becomes(HEALTHY))
    second = await kube.apply(deployment("web", image="nginx:1.28"))
    assert second["metadata"]["generation"] == 2
    assert verdict(second) == ("progressing", "LatestGenerationNotObserved")
    seen = await kube.follow(second, becomes(HEALTHY))
    assert seen[0]["status"]["observedGeneration"] == 2
    assert verdict(seen[0]) == ("progressing", "ExtraPods")  # old pods still run beside the new
    relabelled = await kube.apply(
        {
            **deployment("web", image="nginx:1.28"),
            "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
        }
    )
    assert relabelled["metadata"]["generation"] == 2
    assert verdict(relabelled) == ("healthy", "")


async def test_crashloop_image_exceeds_its_progress_deadline(kube: Kube) -> None:
    applied = await kube.apply(deployment("broken", image="nginx:crashloop", progressDeadlineSeconds=1))
    seen = await kube.follow(applied, becomes(DEGRADED))
    assert verdict(seen[0]) == ("progressing", "LessAvailable")
    failed = seen[-1]
    assert verdict(failed) == ("degraded", "ProgressDeadlineExceeded")
    progressing = next(c for c in failed["status"]["conditions"] if c["type"] == "Progressing")
    assert progressing["status"] == "False"
    assert "has timed out progressing" in progressing["message"]
    assert failed["status"]["readyReplicas"] == 0


async def test_deployments_get_the_default_progress_deadline(kube: Kube) -> None:
    applied = await kube.apply(deployment("web"))
    assert applied["spec"]["progressDeadlineSeconds"] == 600


async def test_paused_deployment_is_observed_but_not_rolled_out(kube: Kube) -> None:
    applied = await kube.apply(deployment("held", paused=True))
    assert verdict(applied) == ("suspended", "DeploymentPaused")
    seen = await kube.follow(applied, lambda obj: "observedGeneration" in obj.get("status", {}))
    assert {c["type"]: c["reason"] for c in seen[-1]["status"]["conditions"]} == {
        "Progressing": "DeploymentPaused"
    }


def statefulset(name: str, image: str = "redis:7", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 3,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, image),
            **spec,
        },
    }


async def test_statefulset_rolls_out_and_updates_its_revision(kube: Kube) -> None:
    created = await kube.apply(statefulset("db"))
    seen = await kube.follow(created, becomes(HEALTHY))
    assert verdict(seen[0]) == ("progressing", "LessReady")
    first = seen[-1]["status"]
    assert first["currentRevision"] == first["updateRevision"]
    updated = await kube.apply(statefulset("db", image="redis:8"))
    seen = await kube.follow(updated, becomes(HEALTHY))
    assert verdict(seen[0]) == ("progressing", "RevisionMismatch")
    assert seen[0]["status"]["updateRevision"] != first["updateRevision"]
    done = seen[-1]["status"]
    assert done["currentRevision"] == done["updateRevision"] != first["updateRevision"]


async def test_statefulset_partition_updates_only_the_pods_above_it(kube: Kube) -> None:
    created = await kube.apply(statefulset("db"))
    await kube.follow(created, becomes(HEALTHY))
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}
    updated = await kube.apply(statefulset("db", image="redis:8", updateStrategy=strategy))
    seen = await kube.follow(updated, becomes(HEALTHY))
    assert verdict(seen[0]) == ("progressing", "PartitionRollout")
    done = seen[-1]["status"]
    assert (done["updatedReplicas"], done["currentReplicas"]) == (2, 1)
    assert done["currentRevision"] != done["updateRevision"]


async def test_statefulset_with_a_crashloop_image_never_becomes_ready(kube: Kube) -> None:
    created = await kube.apply(statefulset("db", image="redis:crashloop"))
    seen = await kube.follow(created, lambda obj: "observedGeneration" in obj.get("status", {}))
    assert verdict(seen[-1]) == ("progressing", "LessReady")


async def test_daemonset_schedules_one_pod_per_node(
    emu: Emulator, kube: Kube, http: aiohttp.ClientSession
) -> None:
    await configure(http, emu, nodes=3)
    body = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": pod_template("agent", "agent:1")},
    }
    seen = await kube.follow(await kube.apply(body), becomes(HEALTHY))
    assert verdict(seen[0]) == ("progressing", "LessUpdated")
    done = seen[-1]["status"]
    assert (done["desiredNumberScheduled"], done["numberAvailable"], done["numberReady"]) == (3, 3, 3)


def job(name: str, image: str) -> dict[str, Any]:
    template = pod_template(name, image)
    template["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"backoffLimit": 2, "template": template},
    }


async def test_job_completes_after_the_delay(kube: Kube) -> None:
    seen = await kube.follow(await kube.apply(job("migrate", "migrate:1")), becomes(HEALTHY))
    assert verdict(seen[0]) == ("progressing", "JobRunning")
    assert seen[-1]["status"]["succeeded"] == 1


async def test_job_with_a_crashloop_image_fails(kube: Kube) -> None:
    seen = await kube.follow(await kube.apply(job("migrate", "migrate:crashloop")), becomes(DEGRADED))
    assert verdict(seen[-1]) == ("degraded", "BackoffLimitExceeded")
    assert seen[-1]["status"]["failed"] == 3


async def test_claims_bind_and_load_balancers_get_an_address(kube: Kube) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }
    applied = await kube.apply(claim)
    assert verdict(applied) == ("progressing", "NotBound")
    bound = (await kube.follow(applied, becomes(HEALTHY)))[-1]
    assert bound["status"]["capacity"] == {"storage": "2Gi"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "front", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    applied = await kube.apply(service)
    assert verdict(applied) == ("progressing", "NoIngressAddress")
    balanced = (await kube.follow(applied, becomes(HEALTHY)))[-1]
    assert balanced["status"]["loadBalancer"]["ingress"][0]["ip"].startswith("192.0.2.")


async def test_crashlooping_pod_is_degraded(kube: Kube) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "app:crashloop"}]},
    }
    seen = await kube.follow(await kube.apply(pod), becomes(DEGRADED))
    assert verdict(seen[-1]) == ("degraded", "ContainerCrashLooping")


async def test_controllers_can_be_switched_off_and_hand_written_status_is_kept(
    emu: Emulator, kube: Kube, http: aiohttp.ClientSession
) -> None:
    cluster = emu.cluster("a")
    planted = cluster.put_object(
        {**deployment("planted"), "status": {"observedGeneration": 1, "replicas": 7}}
    )
    assert cluster.controllers.pending() == 0
    assert planted["status"] == {"observedGeneration": 1, "replicas": 7}
    settings = await configure(http, emu, controllers=False)
    assert settings["controllers"] is False
    frozen = await kube.apply(deployment("frozen"))
    assert cluster.controllers.pending() == 0
    assert frozen["status"] == {}
    async with http.patch(
        f"{emu.base_url}/_emulator/clusters/a/settings", json={"rollout_delay": -1}
    ) as resp:
        assert resp.status == 400
        assert "rollout_delay" in (await resp.json())["message"]
    async with http.patch(f"{emu.base_url}/_emulator/clusters/a/settings", json={"speed": 2}) as resp:
        assert resp.status == 400
        assert "speed" in (await resp.json())["message"]


async def test_emulator_wide_defaults_apply_to_every_new_cluster() -> None:
    async with serve(clusters=["x"], auto_create=True, cluster_settings={"rollout_delay": 2.5}) as emulator:
        assert emulator.cluster("x").settings()["rollout_delay"] == 2.5
        assert emulator.lookup("y") is not None
        assert emulator.cluster("y").settings()["rollout_delay"] == 2.5


# -------------------------------------------------------------------------------------- watches


async def test_list_carries_a_resource_version_and_a_watch_from_it_sees_only_later_changes(
    kube: Kube,
) -> None:
    await kube.apply(configmap("before", v="1"))
    listed = await kube.core.list_namespaced_config_map("default")
    since = listed.metadata.resource_version
    assert since
    await kube.apply(configmap("after", v="1"))
    await kube.apply(configmap("before", v="2"))
    events = []
    async for event in watch.Watch().stream(
        kube.core.list_namespaced_config_map, "default", resource_version=since, timeout_seconds=1
    ):
        events.append((event["type"], event["object"].metadata.name, event["object"].data))
    assert events == [("ADDED", "after", {"v": "1"}), ("MODIFIED", "before", {"v": "2"})]


async def test_watch_without_a_resource_version_starts_with_the_current_objects(kube: Kube) -> None:
    await kube.apply(configmap("one", v="1"))
    events = []
    async for event in watch.Watch().stream(
        kube.core.list_namespaced_config_map, "default", timeout_seconds=1
    ):
        events.append((event["type"], event["object"].metadata.name))
    assert ("ADDED", "one") in events
    assert {kind for kind, _ in events} == {"ADDED"}


async def test_watch_delivers_deletions_and_selector_exits(emu: Emulator, kube: Kube) -> None:
    first = await kube.apply(configmap("a", labels={"tier": "web"}, v="1"))
    await kube.apply(configmap("b", labels={"tier": "web"}, v="1"))
    await kube.apply(configmap("a", labels={"tier": "db"}, v="1"))
    await kube.core.delete_namespaced_config_map("b", "default")
    events = []
    async for event in watch.Watch().stream(
        kube.core.list_namespaced_config_map,
        "default",
        label_selector="tier=web",
        resource_version=first["metadata"]["resourceVersion"],
        timeout_seconds=1,
    ):
        events.append((event["type"], event["object"].metadata.name))
    assert events == [("ADDED", "b"), ("DELETED", "a"), ("DELETED", "b")]


async def test_bookmarks_arrive_and_carry_the_current_resource_version(
    emu: Emulator, kube: Kube, http: aiohttp.ClientSession
) -> None:
    await configure(http, emu, bookmark_interval=0.1)
    applied = await kube.apply(configmap("cfg", v="1"))
    stream = watch.Watch()
    kinds = []
    async for event in stream.stream(
        kube.core.list_namespaced_config_map,
        "default",
        resource_version=applied["metadata"]["resourceVersion"],
        allow_watch_bookmarks=True,
        timeout_seconds=10,
    ):
        kinds.append(event["type"])
        if event["type"] == "BOOKMARK":
            assert event["raw_object"]["kind"] == "ConfigMap"
            assert event["raw_object"]["metadata"]["resourceVersion"] == emu.cluster("a").resource_version
            stream.stop()
            break
    assert kinds == ["BOOKMARK"]
    assert stream.resource_version == emu.cluster("a").resource_version
    await stream.close()


async def test_no_bookmarks_unless_asked_for(emu: Emulator, kube: Kube, http: aiohttp.ClientSession) -> None:
    await configure(http, emu, bookmark_interval=0.1)
    kinds = []
    async for event in watch.Watch().stream(
        kube.core.list_namespaced_config_map, "default", resource_version="1", timeout_seconds=1
    ):
        kinds.append(event["type"])
    assert "BOOKMARK" not in kinds


async def test_a_compacted_resource_version_is_410_gone(
    emu: Emulator, kube: Kube, http: aiohttp.ClientSession
) -> None:
    old = (await kube.apply(configmap("cfg", v="1")))["metadata"]["resourceVersion"]
    await kube.apply(configmap("cfg", v="2"))
    async with http.post(f"{emu.base_url}/_emulator/clusters/a/compact") as resp:
        assert resp.status == 200
    with pytest.raises(ApiException) as caught:
        async for _event in watch.Watch().stream(
            kube.core.list_namespaced_config_map, "default", resource_version=old, timeout_seconds=5
        ):
            pass
    assert caught.value.status == 410
    assert "Expired" in str(caught.value.reason)
    url = f"{emu.cluster_url('a')}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={old}"
    async with http.get(url) as resp:
        assert resp.status == 200
        lines = (await resp.read()).splitlines()
    assert len(lines) == 1
    error = json.loads(lines[0])
    assert error["type"] == "ERROR"
    assert (error["object"]["kind"], error["object"]["code"], error["object"]["reason"]) == (
        "Status",
        410,
        "Expired",
    )


async def test_history_beyond_its_size_expires(
    emu: Emulator, kube: Kube, http: aiohttp.ClientSession
) -> None:
    await configure(http, emu, watch_history=2)
    old = (await kube.apply(configmap("cfg", v="0")))["metadata"]["resourceVersion"]
    for value in "123":
        await kube.apply(configmap("cfg", v=value))
    with pytest.raises(ApiException) as caught:
        async for _event in watch.Watch().stream(
            kube.core.list_namespaced_config_map, "default", resource_version=old, timeout_seconds=5
        ):
            pass
    assert caught.value.status == 410


async def test_a_bad_resource_version_is_400(emu: Emulator, http: aiohttp.ClientSession) -> None:
    url = f"{emu.cluster_url('a')}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=abc"
    async with http.get(url) as resp:
        assert resp.status == 400
        assert "resourceVersion" in (await resp.json())["message"]


async def _read_until_cut(kube: Kube, since: str, seen: list[str]) -> watch.Watch:
    """Watch config maps, recording names, until the connection breaks or the watch ends."""
    stream = watch.Watch()
    try:
        async for event in stream.stream(
            kube.core.list_namespaced_config_map, "default", resource_version=since, timeout_seconds=30
        ):
            seen.append(event["object"].metadata.name)
    except aiohttp.ClientPayloadError:
        pass  # the truncated chunked response of a dropped connection
    return stream


async def test_a_dropped_watch_is_resumed_from_its_last_resource_version(emu: Emulator, kube: Kube) -> None:
    cluster = emu.cluster("a")
    since = (await kube.apply(configmap("start")))["metadata"]["resourceVersion"]
    await kube.apply(configmap("one"))
    cluster.add_fault(Fault(watch=True, drop_after=0.3, count=1))
    seen: list[str] = []
    stream = await _read_until_cut(kube, since, seen)
    assert seen == ["one"]
    assert [r.fault for r in cluster.requests if r.query.get("watch")] == ["drop_after"]
    await kube.apply(configmap("two"))  # changes while nobody watches
    resumed: list[str] = []
    async for event in watch.Watch().stream(
        kube.core.list_namespaced_config_map,
        "default",
        resource_version=stream.resource_version,
        timeout_seconds=1,
    ):
        resumed.append(event["object"].metadata.name)
    assert resumed == ["two"]


async def test_dropping_watches_and_a_cluster_going_down_cut_open_streams(
    emu: Emulator, kube: Kube, http: aiohttp.ClientSession
) -> None:
    cluster = emu.cluster("a")
    since = (await kube.apply(configmap("start")))["metadata"]["resourceVersion"]
    for cut in ("drop", "down"):
        seen: list[str] = []
        reader = asyncio.create_task(_read_until_cut(kube, since, seen))
        while len(cluster.hub) == 0:
            await asyncio.sleep(0.01)
        if cut == "drop":
            async with http.post(f"{emu.base_url}/_emulator/clusters/a/watches/drop") as resp:
                assert (await resp.json()) == {"dropped": 1}
        else:
            cluster.down = True
        await asyncio.wait_for(reader, 10)
        assert len(cluster.hub) == 0
        cluster.down = False


async def test_deleting_a_namespace_tells_watchers_about_everything_in_it(kube: Kube) -> None:
    since = (await kube.core.list_config_map_for_all_namespaces()).metadata.resource_version
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    await kube.apply({**configmap("inside"), "metadata": {"name": "inside", "namespace": "doomed"}})
    await kube.core.delete_namespace("doomed")
    events = []
    async for event in watch.Watch().stream(
        kube.core.list_config_map_for_all_namespaces, resource_version=since, timeout_seconds=1
    ):
        events.append((event["type"], event["object"].metadata.namespace, event["object"].metadata.name))
    assert events == [("ADDED", "doomed", "inside"), ("DELETED", "doomed", "inside")]


async def test_removing_a_cluster_cancels_its_pending_rollouts(
    emu: Emulator, kube: Kube, http: aiohttp.ClientSession
) -> None:
    await configure(http, emu, rollout_delay=3600)
    await kube.apply(deployment("web"))
    cluster = emu.cluster("a")
    assert cluster.controllers.pending() == 1
    async with http.delete(f"{emu.base_url}/_emulator/clusters/a") as resp:
        assert resp.status == 200
    assert cluster.controllers.pending() == 0
