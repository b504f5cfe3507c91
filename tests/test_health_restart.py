"""A restart while health is being followed: the service killed (SIGKILL) with some targets' health
recorded and others still followed, then started again, records every missing verdict once and none
twice (deterministic ids, the follow resumed from the log)."""

from __future__ import annotations

import collections
import json
from typing import Any

import pytest

from emulator import Emulator
from handlers import follow
from tests import credfiles, servers
from tests.applier_support import (
    deployment_object,
    eventually,
    namespace,
    process_env,
    register,
    submit,
)

pytestmark = pytest.mark.timeout(180)

AVAILABLE = {"replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1, "conditions": [
    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}


async def _events(db: Any, type_: str) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT id, data::text AS data, metadata::text AS metadata FROM events"
                          " WHERE type = $1 ORDER BY position", type_)
    return [{"id": r["id"], **json.loads(r["data"]), "metadata": json.loads(r["metadata"])} for r in rows]


async def _count(db: Any, type_: str, n: int) -> bool:
    return len(await _events(db, type_)) >= n


async def test_killed_mid_follow_then_restarted_records_each_verdict_once(store, db, database_url, tmp_path):
    names = [f"c{n:02d}" for n in range(20)]
    emu = Emulator(names, cluster_settings={"rollout_delay": 0.2})
    await emu.start()
    frozen = names[10:]
    for name in frozen:
        emu.cluster(name).configure({"controllers": False})  # followed, never healthy by themselves
    env = process_env(LEDGER_CREDENTIALS=str(credfiles.add_emulator(tmp_path, emu)))
    first = servers.ServiceProcess(database_url, tmp_path, **env)
    second = servers.ServiceProcess(database_url, tmp_path, **env)
    try:
        for name in names:
            await register(store, emu, name, fleet="edge")
        await first.start()
        await submit(store, "web", [namespace(), deployment_object("web")], "fleet=edge")
        await eventually(lambda: _count(db, "ApplySucceeded", 20), timeout=60, what="applied everywhere")
        await eventually(lambda: _count(db, "TargetHealthy", 10), timeout=60, what="the live half healthy")
        first.kill()
        before = await _events(db, "TargetHealthy")
        assert sorted(e["target"] for e in before) == names[:10]
        for name in frozen:  # becomes available while nobody watches
            cluster = emu.cluster(name)
            live = cluster.get("apps/v1", "Deployment", "apps", "web")
            assert live is not None
            cluster.patch_object("apps/v1", "Deployment", "apps", "web", {"status": {
                **AVAILABLE, "observedGeneration": live["metadata"]["generation"]}})
        await second.start()
        await eventually(lambda: _count(db, "TargetHealthy", 20), timeout=60, what="every target healthy")
        found = await _events(db, "TargetHealthy")
        assert collections.Counter(e["target"] for e in found) == dict.fromkeys(names, 1)
        assert {e["id"] for e in found} == {follow.event_id("web", 1, n, 1, 1) for n in names}
        recorders = {e["target"]: e["metadata"]["client"] for e in found}
        assert len({recorders[n] for n in names[:10]} | {recorders[n] for n in frozen}) == 2
        assert await _events(db, "TargetDegraded") == []
        assert len(await _events(db, "ApplySucceeded")) == 20  # the restart applied nothing again
    finally:
        first.kill()
        second.stop()
        await emu.stop()
