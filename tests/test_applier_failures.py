"""Failures: temporary ones retry with backoff and are recorded per attempt; permanent ones are
recorded with the API's message and wait for a new revision or a target change; a hung cluster
holds up nobody else."""

from __future__ import annotations

import functools

import pytest

from emulator import Emulator, Fault
from handlers import outcomes as outcomes_mod
from ledger import events, pgembed
from ledger import settings as settings_mod
from tests import credfiles
from tests.applier_support import (
    append,
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    namespace,
    outcomes,
    register,
    submit,
    succeeded,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(60)

CONFIGMAPS = "/api/v1/namespaces/apps/configmaps"


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings)


async def _until_succeeded(db, deployment, revision, targets):
    found = await outcomes(db, deployment)
    return found if succeeded(found, revision, targets) else None


def _of(found, target, revision=1):
    return [o for o in found if o["target"] == target and o["revision"] == revision]


async def test_server_errors_are_retried_and_every_failed_attempt_is_recorded(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    emu.cluster("eu-1").add_fault(Fault(status=500, method="PATCH", path=CONFIGMAPS, count=2))
    await submit(store, "web", [namespace(), configmap("a")], "region=eu")
    found = _of(await eventually(lambda: _until_succeeded(db, "web", 1, {"eu-1"})), "eu-1")
    assert [(o["type"], o["attempt"]) for o in found] == [
        ("ApplyFailed", 1), ("ApplyFailed", 2), ("ApplySucceeded", 3)]
    assert all(o["retryable"] and o["status"] == 500 for o in found[:2])
    assert "Internal error occurred: injected fault" in found[0]["error"]
    assert [o["id"] for o in found] == [outcomes_mod.event_id("web", 1, "eu-1", n) for n in (1, 2, 3)]


class TestRetryAfter:
    @pytest.fixture
    def settings(self, settings: settings_mod.Settings) -> settings_mod.Settings:
        return settings.replace(backoff_cap=5.0)

    async def test_429_is_retried_no_sooner_than_retry_after(self, store, db, emu: Emulator):  # noqa: F811
        await register(store, emu, "eu-1", region="eu")
        emu.cluster("eu-1").add_fault(Fault(status=429, retry_after=1, method="PATCH", path=CONFIGMAPS, count=1))
        await submit(store, "web", [namespace(), configmap("a")], "region=eu")
        await eventually(lambda: _until_succeeded(db, "web", 1, {"eu-1"}))
        rows = await db.fetch("SELECT type FROM events WHERE stream = 'rollout-web'"
                              " AND type IN ('ApplySucceeded', 'ApplyFailed') ORDER BY position")
        assert [r["type"] for r in rows] == ["ApplyFailed", "ApplySucceeded"]
        failed = (await outcomes(db, "web"))[0]
        assert failed["status"] == 429 and failed["retryable"]
        # The recorded plan for the retry honours the server's Retry-After of one second.
        assert failed["retry_in_ms"] >= 1000


@pytest.mark.parametrize("status", [403, 422])
async def test_permanent_errors_are_recorded_once_and_wait_for_a_change(store, db, emu: Emulator, status):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    emu.cluster("eu-1").add_fault(Fault(status=status, method="PATCH", path=CONFIGMAPS))
    await submit(store, "web", [namespace(), configmap("a")], "region=eu")
    failure = await eventually(lambda: _failures(db, "web"))
    assert len(failure) == 1
    assert failure[0]["status"] == status and not failure[0]["retryable"] and failure[0]["attempt"] == 1
    assert failure[0]["error"].split(" is ")[0] in ('configmaps "a"', 'ConfigMap "a"')  # the API's message
    # A later deployment is applied, and the failed one was not tried again meanwhile.
    await submit(store, "marker", [configmap("m", namespace="default")], "region=eu")
    await eventually(lambda: _until_succeeded(db, "marker", 1, {"eu-1"}))
    assert len(await outcomes(db, "web")) == 1
    patches = emu.cluster("eu-1").requests.matching("PATCH", CONFIGMAPS + "/a")
    assert len(patches) == 1
    # A target change re-arms it (the fault is still there: recorded again as attempt 2).
    await register(store, emu, "eu-1", updated=True, region="eu", tier="prod")
    second = await eventually(lambda: _failures(db, "web", 2))
    assert [o["attempt"] for o in second] == [1, 2]
    # A new revision is tried from attempt 1, and succeeds once the cluster lets it.
    emu.cluster("eu-1").clear_faults()
    await submit(store, "web", [namespace(), configmap("a", v="2")], "region=eu")
    found = await eventually(lambda: _until_succeeded(db, "web", 2, {"eu-1"}))
    assert _of(found, "eu-1", 2)[0]["attempt"] == 1


async def _failures(db, deployment, n=1):
    found = [o for o in await outcomes(db, deployment) if o["type"] == "ApplyFailed"]
    return found if len(found) >= n else None


async def test_an_unknown_kind_fails_permanently_with_a_404(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    gadget = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": "default"}}
    await submit(store, "web", [gadget], "region=eu")
    failure = (await eventually(lambda: _failures(db, "web")))[0]
    assert failure["status"] == 404 and not failure["retryable"]
    assert failure["error"] == 'no matches for kind "Gadget" in version "example.com/v1"'
    missing_group = {"apiVersion": "nope.io/v1", "kind": "Thing", "metadata": {"name": "t"}}
    await submit(store, "other", [missing_group], "region=eu")
    failure = (await eventually(lambda: _failures(db, "other")))[0]
    assert failure["status"] == 404 and not failure["retryable"]


async def test_dropped_connections_and_a_cluster_that_is_down_are_retried(store, db, emu: Emulator):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    await register(store, emu, "eu-2", region="eu")
    emu.cluster("eu-1").add_fault(Fault(drop=True, method="PATCH", path=CONFIGMAPS, count=1))
    emu.cluster("eu-2").down = True
    await submit(store, "web", [namespace(), configmap("a")], "region=eu")
    await eventually(lambda: _until_succeeded(db, "web", 1, {"eu-1"}))
    await eventually(lambda: _failures(db, "web", 2), what="eu-2 failing")
    emu.cluster("eu-2").down = False
    found = await eventually(lambda: _until_succeeded(db, "web", 1, {"eu-1", "eu-2"}))
    eu1 = _of(found, "eu-1")
    assert [(o["type"], o["attempt"]) for o in eu1] == [("ApplyFailed", 1), ("ApplySucceeded", 2)]
    assert eu1[0]["retryable"] and eu1[0]["status"] is None
    eu2 = _of(found, "eu-2")
    assert all(o["retryable"] for o in eu2[:-1]) and eu2[-1]["type"] == "ApplySucceeded"
    assert [o["attempt"] for o in eu2] == list(range(1, len(eu2) + 1))
    assert emu.cluster("eu-2").get("v1", "ConfigMap", "apps", "a") is not None


async def test_a_refused_connection_is_temporary(store, db, emu: Emulator, tmp_path):  # noqa: F811
    port = pgembed.free_port()
    credfiles.add(tmp_path, gone={"server": f"http://127.0.0.1:{port}", "anonymous": True})
    await append(store, events.TargetRegistered(target="gone", labels={"region": "eu"}, credentials="gone"))
    await submit(store, "web", [configmap("a", namespace="default")], "region=eu")
    found = await eventually(lambda: _failures(db, "web", 2))
    assert all(o["retryable"] and o["status"] is None for o in found)
    assert "Cannot connect" in found[0]["error"] or "onnect" in found[0]["error"]


class TestHungCluster:
    @pytest.fixture
    def settings(self, settings: settings_mod.Settings) -> settings_mod.Settings:
        return settings.replace(applier_concurrency=2, apply_timeout=1.0)

    async def test_one_hung_cluster_never_delays_the_others(self, store, db, emu: Emulator):  # noqa: F811
        for name in ("eu-1", "eu-2", "us-1"):
            await register(store, emu, name, region="all")
        emu.cluster("eu-1").add_fault(Fault(delay=60, method="PATCH"))
        for n in range(3):
            await submit(store, f"app{n}", [configmap(f"c{n}", namespace="default")], "region=all")
        for n in range(3):
            await eventually(functools.partial(_until_succeeded, db, f"app{n}", 1, {"eu-2", "us-1"}))
        timeouts = await eventually(lambda: _failures(db, "app0"))
        assert timeouts[0]["target"] == "eu-1" and timeouts[0]["retryable"]
        assert "timed out" in timeouts[0]["error"]
        emu.cluster("eu-1").clear_faults()
        for n in range(3):
            await eventually(functools.partial(_until_succeeded, db, f"app{n}", 1, {"eu-1"}))
