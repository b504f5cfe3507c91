"""Two deployments never share an object on a cluster: the applier does not take an object over from
another deployment (handlers/ownership.py), records why, never flips its owner label on a resync, and
never prunes it from under its owner.

Submissions refuse the overlap they can see (tests/test_sharing.py); these tests reach the applier
the ways a submission cannot see: a target relabelled into a second deployment's selector later, an
object relabelled by hand. Everything runs for real: PostgreSQL, the applier and the projector in
process, HTTP to the emulated clusters through kubernetes-asyncio.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator import Emulator, Fault
from ledger import events
from ledger import settings as settings_mod
from tests.applier_support import (
    append,
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    live,
    namespace,
    outcomes,
    register,
    submit,
    succeeded,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(90)

OWNER = "ledger.dev/deployment"


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings, resync_interval=0.2, projector=True)


def _dry_runs(emulator: Emulator, name: str) -> int:
    """Resync inspections of ConfigMap ``name`` on eu-1 (dry-run applies)."""
    return len([r for r in emulator.cluster("eu-1").requests
                if r.method == "PATCH" and r.query.get("dryRun") == "All" and r.path.endswith(f"/configmaps/{name}")])


async def _resyncs(emulator: Emulator, name: str, n: int) -> None:
    seen = _dry_runs(emulator, name)
    await eventually(lambda: _true(_dry_runs(emulator, name) >= seen + n), what=f"{n} more resyncs of {name}")


async def _true(value: bool) -> bool:
    return value


async def _drifts(db: Any) -> list[dict[str, Any]]:
    return [json.loads(r["data"]) for r in await db.fetch(
        "SELECT data::text AS data FROM events WHERE type = 'DriftDetected' ORDER BY position")]


async def _failed(db: Any, deployment: str) -> list[dict[str, Any]]:
    return [o for o in await outcomes(db, deployment) if o["type"] == "ApplyFailed"]


async def test_a_target_relabelled_into_a_second_deployment_keeps_the_first_ones_object(client, store, db, emu: Emulator):  # noqa: F811
    cluster = emu.cluster("eu-1")
    await register(store, emu, "eu-1", region="eu")
    await submit(store, "api", [namespace(), configmap("shared", v="api")], "region=eu")
    await eventually(lambda: _succeeded(db, "api", 1), what="api applied")
    # web names the same ConfigMap but selects no cluster yet: the submission could not know.
    await submit(store, "web", [configmap("shared", v="web"), configmap("web-only", v="web")], "team=web")
    await register(store, emu, "eu-1", updated=True, region="eu", team="web")

    refused = await eventually(lambda: _failed(db, "web"), what="web's apply refused")
    assert len(refused) == 1
    assert (refused[0]["reason"], refused[0]["retryable"], refused[0]["status"]) == ("SharedResource", False, 409)
    assert refused[0]["error"].startswith("ConfigMap apps/shared belongs to deployment api")
    shared = live(cluster, "v1", "ConfigMap", "apps", "shared")
    assert (shared["metadata"]["labels"][OWNER], shared["data"]) == ("api", {"v": "api"})
    assert cluster.get("v1", "ConfigMap", "apps", "web-only") is None, "a refused revision applies nothing there"

    async def web_failed() -> dict[str, Any] | None:
        body = await (await client.get("/v1/deployments/web")).json()
        rollout = next((r for r in body.get("rollouts", []) if r["target"] == "eu-1"), None)
        return rollout if rollout is not None and rollout["state"] == "failed" else None

    rollout = await eventually(web_failed, what="web's rollout on eu-1 failed in the read model")
    assert rollout["reason"] == "SharedResource"
    assert "deployment api" in rollout["message"]

    # Resyncs neither flip the owner nor record drift; the refusal is recorded once.
    await _resyncs(emu, "shared", 4)
    assert await _drifts(db) == []
    assert len(await _failed(db, "web")) == 1
    assert [o["type"] for o in await outcomes(db, "api")] == ["ApplySucceeded"]
    assert live(cluster, "v1", "ConfigMap", "apps", "shared")["metadata"]["labels"][OWNER] == "api"

    # Removing web prunes what is web's there (nothing) and leaves api's object alone.
    await append(store, events.DeploymentRemoved(deployment="web", reason="overlap"))
    await eventually(lambda: _succeeded(db, "web", 0), what="web pruned from eu-1")
    shared = live(cluster, "v1", "ConfigMap", "apps", "shared")
    assert (shared["metadata"]["labels"][OWNER], shared["data"]) == ("api", {"v": "api"})
    await _resyncs(emu, "shared", 2)
    assert await _drifts(db) == []
    assert live(cluster, "v1", "ConfigMap", "apps", "shared")["metadata"]["labels"][OWNER] == "api"


async def test_an_object_relabelled_to_another_deployment_is_not_healed_back(store, db, emu: Emulator):  # noqa: F811
    cluster = emu.cluster("eu-1")
    await register(store, emu, "eu-1", region="eu")
    await submit(store, "api", [namespace(), configmap("a", v="1")], "region=eu")
    await eventually(lambda: _succeeded(db, "api", 1), what="api applied")
    await submit(store, "beat", [configmap("beat", v="1")], "region=eu")  # its resyncs go on throughout
    await eventually(lambda: _succeeded(db, "beat", 1), what="beat applied")
    # Someone hands the object to a deployment of another ledger: not drift to heal, a shared object.
    cluster.patch_object("v1", "ConfigMap", "apps", "a", {"metadata": {"labels": {OWNER: "elsewhere"}}},
                         manager="kubectl-label")
    refused = await eventually(lambda: _failed(db, "api"), what="api's heal refused")
    assert (refused[0]["reason"], refused[0]["retryable"]) == ("SharedResource", False)
    assert "deployment elsewhere" in refused[0]["error"]
    await _resyncs(emu, "beat", 4)
    assert await _drifts(db) == []
    assert live(cluster, "v1", "ConfigMap", "apps", "a")["metadata"]["labels"][OWNER] == "elsewhere"
    assert len(await _failed(db, "api")) == 1


async def test_an_object_whose_owner_is_being_removed_is_waited_for_then_taken_under_the_new_name(store, db, emu: Emulator):  # noqa: F811
    cluster = emu.cluster("eu-1")
    await register(store, emu, "eu-1", region="eu")
    await submit(store, "api", [namespace(), configmap("shared", v="api")], "region=eu")
    await eventually(lambda: _succeeded(db, "api", 1), what="api applied")
    # api's prune of the ConfigMap fails twice, so "renamed" surely meets it still labelled api.
    cluster.add_fault(Fault(status=500, method="DELETE", path="/api/v1/namespaces/apps/configmaps/shared", count=2))
    await append(store, events.DeploymentRemoved(deployment="api", reason="renamed"))
    await submit(store, "renamed", [namespace(), configmap("shared", v="renamed")], "region=eu")

    await eventually(lambda: _succeeded(db, "renamed", 1), what="renamed applied once api pruned")
    waited = await _failed(db, "renamed")
    assert waited and all((f["reason"], f["retryable"]) == ("SharedResource", True) for f in waited)
    assert waited[0]["error"] == ("Namespace apps still belongs to deployment api, which no longer deploys it "
                                  "here; waiting for api to prune it")
    shared = live(cluster, "v1", "ConfigMap", "apps", "shared")
    assert (shared["metadata"]["labels"][OWNER], shared["data"]) == ("renamed", {"v": "renamed"})
    assert await _drifts(db) == []


async def _succeeded(db: Any, deployment: str, revision: int) -> bool:
    return succeeded(await outcomes(db, deployment), revision, {"eu-1"})
