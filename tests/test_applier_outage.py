"""Unreachable clusters never hold up reachable ones, on the event loop ``ledger serve`` runs
(uvloop: its ``call_at`` with a time already past returns a plain Handle, which once killed the
applier): through several backoff rounds of the unreachable targets, every reachable one is
applied, in the same deployment, in another, and on a cluster registered afterwards, while
readiness keeps telling the truth."""

from __future__ import annotations

import asyncio
import functools
import logging

import pytest
import uvloop

from api import keys
from emulator import Emulator
from ledger import events
from ledger import settings as settings_mod
from tests import credfiles
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
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(90)

UNREACHABLE = "https://127.0.0.1:1"


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings, backoff_base=0.01, backoff_cap=0.05)


async def _failed_rounds(db, target: str) -> int:
    return sum(1 for o in await outcomes(db) if o["target"] == target and o["type"] == "ApplyFailed")


async def test_reachable_targets_are_applied_through_backoff_rounds_of_unreachable_ones(
        client, store, db, emu: Emulator, caplog, tmp_path):  # noqa: F811
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    credfiles.add(tmp_path, unreachable={"server": UNREACHABLE, "anonymous": True})
    # dead-1 and dead-2 are in both deployments (two retry timers per target), dead-3 in one.
    for name, labels in [("dead-1", {"web": "yes", "api": "yes"}), ("dead-2", {"web": "yes", "api": "yes"}),
                         ("dead-3", {"api": "yes"})]:
        await append(store, events.TargetRegistered(target=name, labels=labels, credentials="unreachable"))
    await register(store, emu, "eu-1", web="yes")
    await register(store, emu, "us-1", api="yes")
    await submit(store, "web", [namespace(), configmap("web")], "web=yes")
    await submit(store, "api", [namespace(), configmap("api")], "api=yes")

    await eventually(lambda: _has(emu, "eu-1", "web", {}), what="web applied on eu-1")
    await eventually(lambda: _has(emu, "us-1", "api", {}), what="api applied on us-1")
    for dead in ("dead-1", "dead-2", "dead-3"):
        await eventually(functools.partial(_rounds_at_least, db, dead, 10), timeout=40,
                         what=f"ten backoff rounds on {dead}")
        ready = await client.get("/readyz")
        assert ready.status == 200, await ready.text()

    # A cluster registered afterwards, and a new revision everywhere, still get applied.
    await register(store, emu, "eu-2", web="yes")
    await submit(store, "web", [namespace(), configmap("web", version="2")], "web=yes")
    await submit(store, "api", [namespace(), configmap("api", version="2")], "api=yes")
    for cluster, name in [("eu-1", "web"), ("eu-2", "web"), ("us-1", "api")]:
        await eventually(functools.partial(_has, emu, cluster, name, {"version": "2"}),
                         what=f"revision 2 of {name} applied on {cluster}")
    before = {dead: await _failed_rounds(db, dead) for dead in ("dead-1", "dead-2", "dead-3")}
    for dead in before:
        await eventually(functools.partial(_rounds_at_least, db, dead, before[dead] + 3),
                         what=f"{dead} still retried")

    assert client.app[keys.APPLIER].status()["ready"]
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    assert (await ready.json())["not_ready"] == {}
    # Nothing crashed on the way: no restart counted, nothing logged as an error.
    metrics = await (await client.get("/metrics")).text()
    assert "ledger_task_restarts_total{" not in metrics
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def _rounds_at_least(db, target: str, n: int) -> bool:
    return await _failed_rounds(db, target) >= n


async def _has(emulator: Emulator, cluster: str, name: str, data: dict[str, str]) -> bool:
    if emulator.cluster(cluster).get("v1", "ConfigMap", "apps", name) is None:
        return False
    return live(emulator.cluster(cluster), "v1", "ConfigMap", "apps", name).get("data", {}) == data
