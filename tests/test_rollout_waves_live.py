"""Progressive rollouts gated on real health: the applier follows what it applied on emulated
clusters (issue 12) and records TargetHealthy / TargetDegraded; the rollout driver starts, completes
and halts waves on them. ``:crashloop`` images never become ready on the emulator, and a Deployment
with ``progressDeadlineSeconds: 1`` is degraded a second after it is applied."""

from __future__ import annotations

import collections
import itertools
import json
from typing import Any

import pytest

from emulator import Emulator
from ledger import settings as settings_mod
from projections import rollout_decisions
from tests.applier_support import (
    client,  # noqa: F401 - fixture
    deployment_object,
    emu,  # noqa: F401 - fixture
    eventually,
    namespace,
    register,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(120)
CLUSTERS = ("eu-1", "eu-2", "us-1")


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings)


def workload(image: str = "nginx:1.27") -> list[dict[str, Any]]:
    app = deployment_object("web", image=image)
    app["spec"]["progressDeadlineSeconds"] = 1
    return [namespace(), app]


async def log_of(db, deployment: str = "web") -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, position, stream, type, data::text AS data, metadata::text AS metadata, recorded_at"
        " FROM events WHERE stream IN ('rollout-' || $1, 'deployment-' || $1) ORDER BY position", deployment)
    return [{"id": r["id"], "position": r["position"], "stream": r["stream"], "type": r["type"],
             "recorded_at": r["recorded_at"], **json.loads(r["data"]), "metadata": json.loads(r["metadata"])}
            for r in rows]


def of(found: list[dict[str, Any]], type_: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in found if e["type"] == type_ and all(e.get(k) == v for k, v in match.items())]


async def until(db, type_: str, what: str, timeout: float = 40, **match: Any) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        hits = of(await log_of(db), type_, **match)
        return hits[0] if hits else None
    found: dict[str, Any] = await eventually(check, timeout=timeout, what=what)
    return found


def image_on(where: Emulator, cluster: str) -> tuple[str, str] | None:
    found = where.cluster(cluster).get("apps/v1", "Deployment", "apps", "web")
    if found is None:
        return None
    return (found["spec"]["template"]["spec"]["containers"][0]["image"],
            found["metadata"]["labels"]["ledger.dev/revision"])


async def post_revision(client, strategy: dict[str, Any] | None, image: str = "nginx:1.27") -> int:  # noqa: F811
    body: dict[str, Any] = {"manifests": workload(image), "selector": ""}
    if strategy is not None:
        body["strategy"] = strategy
    resp = await client.post("/v1/deployments/web/revisions", json=body)
    assert resp.status == 201, await resp.text()
    revision: int = (await resp.json())["revision"]
    return revision


def no_doubles(found: list[dict[str, Any]]) -> None:
    keys = collections.Counter((e["type"], e.get("revision"), e.get("wave")) for e in found
                               if e["type"].startswith(("Wave", "Approval", "Rollout")))
    assert [k for k, n in keys.items() if n > 1] == []


async def test_three_waves_reach_healthy_clusters_one_after_another_and_replay_shows_them_as_they_stood(
        client, store, db, emu: Emulator):  # noqa: F811
    for name in CLUSTERS:
        await register(store, emu, name)
    await post_revision(client, {"waves": [{"name": "canary", "size": 1}, {"name": "early", "size": 1},
                                           {"name": "rest"}]})
    await until(db, "RolloutCompleted", "the rollout completed")
    found = await log_of(db)
    no_doubles(found)
    started = of(found, "WaveStarted")
    assert [(s["wave"], s["targets"]) for s in started] == [("canary", ["eu-1"]), ("early", ["eu-2"]),
                                                           ("rest", ["us-1"])]
    assert [c["wave"] for c in of(found, "WaveCompleted")] == ["canary", "early", "rest"]
    for before, after in itertools.pairwise(started):
        healthy = of(found, "TargetHealthy", revision=1, target=before["targets"][0])
        assert healthy and healthy[0]["position"] < after["position"], "a wave started before the last was healthy"
    for name in CLUSTERS:
        assert image_on(emu, name) == ("nginx:1.27", "1")
    canary_done = of(found, "WaveCompleted", wave="canary")[0]["position"]
    then = await (await client.get(f"/v1/state?at={canary_done}")).json()
    assert [(w["name"], w["state"]) for w in then["rollouts"][0]["waves"]] == [
        ("canary", "completed"), ("early", "pending"), ("rest", "pending")]
    now = await (await client.get("/v1/state")).json()
    assert now["rollouts"][0]["phase"] == "completed"


