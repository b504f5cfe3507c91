"""A progressive rollout waits at frozen targets and continues when the window closes: the waves'
driver (handlers/rollouts.py), the health follower (handlers/follow.py) and the freeze gate
(handlers/freezegate.py) meet in the applier."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from emulator import Emulator
from ledger import settings as settings_mod
from tests.applier_support import (
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    namespace,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings)


def _window(seconds: float) -> dict[str, str]:
    now = dt.datetime.now(dt.UTC)
    return {"from": (now - dt.timedelta(minutes=1)).isoformat(), "until": (now + dt.timedelta(seconds=seconds)).isoformat()}


async def _types(db) -> list[tuple[str, str | None]]:
    rows = await db.fetch("SELECT type, data::text AS data FROM events WHERE stream = 'rollout-web'"
                          " AND type IN ('WaveStarted', 'WaveCompleted', 'RolloutCompleted') ORDER BY position")
    return [(r["type"], json.loads(r["data"]).get("wave")) for r in rows]


def _value(emu: Emulator, cluster: str) -> str | None:  # noqa: F811
    found = emu.cluster(cluster).get("v1", "ConfigMap", "apps", "web")
    return None if found is None else found["data"]["v"]


async def test_a_rollout_waits_at_a_frozen_wave_and_continues_when_its_window_closes(client, db, emu):  # noqa: F811
    for name, region in (("eu-1", "eu"), ("us-1", "us")):
        response = await client.put(f"/v1/targets/{name}", json={"labels": {"region": region}, "credentials": name})
        assert response.status == 201, await response.text()
    freeze = {"selector": "region=us", "reason": "peak", "schedule": _window(3600)}
    assert (await client.put("/v1/freezes/us-peak", json=freeze)).status == 201
    strategy = {"waves": [{"name": "canary", "selector": "region=eu"}, {"name": "rest"}], "soak_seconds": 0}
    submitted = await client.post("/v1/deployments/web/revisions", json={
        "manifests": [namespace(), configmap("web", v="1")], "selector": "", "strategy": strategy})
    assert submitted.status == 201, await submitted.text()

    async def canary_done() -> bool:
        return ("WaveCompleted", "canary") in await _types(db)

    await eventually(canary_done, what="the canary wave completed")
    assert _value(emu, "eu-1") == "1" and _value(emu, "us-1") is None
    assert not {("WaveCompleted", "rest"), ("RolloutCompleted", None)} & set(await _types(db))
    freeze["schedule"] = _window(5)
    assert (await client.put("/v1/freezes/us-peak", json=freeze)).status == 200

    async def completed() -> bool:
        return ("RolloutCompleted", None) in await _types(db)

    await eventually(completed, timeout=30, what="the rollout completed once the window closed")
    assert _value(emu, "us-1") == "1"

