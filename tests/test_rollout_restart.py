"""A restart mid-soak: the service (API, applier, rollout driver) as a subprocess is killed while a
wave soaks and another one takes over. The soak ends when the recorded times say, the next wave
starts once, and no event is recorded twice. The test's own app runs no applier, so only the
subprocesses decide. The first wave selects no target, so the test needs no health report: the
wave completes as it starts and the soak begins."""

from __future__ import annotations

import collections
import datetime as dt
import json
from typing import Any

import aiohttp
import pytest

from emulator import Emulator
from tests import credfiles, servers
from tests.applier_support import configmap, eventually, namespace, process_env, register

pytestmark = pytest.mark.timeout(120)
CLUSTERS = ("eu-1", "eu-2")


async def rollout_log(db) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT id, position, type, data::text AS data, metadata::text AS metadata, recorded_at"
                          " FROM events WHERE stream = 'rollout-web' ORDER BY position")
    return [{"id": r["id"], "type": r["type"], "recorded_at": r["recorded_at"], **json.loads(r["data"]),
             "metadata": json.loads(r["metadata"])} for r in rows]


async def first_of(db, type_: str, **match: Any) -> dict[str, Any] | None:
    return next((e for e in await rollout_log(db) if e["type"] == type_
                 and all(e.get(k) == v for k, v in match.items())), None)


async def test_a_restart_mid_soak_resumes_the_soak_and_starts_the_next_wave_once(store, db, database_url, tmp_path):
    emulator = Emulator(list(CLUSTERS))
    await emulator.start()
    env = process_env(LEDGER_CREDENTIALS=str(credfiles.add_emulator(tmp_path, emulator)))
    first = servers.ServiceProcess(database_url, tmp_path, **env)
    second = servers.ServiceProcess(database_url, tmp_path, **env)
    try:
        for name in CLUSTERS:
            await register(store, emulator, name)
        await first.start()
        async with aiohttp.ClientSession(headers=servers.ADMIN_HEADERS) as session:
            async with session.post(f"{first.url}/v1/deployments/web/revisions", json={
                    "manifests": [namespace(), configmap("web-config")], "selector": "", "strategy": {
                        "waves": [{"name": "nobody", "selector": "ring=none"}, {"name": "rest"}],
                        "soak_seconds": 3}}) as resp:
                assert resp.status == 201, await resp.text()
        completed = await eventually(lambda: first_of(db, "WaveCompleted", wave="nobody"), what="the empty wave done")
        first.kill()
        assert await first_of(db, "WaveStarted", wave="rest") is None, "the soak ended before the kill"
        await second.start()
        rest = await eventually(lambda: first_of(db, "WaveStarted", wave="rest"), timeout=60,
                                what="the next wave started by the second process")
        started = await first_of(db, "WaveStarted", wave="nobody")
        assert started is not None
        settled = started["recorded_at"] + dt.timedelta(milliseconds=completed.get("duration_ms", 0))
        assert rest["recorded_at"] >= settled + dt.timedelta(seconds=3), "the soak was cut short"
        assert rest["metadata"]["client"] != started["metadata"]["client"]
        assert rest["targets"] == list(CLUSTERS)
        await eventually(lambda: _everywhere(emulator), what="the rest wave applied")
        kinds = collections.Counter((e["type"], e.get("wave")) for e in await rollout_log(db)
                                    if e["type"].startswith(("Wave", "Rollout", "Approval")))
        assert [k for k, n in kinds.items() if n > 1] == []
    finally:
        first.stop()
        second.stop()
        await emulator.stop()


async def _everywhere(emulator: Emulator) -> bool:
    return all(emulator.cluster(n).get("v1", "ConfigMap", "apps", "web-config") is not None for n in CLUSTERS)
