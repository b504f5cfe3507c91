"""The rollout status the read models derive from the applier's outcomes (GET /v1/deployments/{name}),
end to end through the HTTP API: targets registered and a revision submitted over HTTP, applied by
the applier, and shown per target as applied, failed, applying or paused."""

from __future__ import annotations

import pytest

from emulator import Emulator, Fault
from ledger import settings as settings_mod
from tests.applier_support import (
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    live,
    namespace,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings, projector=True, backoff_base=0.5, backoff_cap=1.0)


async def _rollouts(client, name, **states):  # noqa: F811
    resp = await client.get(f"/v1/deployments/{name}")
    if resp.status != 200:
        return None
    body = await resp.json()
    found = {r["target"]: r for r in body.get("rollouts", [])}
    if all(found.get(t, {}).get("state") == s for t, s in states.items()):
        return body
    return None


async def test_rollout_status_shows_applied_failed_retrying_and_paused_targets(client, emu: Emulator):  # noqa: F811
    for name, tier in (("eu-1", "prod"), ("eu-2", "staging"), ("us-1", "prod")):
        resp = await client.put(f"/v1/targets/{name}", json={"labels": {"region": "eu", "tier": tier},
                                                              "credentials": name})
        assert resp.status == 201, await resp.text()
    emu.cluster("eu-2").add_fault(Fault(status=422, method="PATCH", path="/configmaps"))
    emu.cluster("us-1").add_fault(Fault(status=503, method="PATCH", path="/configmaps"))
    resp = await client.post("/v1/deployments/web/revisions", json={
        "manifests": [namespace(), configmap("web-config", greeting="hello")], "selector": "region=eu"})
    assert resp.status == 201, await resp.text()
    body = await eventually(lambda: _rollouts(client, "web", **{"eu-1": "healthy", "eu-2": "failed",
                                                                  "us-1": "applying"}))
    rollouts = {r["target"]: r for r in body["rollouts"]}
    assert rollouts["eu-1"]["applied_revision"] == 1 and rollouts["eu-1"]["desired_revision"] == 1
    assert rollouts["eu-1"]["attempts"] == 1 and rollouts["eu-1"]["objects_applied"] == 2
    assert rollouts["eu-1"]["last_error"] is None and rollouts["eu-1"]["last_attempt_at"]
    assert rollouts["eu-2"]["applied_revision"] is None
    assert "is invalid" in rollouts["eu-2"]["last_error"]
    assert rollouts["us-1"]["last_error"]
    assert body["summary"]["healthy"] == 1 and body["summary"]["failed"] == 1 and body["summary"]["applying"] == 1
    assert live(emu.cluster("eu-1"), "v1", "ConfigMap", "apps", "web-config")["data"] == {"greeting": "hello"}
    # The retried target converges once the cluster recovers.
    emu.cluster("us-1").clear_faults()
    await eventually(lambda: _rollouts(client, "web", **{"us-1": "healthy"}))
    resp = await client.post("/v1/deployments/web/pause", json={"reason": "freeze"})
    assert resp.status in (200, 201), await resp.text()
    body = await eventually(lambda: _rollouts(client, "web", **{"eu-1": "paused", "eu-2": "paused"}))
    assert body["summary"]["paused"] == 3