async def test_a_crashlooping_canary_halts_the_rollout_and_nothing_reaches_the_later_waves(
        client, store, db, emu: Emulator):  # noqa: F811
    for name in CLUSTERS:
        await register(store, emu, name)
    await post_revision(client, None)
    for name in CLUSTERS:
        await until(db, "TargetHealthy", f"revision 1 healthy on {name}", revision=1, target=name)
    await post_revision(client, {"waves": [{"name": "canary", "size": 1}, {"name": "rest"}]}, "nginx:crashloop")
    halted = await until(db, "RolloutHalted", "the rollout halted", revision=2)
    assert halted["failed_targets"] == ["eu-1"] and halted["wave"] == "canary"
    assert halted["metadata"]["actor"] == "ledger"
    found = await log_of(db)
    assert [s["wave"] for s in of(found, "WaveStarted", revision=2)] == ["canary"]
    assert {e["target"] for e in of(found, "ApplySucceeded", revision=2)} == {"eu-1"}
    assert image_on(emu, "eu-1") == ("nginx:crashloop", "2")
    assert image_on(emu, "eu-2") == ("nginx:1.27", "1")
    assert image_on(emu, "us-1") == ("nginx:1.27", "1")
    state = await (await client.get("/v1/deployments/web/rollout")).json()
    assert state["rollout"]["phase"] == "halted"


async def test_on_failure_rollback_rolls_back_exactly_the_targets_the_bad_revision_reached(
        client, store, db, emu: Emulator):  # noqa: F811
    for name in CLUSTERS:
        await register(store, emu, name)
    await post_revision(client, None)
    for name in CLUSTERS:
        await until(db, "TargetHealthy", f"revision 1 healthy on {name}", revision=1, target=name)
    await post_revision(client, {"waves": [{"name": "canary", "size": 2}, {"name": "rest"}],
                                 "on_failure": "rollback"}, "nginx:crashloop")
    halted = await until(db, "RolloutHalted", "the rollout halted", revision=2)
    rolled = await until(db, "RolledBack", "the automatic rollback")
    assert (rolled["revision"], rolled["to_revision"]) == (3, 1)
    assert rolled["matched_targets"] == ["eu-1", "eu-2"]
    assert rolled["metadata"]["actor"] == "ledger"
    assert rolled["metadata"]["causation_id"] == str(halted["id"])
    assert halted["id"] == rollout_decisions.event_id("web", 2, "RolloutHalted", 1)
    await until(db, "RolloutCompleted", "the rollback's own rollout completed", revision=3)
    found = await log_of(db)
    assert {e["target"] for e in of(found, "ApplySucceeded", revision=3)} == {"eu-1", "eu-2"}
    assert image_on(emu, "eu-1") == ("nginx:1.27", "3")
    assert image_on(emu, "eu-2") == ("nginx:1.27", "3")
    assert image_on(emu, "us-1") == ("nginx:1.27", "1")
    no_doubles(found)


async def test_a_new_revision_supersedes_a_rollout_in_flight(client, store, db, emu: Emulator):  # noqa: F811
    for name in CLUSTERS:
        await register(store, emu, name)
    waiting = {"waves": [{"name": "canary", "size": 1}, {"name": "rest"}], "approval": ["rest"]}
    await post_revision(client, waiting)
    await until(db, "ApprovalRequested", "rest waits for an approver", revision=1)
    await post_revision(client, {"waves": [{"name": "all"}]}, "nginx:1.28")
    superseded = await until(db, "RolloutSuperseded", "revision 1 superseded")
    assert (superseded["revision"], superseded["by_revision"]) == (1, 2)
    await until(db, "RolloutCompleted", "revision 2 everywhere", revision=2)
    found = await log_of(db)
    assert {e["target"] for e in of(found, "ApplySucceeded", revision=1)} == {"eu-1"}
    assert not of(found, "WaveStarted", revision=1, wave="rest")
    for name in CLUSTERS:
        assert image_on(emu, name) == ("nginx:1.28", "2")
