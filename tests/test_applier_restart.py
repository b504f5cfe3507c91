"""Restart and scale-out: the applier killed mid-fan-out converges every target after a restart
without recording any outcome twice, and two applier processes share the targets, the survivor
taking over the targets of one that dies."""

from __future__ import annotations

import collections
import re

import aiohttp
import pytest

from api import app as app_mod
from emulator import Emulator, Fault
from tests import credfiles, servers
from tests.applier_support import (
    ApplierProcess,
    client,  # noqa: F401 - fixture
    configmap,
    deployment_object,
    eventually,
    fast,
    live,
    namespace,
    outcomes,
    process_env,
    register,
    submit,
    succeeded,
)

pytestmark = pytest.mark.timeout(120)


def _no_attempt_twice(found):
    keys = collections.Counter((o["deployment"], o["revision"], o["target"], o["attempt"]) for o in found)
    assert [k for k, n in keys.items() if n > 1] == []
    assert len({o["id"] for o in found}) == len(found)


async def _members(db) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid"
        " AND objsubid = 2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        0x4C44_414D)


async def test_sigkill_mid_fan_out_then_restart_converges_without_duplicate_outcomes(store, db, database_url, tmp_path):
    names = [f"c{n:02d}" for n in range(50)]
    emu = Emulator(names)
    await emu.start()
    env = process_env(LEDGER_APPLIER_CONCURRENCY="4",
                      LEDGER_CREDENTIALS=str(credfiles.add_emulator(tmp_path, emu)))
    first = servers.ServiceProcess(database_url, tmp_path, **env)
    second = servers.ServiceProcess(database_url, tmp_path, **env)
    try:
        for name in names:
            await register(store, emu, name, fleet="edge")
            emu.cluster(name).add_fault(Fault(delay=0.05, method="PATCH"))
        await first.start()
        await eventually(lambda: _members(db), what="first applier claiming")
        await submit(store, "web", [namespace(), configmap("cfg", v="1"), deployment_object("web")], "fleet=edge")
        await eventually(lambda: _at_least(db, 10), what="part of the fan-out recorded")
        first.kill()
        recorded_before = len(await outcomes(db, "web"))
        assert recorded_before < 50, "the fan-out finished before the kill; slow it down"
        # The dead process's locks went with its connections; its last delayed requests land or not.
        await eventually(lambda: _no_members(db), what="the killed applier's claims released")
        for name in names:
            emu.cluster(name).clear_faults()
        await second.start()
        found = await eventually(lambda: _all(db, set(names)), timeout=60, what="every target converged")
        _no_attempt_twice(found)
        per_target = collections.Counter(o["target"] for o in found if o["type"] == "ApplySucceeded")
        assert set(per_target.values()) == {1}, "a target converged twice"
        for name in names:
            cm = emu.cluster(name).get("v1", "ConfigMap", "apps", "cfg")
            assert cm is not None and cm["metadata"]["labels"]["ledger.dev/revision"] == "1"
            assert emu.cluster(name).get("apps/v1", "Deployment", "apps", "web") is not None
        clients = {o["metadata"]["client"] for o in found}
        assert len(clients) == 2  # both processes recorded part of the fan-out
    finally:
        first.kill()
        second.stop()
        await emu.stop()


async def _at_least(db, n):
    return len([o for o in await outcomes(db, "web") if o["type"] == "ApplySucceeded"]) >= n


async def _no_members(db):
    return await _members(db) == 0


async def _all(db, targets, revision=1):
    found = await outcomes(db, "web")
    return found if succeeded(found, revision, targets) else None


