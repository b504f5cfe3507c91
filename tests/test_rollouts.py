"""Progressive rollouts end to end: the service in-process with its applier and rollout driver,
emulated clusters over real HTTP, revisions and commands over HTTP, effects asserted in the log and
on the clusters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator import Emulator
from ledger import settings as settings_mod
from projections import rollout_decisions
from tests.applier_support import (
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    namespace,
    register,
)
from tests.applier_support import fast as fast_settings
from tests.tokens_support import issue

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings)


async def rollout_events(db, deployment: str = "web") -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT id, position, type, data::text AS data, metadata::text AS metadata FROM events"
                          " WHERE stream = 'rollout-' || $1 AND type NOT IN ('ApplySucceeded', 'ApplyFailed')"
                          " ORDER BY position", deployment)
    return [{"id": r["id"], "position": r["position"], "type": r["type"], **json.loads(r["data"]),
             "metadata": json.loads(r["metadata"])} for r in rows]


async def first(db, type_: str, **match: Any) -> dict[str, Any] | None:
    return next((e for e in await rollout_events(db) if e["type"] == type_
                 and all(e.get(k) == v for k, v in match.items())), None)


STRATEGY = {"waves": [{"name": "canary", "size": 1}, {"name": "rest"}], "approval": ["canary", "rest"]}


async def test_approvals_gate_waves_with_four_eyes_and_unstarted_waves_get_nothing(
        client, store, db, emu: Emulator):  # noqa: F811
    for name in ("eu-1", "eu-2", "us-1"):
        await register(store, emu, name)
    ci = await issue(client, "ci", "deployer")
    alice = await issue(client, "alice", "approver")
    bob = await issue(client, "bob", "approver")
    resp = await client.post("/v1/deployments/web/revisions", headers={**ci, "X-Actor": "alice"}, json={
        "manifests": [namespace(), configmap("web-config", v="1")], "selector": "", "strategy": STRATEGY})
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["waves"] == [{"name": "canary", "targets": ["eu-1"]},
                                            {"name": "rest", "targets": ["eu-2", "us-1"]}]
    requested = await eventually(lambda: first(db, "ApprovalRequested", wave="canary"), what="approval asked")
    assert requested["id"] == rollout_decisions.event_id("web", 1, "ApprovalRequested", "canary")
    assert requested["metadata"]["actor"] == "ledger"

    for headers, status in ((alice, 403), ({**bob, "X-Actor": "alice"}, 403), (ci, 403)):
        refused = await client.post("/v1/deployments/web/approve", headers=headers, json={"wave": "canary"})
        assert refused.status == status, await refused.text()
    assert await first(db, "ApprovalGranted") is None
    assert all(emu.cluster(n).get("v1", "ConfigMap", "apps", "web-config") is None for n in ("eu-1", "eu-2", "us-1"))

    granted = await client.post("/v1/deployments/web/approve", headers=bob,
                                json={"wave": "canary", "reason": "change 42 reviewed"})
    assert granted.status == 200, await granted.text()
    again = await client.post("/v1/deployments/web/approve", headers=alice, json={"wave": "canary"})
    assert again.status in (403, 409)
    again = await client.post("/v1/deployments/web/approve", json={"wave": "canary"})
    assert again.status == 409, await again.text()
    approval = await first(db, "ApprovalGranted", wave="canary")
    assert approval is not None
    assert approval["by"] == "bob" and approval["reason"] == "change 42 reviewed"
    started = await eventually(lambda: first(db, "WaveStarted", wave="canary"), what="canary started")
    assert started["targets"] == ["eu-1"]
    await eventually(lambda: _on(emu, "eu-1"), what="canary applied")
    assert emu.cluster("eu-2").get("v1", "ConfigMap", "apps", "web-config") is None
    assert emu.cluster("us-1").get("v1", "ConfigMap", "apps", "web-config") is None

    view = await (await client.get("/v1/deployments/web/rollout")).json()
    assert view["rollout"]["waves"][0]["approval"]["by"] == "bob"
    assert view["rollout"]["submitter"] == "ci"
    state = await (await client.get(f"/v1/state?at={requested['position']}")).json()
    assert state["rollouts"][0]["waves"][0]["state"] == "awaiting-approval"


async def _on(where: Emulator, cluster: str) -> bool:
    return where.cluster(cluster).get("v1", "ConfigMap", "apps", "web-config") is not None


async def test_halt_and_resume_are_recorded_and_resume_of_a_halted_rollout_is_not_a_deployment_resume(
        client, store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1")
    resp = await client.post("/v1/deployments/web/revisions", json={
        "manifests": [configmap("web-config")], "selector": "", "strategy": STRATEGY})
    assert resp.status == 201, await resp.text()
    halted = await client.post("/v1/deployments/web/halt", json={"reason": "incident 7"})
    assert halted.status == 200, await halted.text()
    assert (await halted.json())["event"] == "RolloutHalted"
    assert (await client.post("/v1/deployments/web/halt", json={})).status == 409
    resumed = await client.post("/v1/deployments/web/resume", json={"reason": "fixed"})
    assert resumed.status == 200, await resumed.text()
    assert (await resumed.json())["event"] == "RolloutResumed"
    assert [e["type"] for e in await rollout_events(db) if e["type"].startswith("Rollout")] == [
        "RolloutHalted", "RolloutResumed"]
    assert (await client.post("/v1/deployments/web/resume", json={})).status == 409


@pytest.mark.parametrize(("strategy", "field"), [
    ({"waves": [{"name": "a", "size": -1}]}, "$.strategy.waves[0].size"),
    ({"waves": []}, "$.strategy.waves"),
    ({"waves": [{"name": "a"}], "approval": ["b"]}, "strategy.approval[0]"),
    ({"waves": [{"name": "a", "selector": "x in ("}]}, "strategy.waves[0].selector"),
    ({"waves": [{"name": "a"}], "on_failure": "explode"}, "$.strategy.on_failure"),
])
async def test_an_invalid_strategy_is_a_422_naming_the_field_and_nothing_is_written(client, db, strategy, field):  # noqa: F811
    resp = await client.post("/v1/deployments/web/revisions", json={
        "manifests": [configmap("c")], "selector": "", "strategy": strategy})
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["field"] == field
    assert await db.fetchval("SELECT count(*) FROM events WHERE stream = 'deployment-web'") == 0


async def test_a_strategy_comes_as_a_yaml_document_of_its_own(client, db):  # noqa: F811
    body = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: apps}\n---\n"
            "strategy:\n  waves:\n    - name: canary\n      size: 1\n    - name: rest\n  soak_seconds: 60\n")
    resp = await client.post("/v1/deployments/web/revisions?selector=", data=body,
                             headers={"Content-Type": "application/yaml"})
    assert resp.status == 201, await resp.text()
    data = json.loads(await db.fetchval("SELECT data::text FROM events WHERE type = 'RevisionSubmitted'"))
    assert data["strategy"]["soak_seconds"] == 60
    assert [m["kind"] for m in data["manifests"]] == ["ConfigMap"]
    bad = await client.post("/v1/deployments/web/revisions", data=body.replace("size: 1", "size: many"),
                            headers={"Content-Type": "application/yaml"})
    assert bad.status == 422 and (await bad.json())["field"] == "$.strategy.waves[0].size"
