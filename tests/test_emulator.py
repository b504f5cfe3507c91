"""Behaviour of the Kubernetes API emulator, observed through kubernetes-asyncio over real HTTP.

Every test talks to a freshly started emulator through the same client stack the
ledger uses (ApiClient + DynamicClient, or the typed CoreV1Api), and asserts on
effects: stored objects, Status bodies, headers, request logs.  Nothing asserts on
wall-clock time.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import pytest_asyncio
import yaml
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.dynamic import DynamicClient
from kubernetes_asyncio.dynamic.resource import Resource

from emulator import Emulator, Fault, serve

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

REPO_ROOT = Path(__file__).resolve().parent.parent
MANAGER = "ledger"


class Kube:
    """One kubernetes-asyncio client stack pointed at one emulated cluster."""

    def __init__(self, api: ApiClient, dyn: DynamicClient) -> None:
        self.api = api
        self.dyn = dyn
        self.core = CoreV1Api(api)

    async def resource(self, api_version: str, kind: str) -> Resource:
        return await self.dyn.resources.get(api_version=api_version, kind=kind)

    async def apply(self, body: dict[str, Any], manager: str = MANAGER, **kwargs: Any) -> dict[str, Any]:
        res = await self.resource(body["apiVersion"], body["kind"])
        result = await self.dyn.server_side_apply(res, body=body, field_manager=manager, **kwargs)
        return dict(result.to_dict())

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any]:
        res = await self.resource(api_version, kind)
        return dict((await self.dyn.get(res, name=name, namespace=namespace)).to_dict())

    async def list(self, api_version: str, kind: str, **kwargs: Any) -> dict[str, Any]:
        res = await self.resource(api_version, kind)
        return dict((await self.dyn.get(res, **kwargs)).to_dict())


KubeFactory = Callable[[str], Awaitable[Kube]]


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with serve(clusters=["a", "b"]) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def connect(emu: Emulator, tmp_path: Path) -> AsyncIterator[KubeFactory]:
    """Factory for client stacks, each with its own discovery cache file."""
    opened: list[ApiClient] = []

    async def make(cluster: str) -> Kube:
        api = ApiClient(Configuration(host=emu.cluster_url(cluster)))
        opened.append(api)
        dyn = await DynamicClient(api, cache_file=str(tmp_path / f"discovery-{cluster}-{len(opened)}.json"))
        return Kube(api, dyn)

    yield make
    for api in opened:
        await api.close()


@pytest_asyncio.fixture
async def kube(connect: KubeFactory) -> Kube:
    return await connect("a")


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def configmap(
    name: str, namespace: str = "default", labels: dict[str, str] | None = None, **data: str
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def deployment(name: str, replicas: int = 1, image: str = "nginx:1.27") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def assert_status(result: dict[str, Any], code: int, reason: str) -> None:
    assert result["kind"] == "Status", result
    assert result["apiVersion"] == "v1"
    assert result["status"] == "Failure"
    assert result["code"] == code, result
    assert result["reason"] == reason, result
    assert result["message"]
    assert isinstance(result["details"], dict)


# --------------------------------------------------------------------------- discovery


async def test_discovery_serves_builtin_and_custom_kinds(kube: Kube) -> None:
    expected = {
        ("v1", "Namespace"): ("namespaces", False),
        ("v1", "ConfigMap"): ("configmaps", True),
        ("v1", "Secret"): ("secrets", True),
        ("v1", "Service"): ("services", True),
        ("v1", "ServiceAccount"): ("serviceaccounts", True),
        ("v1", "Pod"): ("pods", True),
        ("apps/v1", "Deployment"): ("deployments", True),
        ("apps/v1", "StatefulSet"): ("statefulsets", True),
        ("apps/v1", "DaemonSet"): ("daemonsets", True),
        ("batch/v1", "Job"): ("jobs", True),
        ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
        ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
        ("example.com/v1", "Widget"): ("widgets", True),
    }
    for (api_version, kind), (plural, namespaced) in expected.items():
        res = await kube.resource(api_version, kind)
        assert (res.name, res.namespaced, res.group_version) == (plural, namespaced, api_version)
        assert {"create", "get", "list", "patch", "update", "delete"} <= set(res.verbs or [])

    widget = await kube.resource("example.com/v1", "Widget")
    assert widget.extra_args["shortNames"] == ["wdg"]
    assert widget.extra_args["singularName"] == "widget"
    assert "status" in widget.subresources
    assert kube.dyn.version["kubernetes"]["major"] == "1"


async def test_discovery_documents_have_kubernetes_shapes(emu: Emulator, http: aiohttp.ClientSession) -> None:
    base = emu.cluster_url("a")
    async with http.get(f"{base}/api") as resp:
        api = await resp.json()
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    async with http.get(f"{base}/apis") as resp:
        groups = await resp.json()
    assert groups["kind"] == "APIGroupList"
    by_name = {g["name"]: g for g in groups["groups"]}
    assert set(by_name) == {"apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io", "example.com"}
    assert by_name["example.com"]["preferredVersion"] == {"groupVersion": "example.com/v1", "version": "v1"}
    async with http.get(f"{base}/api/v1") as resp:
        core = await resp.json()
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    cm = next(r for r in core["resources"] if r["name"] == "configmaps")
    assert cm["kind"] == "ConfigMap" and cm["shortNames"] == ["cm"] and cm["singularName"] == "configmap"
    assert "deletecollection" in cm["verbs"]
    async with http.get(f"{base}/apis/apps/v1") as resp:
        apps = await resp.json()
    assert apps["groupVersion"] == "apps/v1"
    assert {r["name"] for r in apps["resources"]} >= {
        "deployments",
        "deployments/status",
        "statefulsets",
        "daemonsets",
    }
    async with http.get(f"{base}/apis/nothing.example/v1") as resp:
        assert resp.status == 404
        assert_status(await resp.json(), 404, "NotFound")


# ------------------------------------------------------------------- server-side apply


async def test_apply_creates_missing_object_with_server_metadata(emu: Emulator, kube: Kube) -> None:
    created = await kube.apply(configmap("app-config", labels={"app": "web"}, color="blue"))
    assert created["kind"] == "ConfigMap" and created["apiVersion"] == "v1"
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert isinstance(meta["resourceVersion"], str) and int(meta["resourceVersion"]) > 0
    assert meta["generation"] == 1
    assert meta["managedFields"][0]["manager"] == MANAGER
    assert meta["managedFields"][0]["operation"] == "Apply"
    stored = emu.cluster("a").get("v1", "ConfigMap", "default", "app-config")
    assert stored is not None and stored["data"] == {"color": "blue"}
    record = emu.cluster("a").requests.matching("PATCH", "/configmaps/app-config")[-1]
    assert record.status == 201 and record.query["fieldManager"] == MANAGER


async def test_apply_merges_and_removes_fields_the_manager_dropped(emu: Emulator, kube: Kube) -> None:
    first = await kube.apply(configmap("cfg", labels={"app": "web", "tier": "front"}, a="1", b="2"))
    await kube.apply(configmap("cfg", c="3"), manager="other-tool")
    second = await kube.apply(configmap("cfg", labels={"app": "web"}, a="10"))

    # b and the tier label were dropped by "ledger" and owned by nobody else: removed.
    # c belongs to "other-tool": kept.
    assert second["data"] == {"a": "10", "c": "3"}
    assert second["metadata"]["labels"] == {"app": "web"}
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert second["metadata"]["generation"] == 3
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert emu.cluster("a").applied_config("v1", "ConfigMap", "default", "cfg", MANAGER) == configmap(
        "cfg", labels={"app": "web"}, a="10"
    )

    # Applying the same configuration again is a no-op: no new resourceVersion.
    again = await kube.apply(configmap("cfg", labels={"app": "web"}, a="10"))
    assert again["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]


async def test_generation_only_moves_for_spec_changes(kube: Kube) -> None:
    created = await kube.apply(deployment("web", replicas=2))
    assert created["metadata"]["generation"] == 1
    relabelled = await kube.apply(
        {
            **deployment("web", replicas=2),
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "team": "a"}},
        }
    )
    assert relabelled["metadata"]["generation"] == 1
    assert int(relabelled["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    scaled = await kube.apply(deployment("web", replicas=3))
    assert scaled["metadata"]["generation"] == 2
    assert scaled["spec"]["replicas"] == 3

    deployments = await kube.resource("apps/v1", "Deployment")
    status = await kube.dyn.patch(
        deployments.subresources["status"],
        body={"metadata": {"name": "web", "namespace": "default"}, "status": {"readyReplicas": 3}},
        content_type="application/merge-patch+json",
    )
    assert status.to_dict()["status"]["readyReplicas"] == 3
    assert status.to_dict()["metadata"]["generation"] == 2


async def test_apply_conflicts_with_another_managers_edit_unless_forced(kube: Kube) -> None:
    await kube.apply(configmap("cfg", a="1"))
    cms = await kube.resource("v1", "ConfigMap")
    await kube.dyn.patch(
        cms,
        body={"data": {"a": "edited"}},
        name="cfg",
        namespace="default",
        content_type="application/merge-patch+json",
        field_manager="kubectl-edit",
    )
    refused = await kube.apply(configmap("cfg", a="1"))
    assert_status(refused, 409, "Conflict")
    assert refused["details"]["causes"][0]["field"] == ".data.a"
    assert "kubectl-edit" in refused["message"]

    forced = await kube.apply(configmap("cfg", a="1"), force_conflicts=True)
    assert forced["data"] == {"a": "1"}


async def test_apply_body_must_match_url_and_needs_field_manager(
    kube: Kube, emu: Emulator, http: aiohttp.ClientSession
) -> None:
    cms = await kube.resource("v1", "ConfigMap")
    wrong_kind = await kube.dyn.server_side_apply(
        cms,
        body={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "default"}},
        field_manager=MANAGER,
    )
    assert_status(wrong_kind.to_dict(), 400, "BadRequest")
    wrong_version = await kube.dyn.server_side_apply(
        cms,
        body={
            "apiVersion": "apps/v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "default"},
        },
        field_manager=MANAGER,
    )
    assert_status(wrong_version.to_dict(), 400, "BadRequest")
    async with http.patch(
        f"{emu.cluster_url('a')}/api/v1/namespaces/default/configmaps/x",
        data=yaml.safe_dump(configmap("x", k="v")),
        headers={"Content-Type": "application/apply-patch+yaml"},
    ) as resp:
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest")
    assert emu.cluster("a").get("v1", "ConfigMap", "default", "x") is None


async def test_apply_accepts_yaml_bodies(emu: Emulator, http: aiohttp.ClientSession) -> None:
    body = yaml.safe_dump(
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w1", "namespace": "default"},
            "spec": {"size": 3},
        }
    )
    async with http.patch(
        f"{emu.cluster_url('a')}/apis/example.com/v1/namespaces/default/widgets/w1?fieldManager=yamlist",
        data=body,
        headers={"Content-Type": "application/apply-patch+yaml"},
    ) as resp:
        assert resp.status == 201
        created = await resp.json()
    assert created["kind"] == "Widget" and created["spec"] == {"size": 3}
    async with http.patch(
        f"{emu.cluster_url('a')}/apis/example.com/v1/namespaces/default/widgets/w1?fieldManager=yamlist",
        data=body.replace("size: 3", "size: 4"),
        headers={"Content-Type": "application/apply-patch+yaml"},
    ) as resp:
        assert resp.status == 200
    stored = emu.cluster("a").get("example.com/v1", "Widget", "default", "w1")
    assert stored is not None and stored["spec"] == {"size": 4}


async def test_dry_run_apply_does_not_persist(emu: Emulator, kube: Kube) -> None:
    result = await kube.apply(configmap("planned", a="1"), dry_run="All")
    assert result["data"] == {"a": "1"}
    assert emu.cluster("a").get("v1", "ConfigMap", "default", "planned") is None


# ------------------------------------------------------------------------- list & get


async def test_list_label_selectors_use_kubernetes_semantics(kube: Kube) -> None:
    labels = {
        "web-prod": {"app": "web", "env": "prod", "tier": "1"},
        "web-dev": {"app": "web", "env": "dev", "tier": "3"},
        "db-prod": {"app": "db", "env": "prod"},
        "bare": {},
    }
    for name, lbl in labels.items():
        await kube.apply(configmap(name, labels=lbl))
    cases = {
        "app=web": {"web-prod", "web-dev"},
        "app==web": {"web-prod", "web-dev"},
        "app!=web": {"db-prod", "bare"},  # != also matches objects without the key
        "env in (prod, staging)": {"web-prod", "db-prod"},
        "env notin (prod)": {"web-dev", "bare"},
        "env": {"web-prod", "web-dev", "db-prod"},
        "!env": {"bare"},
        "app=web,env=prod": {"web-prod"},
        "app in (web,db),!tier": {"db-prod"},
        "tier>2": {"web-dev"},
        "": set(labels),
    }
    got = {}
    for selector, _ in cases.items():
        listing = await kube.list("v1", "ConfigMap", namespace="default", label_selector=selector)
        assert listing["kind"] == "ConfigMapList" and listing["apiVersion"] == "v1"
        assert listing["metadata"]["resourceVersion"]
        assert all(item["kind"] == "ConfigMap" and item["apiVersion"] == "v1" for item in listing["items"])
        got[selector] = {item["metadata"]["name"] for item in listing["items"]}
    assert got == cases

    typed = await kube.core.list_namespaced_config_map("default", label_selector="env=prod")
    assert sorted(cm.metadata.name for cm in typed.items) == ["db-prod", "web-prod"]

    bad = await kube.list("v1", "ConfigMap", namespace="default", label_selector="app in (web")
    assert_status(bad, 400, "BadRequest")


async def test_list_across_namespaces_and_field_selectors(kube: Kube) -> None:
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    await kube.apply(configmap("one", namespace="default"))
    await kube.apply(configmap("one", namespace="team-a"))
    await kube.apply(configmap("two", namespace="team-a"))

    everywhere = await kube.list("v1", "ConfigMap")
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]] == [
        ("default", "one"),
        ("team-a", "one"),
        ("team-a", "two"),
    ]
    by_name = await kube.list("v1", "ConfigMap", field_selector="metadata.name=one")
    assert {i["metadata"]["namespace"] for i in by_name["items"]} == {"default", "team-a"}
    by_ns = await kube.list("v1", "ConfigMap", field_selector="metadata.namespace=team-a,metadata.name!=one")
    assert [i["metadata"]["name"] for i in by_ns["items"]] == ["two"]
    unsupported = await kube.list("v1", "ConfigMap", field_selector="data.x=1")
    assert_status(unsupported, 400, "BadRequest")
    namespaces = await kube.list("v1", "Namespace")
    assert namespaces["kind"] == "NamespaceList"
    assert {"default", "kube-system", "kube-public", "team-a"} <= {
        i["metadata"]["name"] for i in namespaces["items"]
    }


async def test_list_pagination_with_limit_and_continue(kube: Kube) -> None:
    for i in range(5):
        await kube.apply(configmap(f"cm-{i}"))
    first = await kube.list("v1", "ConfigMap", namespace="default", limit=2)
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm-0", "cm-1"]
    assert first["metadata"]["remainingItemCount"] == 3
    names = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = await kube.list("v1", "ConfigMap", namespace="default", limit=2, _continue=token)
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert names == [f"cm-{i}" for i in range(5)]


async def test_get_missing_object_is_a_not_found_status(kube: Kube) -> None:
    missing = await kube.get("v1", "ConfigMap", "nope", "default")
    assert_status(missing, 404, "NotFound")
    assert missing["message"] == 'configmaps "nope" not found'
    assert missing["details"] == {"name": "nope", "kind": "configmaps"}
    missing_deploy = await kube.get("apps/v1", "Deployment", "nope", "default")
    assert missing_deploy["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    with pytest.raises(ApiException) as caught:
        await kube.core.read_namespaced_config_map("nope", "default")
    assert caught.value.status == 404


async def test_unknown_resources_and_unsupported_methods(emu: Emulator, http: aiohttp.ClientSession) -> None:
    base = emu.cluster_url("a")
    async with http.get(f"{base}/api/v1/namespaces/default/gizmos") as resp:
        assert resp.status == 404
        assert_status(await resp.json(), 404, "NotFound")
    async with http.get(f"{base}/api/v1/configmaps/not-namespaced-path") as resp:
        assert resp.status == 404
    async with http.post(f"{base}/api/v1/namespaces/default/configmaps/x", json=configmap("x")) as resp:
        assert resp.status == 405
        assert_status(await resp.json(), 405, "MethodNotAllowed")
    async with http.patch(
        f"{base}/api/v1/namespaces/default/configmaps/x", data="{}", headers={"Content-Type": "text/plain"}
    ) as resp:
        assert resp.status == 415


# ------------------------------------------------------------------ writes & validation


async def test_create_conflicts_update_and_patches(kube: Kube) -> None:
    cms = await kube.resource("v1", "ConfigMap")
    created = await kube.dyn.create(cms, body=configmap("made", a="1"), namespace="default")
    assert created.to_dict()["metadata"]["generation"] == 1
    duplicate = await kube.dyn.create(cms, body=configmap("made", a="1"), namespace="default")
    assert_status(duplicate.to_dict(), 409, "AlreadyExists")

    current = created.to_dict()
    current["data"] = {"a": "2"}
    replaced = (await kube.dyn.replace(cms, body=current)).to_dict()
    assert replaced["data"] == {"a": "2"}
    stale = await kube.dyn.replace(cms, body=current)  # still carries the old resourceVersion
    assert_status(stale.to_dict(), 409, "Conflict")

    merged = await kube.dyn.patch(
        cms,
        body={"data": {"b": "3"}},
        name="made",
        namespace="default",
        content_type="application/merge-patch+json",
    )
    assert merged.to_dict()["data"] == {"a": "2", "b": "3"}
    patched = await kube.dyn.patch(
        cms,
        body=cast(Any, [{"op": "remove", "path": "/data/a"}]),
        name="made",
        namespace="default",
        content_type="application/json-patch+json",
    )
    assert patched.to_dict()["data"] == {"b": "3"}


async def test_invalid_names_and_bodies_are_422(emu: Emulator, kube: Kube) -> None:
    bad_name = await kube.apply(configmap("Not_A_Valid_Name"))
    assert_status(bad_name, 422, "Invalid")
    assert bad_name["details"]["causes"][0]["field"] == "metadata.name"
    assert bad_name["details"]["kind"] == "ConfigMap"

    no_selector = deployment("web")
    del no_selector["spec"]["selector"]
    invalid = await kube.apply(no_selector)
    assert_status(invalid, 422, "Invalid")
    assert "spec.selector" in {c["field"] for c in invalid["details"]["causes"]}

    bad_label = await kube.apply(configmap("ok", labels={"app": "not valid!"}))
    assert_status(bad_label, 422, "Invalid")
    assert emu.cluster("a").objects(kind="ConfigMap") == []


async def test_object_in_missing_namespace_is_404_until_namespace_exists(emu: Emulator, kube: Kube) -> None:
    missing = await kube.apply(configmap("cfg", namespace="later"))
    assert_status(missing, 404, "NotFound")
    assert missing["message"] == 'namespaces "later" not found'
    assert missing["details"] == {"name": "later", "kind": "namespaces"}

    namespaces = await kube.resource("v1", "Namespace")
    ns = (await kube.dyn.create(namespaces, body={"metadata": {"name": "later"}})).to_dict()
    assert ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "later"
    created = await kube.apply(configmap("cfg", namespace="later"))
    assert created["metadata"]["namespace"] == "later"
    assert emu.cluster("a").get("v1", "ConfigMap", "later", "cfg") is not None


async def test_delete_returns_status_or_object_like_the_real_api(emu: Emulator, kube: Kube) -> None:
    await kube.apply(configmap("gone"))
    cms = await kube.resource("v1", "ConfigMap")
    deleted = (await kube.dyn.delete(cms, name="gone", namespace="default")).to_dict()
    assert deleted["kind"] == "Status" and deleted["status"] == "Success"
    assert deleted["details"]["name"] == "gone" and deleted["details"]["kind"] == "configmaps"
    assert_status(await kube.get("v1", "ConfigMap", "gone", "default"), 404, "NotFound")
    again = (await kube.dyn.delete(cms, name="gone", namespace="default")).to_dict()
    assert_status(again, 404, "NotFound")

    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    pods = await kube.resource("v1", "Pod")
    pod = (await kube.dyn.delete(pods, name="p", namespace="default")).to_dict()
    assert pod["kind"] == "Pod" and pod["metadata"]["deletionTimestamp"]
    assert emu.cluster("a").get("v1", "Pod", "default", "p") is None

    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    await kube.apply(configmap("inside", namespace="doomed"))
    namespaces = await kube.resource("v1", "Namespace")
    ns = (await kube.dyn.delete(namespaces, name="doomed")).to_dict()
    assert ns["kind"] == "Namespace" and ns["status"]["phase"] == "Terminating"
    assert emu.cluster("a").objects(namespace="doomed") == []
    protected = (await kube.dyn.delete(namespaces, name="default")).to_dict()
    assert_status(protected, 403, "Forbidden")


async def test_delete_collection_by_label(emu: Emulator, kube: Kube) -> None:
    await kube.apply(configmap("keep", labels={"owner": "someone-else"}))
    await kube.apply(configmap("drop-1", labels={"owner": "ledger"}))
    await kube.apply(configmap("drop-2", labels={"owner": "ledger"}))
    cms = await kube.resource("v1", "ConfigMap")
    result = (await kube.dyn.delete(cms, namespace="default", label_selector="owner=ledger")).to_dict()
    assert result["kind"] == "ConfigMapList"
    assert [o["metadata"]["name"] for o in emu.cluster("a").objects(kind="ConfigMap")] == ["keep"]


async def test_finalizers_hold_deletion_until_removed(emu: Emulator, kube: Kube) -> None:
    body = configmap("held")
    body["metadata"]["finalizers"] = ["example.com/cleanup"]
    await kube.apply(body)
    cms = await kube.resource("v1", "ConfigMap")
    pending = (await kube.dyn.delete(cms, name="held", namespace="default")).to_dict()
    assert pending["kind"] == "ConfigMap" and pending["metadata"]["deletionTimestamp"]
    assert (await kube.get("v1", "ConfigMap", "held", "default"))["metadata"]["deletionTimestamp"]
    await kube.dyn.patch(
        cms,
        body={"metadata": {"finalizers": None}},
        name="held",
        namespace="default",
        content_type="application/merge-patch+json",
    )
    assert emu.cluster("a").get("v1", "ConfigMap", "default", "held") is None


async def test_secret_string_data_and_service_defaults(kube: Kube) -> None:
    secret = await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "default"},
            "stringData": {"password": "hunter2"},
        }
    )
    assert secret["data"] == {"password": "aHVudGVyMg=="} and secret["type"] == "Opaque"
    assert "stringData" not in secret
    service = await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }
    )
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["clusterIP"]
    relabelled = await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "labels": {"x": "y"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }
    )
    assert relabelled["spec"]["clusterIP"] == service["spec"]["clusterIP"]


async def test_status_subresources(emu: Emulator, http: aiohttp.ClientSession) -> None:
    base = emu.cluster_url("a")
    async with http.get(f"{base}/api/v1/namespaces/default/status") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == {"phase": "Active"}
    async with http.get(f"{base}/api/v1/namespaces/default/configmaps/x/status") as resp:
        assert resp.status == 404  # ConfigMaps have no status subresource


# ----------------------------------------------------------------------------- faults


async def test_fault_500_stops_after_its_count(emu: Emulator, kube: Kube) -> None:
    emu.cluster("a").add_fault(Fault(status=500, method="PATCH", path="/configmaps/", count=2))
    for _ in range(2):
        failed = await kube.apply(configmap("cfg", a="1"))
        assert_status(failed, 500, "InternalError")
    assert emu.cluster("a").get("v1", "ConfigMap", "default", "cfg") is None
    ok = await kube.apply(configmap("cfg", a="1"))
    assert ok["kind"] == "ConfigMap"
    statuses = [r.status for r in emu.cluster("a").requests.matching("PATCH", "/configmaps/cfg")]
    assert statuses == [500, 500, 201]
    assert len(emu.cluster("a").faults) == 0


async def test_fault_429_carries_retry_after(emu: Emulator, kube: Kube) -> None:
    emu.cluster("a").add_fault(status=429, retry_after=7, method="GET", path="/configmaps")
    with pytest.raises(ApiException) as caught:
        await kube.core.read_namespaced_config_map("anything", "default")
    assert caught.value.status == 429
    assert caught.value.headers is not None
    assert caught.value.headers["Retry-After"] == "7"
    throttled = await kube.get("v1", "ConfigMap", "anything", "default")
    assert_status(throttled, 429, "TooManyRequests")
    assert throttled["details"]["retryAfterSeconds"] == 7
    emu.cluster("a").clear_faults()
    assert_status(await kube.get("v1", "ConfigMap", "anything", "default"), 404, "NotFound")


async def test_fault_403_and_422_and_custom_status(emu: Emulator, kube: Kube) -> None:
    cluster = emu.cluster("a")
    cluster.add_fault(status=403, method="PATCH", count=1)
    forbidden = await kube.apply(configmap("cfg"))
    assert_status(forbidden, 403, "Forbidden")
    assert forbidden["details"]["kind"] == "configmaps" and forbidden["details"]["name"] == "cfg"

    cluster.add_fault(status=422, path="/deployments/", count=1)
    invalid = await kube.apply(deployment("web"))
    assert_status(invalid, 422, "Invalid")

    cluster.add_fault(status=503, message="etcd is sad", count=1)
    unavailable = await kube.get("v1", "ConfigMap", "cfg", "default")
    assert_status(unavailable, 503, "ServiceUnavailable")
    assert unavailable["message"] == "etcd is sad"
    assert cluster.get("v1", "ConfigMap", "default", "cfg") is None


async def test_fault_slow_answer_trips_client_timeout(emu: Emulator, kube: Kube) -> None:
    emu.cluster("a").add_fault(delay=30, method="GET", path="/configmaps/slow")
    cms = await kube.resource("v1", "ConfigMap")
    with pytest.raises(asyncio.TimeoutError):
        await kube.dyn.get(cms, name="slow", namespace="default", _request_timeout=0.2)
    # Other requests are unaffected while the slow one is still pending.
    assert_status(await kube.get("v1", "ConfigMap", "fast", "default"), 404, "NotFound")


async def test_fault_dropped_connection_raises_client_error(emu: Emulator, kube: Kube) -> None:
    cluster = emu.cluster("a")
    cluster.add_fault(drop=True, method="PATCH", count=1)
    with pytest.raises(aiohttp.ClientError):
        await kube.apply(configmap("cfg"))
    assert cluster.requests.matching("PATCH")[-1].status is None
    assert cluster.requests.matching("PATCH")[-1].fault == "drop"
    assert (await kube.apply(configmap("cfg")))["kind"] == "ConfigMap"

    fault = cluster.add_fault(drop=True, method="GET")  # until cleared (GETs are retried once by aiohttp)
    with pytest.raises(aiohttp.ClientError):
        await kube.core.read_namespaced_config_map("cfg", "default")
    cluster.faults.remove(fault.id)
    assert (await kube.core.read_namespaced_config_map("cfg", "default")).metadata.name == "cfg"


async def test_cluster_down_switch(emu: Emulator, kube: Kube) -> None:
    emu.cluster("a").down = True
    with pytest.raises(aiohttp.ClientError):
        await kube.core.list_namespace()
    emu.cluster("a").down = False
    assert (await kube.core.list_namespace()).items


async def test_faults_via_admin_http(emu: Emulator, kube: Kube, http: aiohttp.ClientSession) -> None:
    admin = f"{emu.base_url}/_emulator/clusters/a"
    async with http.post(f"{admin}/faults", json={"status": 500, "method": "PATCH"}) as resp:
        assert resp.status == 201
    for _ in range(3):
        assert_status(await kube.apply(configmap("cfg")), 500, "InternalError")
    async with http.delete(f"{admin}/faults") as resp:
        assert resp.status == 200
    assert (await kube.apply(configmap("cfg")))["kind"] == "ConfigMap"

    async with http.post(f"{admin}/faults", json={"status": 429, "retryAfter": 3, "count": 1}) as resp:
        assert (await resp.json())["retry_after"] == 3
    assert (await kube.get("v1", "ConfigMap", "cfg", "default"))["details"]["retryAfterSeconds"] == 3
    async with http.post(f"{admin}/faults", json={"status": 200}) as resp:
        assert resp.status == 400
    async with http.post(f"{admin}/down") as resp:
        assert (await resp.json())["down"] is True
    with pytest.raises(aiohttp.ClientError):
        await kube.core.list_namespace()
    async with http.delete(f"{admin}/down") as resp:
        assert (await resp.json())["down"] is False
    assert (await kube.core.list_namespace()).items


# ------------------------------------------------------------------ clusters & admin


async def test_clusters_are_isolated(emu: Emulator, connect: KubeFactory) -> None:
    a, b = await connect("a"), await connect("b")
    await a.apply(configmap("only-in-a"))
    assert_status(await b.get("v1", "ConfigMap", "only-in-a", "default"), 404, "NotFound")
    emu.cluster("a").add_fault(status=500)
    assert (await b.apply(configmap("only-in-b")))["kind"] == "ConfigMap"
    assert emu.cluster("b").get("v1", "ConfigMap", "default", "only-in-a") is None
    assert emu.cluster("a").get("v1", "ConfigMap", "default", "only-in-b") is None
    assert all(r.status != 500 for r in emu.cluster("b").requests)


async def test_auto_create_clusters(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with serve(auto_create=True) as emu:
        api = ApiClient(Configuration(host=emu.cluster_url("bench-0042")))
        try:
            dyn = await DynamicClient(api, cache_file=str(tmp_path / "auto.json"))
            kube = Kube(api, dyn)
            assert (await kube.apply(configmap("x")))["kind"] == "ConfigMap"
        finally:
            await api.close()
        assert "bench-0042" in emu
        assert emu.cluster("bench-0042").get("v1", "ConfigMap", "default", "x") is not None
    async with serve(clusters=["a"]) as strict:
        async with http.get(f"{strict.cluster_url('zzz')}/api/v1/namespaces") as resp:
            assert resp.status == 404
            assert_status(await resp.json(), 404, "NotFound")
        assert "zzz" not in strict


async def test_admin_http_clusters_objects_and_request_log(
    emu: Emulator, kube: Kube, http: aiohttp.ClientSession
) -> None:
    admin = f"{emu.base_url}/_emulator/clusters"
    async with http.put(f"{admin}/c") as resp:
        assert resp.status == 201
        assert (await resp.json())["url"] == emu.cluster_url("c")
    async with http.get(admin) as resp:
        assert {c["name"] for c in (await resp.json())["clusters"]} == {"a", "b", "c"}

    await kube.apply(deployment("web", replicas=2))
    # A manual change on the cluster, out of band: someone scaled the deployment.
    manual = deployment("web", replicas=5)
    async with http.post(f"{admin}/a/objects", json=manual) as resp:
        assert resp.status == 200
        assert (await resp.json())["spec"]["replicas"] == 5
    live = await kube.get("apps/v1", "Deployment", "web", "default")
    assert live["spec"]["replicas"] == 5 and live["metadata"]["generation"] == 2
    async with http.get(f"{admin}/a/objects", params={"kind": "Deployment"}) as resp:
        items = (await resp.json())["items"]
    assert [i["metadata"]["name"] for i in items] == ["web"]
    async with http.get(f"{admin}/a/requests") as resp:
        log = (await resp.json())["items"]
    assert {
        "method": "PATCH",
        "path": "/apis/apps/v1/namespaces/default/deployments/web",
        "status": 201,
    }.items() <= log[-2].items()


async def test_out_of_band_changes_via_python_api(emu: Emulator, kube: Kube) -> None:
    applied = await kube.apply(configmap("cfg", a="1"))
    cluster = emu.cluster("a")
    edited = cluster.patch_object("v1", "ConfigMap", "default", "cfg", {"data": {"a": "hand-edited"}})
    assert int(edited["metadata"]["resourceVersion"]) > int(applied["metadata"]["resourceVersion"])
    assert (await kube.get("v1", "ConfigMap", "cfg", "default"))["data"] == {"a": "hand-edited"}
    # The ledger's next (forced) apply restores its value, as on a real cluster.
    restored = await kube.apply(configmap("cfg", a="1"), force_conflicts=True)
    assert restored["data"] == {"a": "1"}
    cluster.put_object({**deployment("web"), "status": {"readyReplicas": 1}})
    assert (await kube.get("apps/v1", "Deployment", "web", "default"))["status"] == {"readyReplicas": 1}
    assert cluster.delete_object("apps/v1", "Deployment", "default", "web")
    assert [r.method for r in cluster.requests][-1] == "GET"


async def test_python_m_emulator_serves_standalone(http: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", str(port), "--clusters", "a,b,c"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        banner = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        assert f"127.0.0.1:{port}" in banner.decode()
        async with http.get(f"http://127.0.0.1:{port}/clusters/c/version") as resp:
            assert (await resp.json())["major"] == "1"
        async with http.get(f"http://127.0.0.1:{port}/_emulator/clusters") as resp:
            assert [c["name"] for c in (await resp.json())["clusters"]] == ["a", "b", "c"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