async def test_two_appliers_share_the_targets_and_one_takes_over_when_the_other_dies(store, db, database_url, tmp_path):
    names = [f"c{n:02d}" for n in range(20)]
    emu = Emulator(names)
    await emu.start()
    env = process_env(LEDGER_CREDENTIALS=str(credfiles.add_emulator(tmp_path, emu)), LEDGER_METRICS_PUBLIC="true")
    for name in names:
        await register(store, emu, name, fleet="edge")
    a = ApplierProcess(database_url, tmp_path / "a", **env)
    b = ApplierProcess(database_url, tmp_path / "b", **env)
    try:
        await a.start()
        await b.start()

        async def shared():
            sa, sb = await a.status(), await b.status()
            if not sa or not sb:
                return None
            split = (sa["claims"]["owned"], sb["claims"]["owned"])
            return split if sa["claims"]["members"] == sb["claims"]["members"] and sum(split) == 20 \
                and min(split) > 0 and len(sa["claims"]["members"]) == 2 else None

        split = await eventually(shared, what="targets split between two appliers")
        assert (await claims_metric(a), await claims_metric(b)) == split  # claims held per process
        await submit(store, "web", [namespace(), configmap("cfg", v="1")], "fleet=edge")
        found = await eventually(lambda: _all(db, set(names)))
        by_client = collections.Counter(o["metadata"]["client"] for o in found)
        assert sorted(by_client.values()) == sorted(split)
        assert set(collections.Counter(o["target"] for o in found).values()) == {1}
        assert a.proc is not None
        pid_a = f"/{a.proc.pid}"
        a.kill()
        await eventually(lambda: _alone(b), what="b owns every target")
        await submit(store, "web", [namespace(), configmap("cfg", v="2")], "fleet=edge")
        found = await eventually(lambda: _all(db, set(names), revision=2))
        second = [o for o in found if o["revision"] == 2]
        assert all(not o["metadata"]["client"].endswith(pid_a) for o in second)
        assert len(second) == 20
        _no_attempt_twice(found)
        for name in names:
            assert live(emu.cluster(name), "v1", "ConfigMap", "apps", "cfg")["data"] == {"v": "2"}
    finally:
        a.kill()
        b.stop()
        await emu.stop()


async def _alone(process):
    status = await process.status()
    return status and status["claims"]["owned"] == 20 and len(status["claims"]["members"]) == 1


async def test_a_stopped_applier_saves_its_checkpoint_and_the_next_one_resumes_from_it(
        aiohttp_client, settings, store, db, tmp_path):
    emu = Emulator(["eu-1", "eu-2"])
    await emu.start()
    credfiles.add_emulator(tmp_path, emu)
    try:
        for name in ("eu-1", "eu-2"):
            await register(store, emu, name, region="eu")
        await submit(store, "web", [namespace(), configmap("cfg", v="1")], "region=eu")
        first = await aiohttp_client(app_mod.make_app(fast(settings)))
        await eventually(lambda: _all(db, {"eu-1", "eu-2"}))
        await first.close()
        saved = await db.fetchrow("SELECT position, format FROM applier_checkpoints")
        head = await db.fetchval("SELECT max(position) FROM events")
        # Saved at the fold's position: at least the revision, at most the outcomes after it.
        assert saved is not None and 3 <= saved["position"] <= head
        requests_before = len(emu.cluster("eu-1").requests)
        await submit(store, "web", [namespace(), configmap("cfg", v="2")], "region=eu")
        second = await aiohttp_client(app_mod.make_app(fast(settings)))
        found = await eventually(lambda: _all(db, {"eu-1", "eu-2"}, revision=2))
        await second.close()
        assert [(o["revision"], o["attempt"]) for o in found if o["target"] == "eu-1"] == [(1, 1), (2, 1)]
        # Revision 1 was not applied again: only revision 2's work reached the cluster.
        patches = [r for r in list(emu.cluster("eu-1").requests)[requests_before:] if r.method == "PATCH"]
        assert all((r.json() or {}).get("metadata", {}).get("labels", {}).get("ledger.dev/revision") == "2"
                   for r in patches)
        assert await db.fetchval("SELECT position FROM applier_checkpoints") > saved["position"]
    finally:
        await emu.stop()


async def claims_metric(process: ApplierProcess) -> int:
    async with aiohttp.ClientSession() as session, session.get(process.url + "/metrics") as resp:
        text = await resp.text()
    (value,) = re.findall(r"^ledger_applier_claims (\S+)$", text, re.MULTILINE)
    return int(float(value))
