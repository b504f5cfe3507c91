"""An event in the log that this version cannot decode stops every reader that reaches it, visibly:
a replay answers 503 naming it, the applier stops before it (and /readyz says so), verify reports
it, and each stop is counted and logged with the position (projections/undecodable.py).

The event is put straight into the log with SQL, hash chain kept (tests/test_projector_stall.py's
``insert_raw_data``), as only a log written around the service could hold it.
"""

from __future__ import annotations

import asyncio

import pytest

from emulator import Emulator
from ledger import events, writer
from ledger import settings as settings_mod
from tests.applier_support import (
    append,
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    namespace,
)
from tests.applier_support import fast as fast_settings
from tests.test_projector_stall import insert_raw_data

pytestmark = pytest.mark.timeout(90)
BEYOND_INT32 = {"deployment": "web", "revision": 2147483648, "manifests": [], "selector": ""}


def _counted(text: str, reader: str) -> float:
    wanted = f'ledger_undecodable_events_total{{reader="{reader}"}}'
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(wanted))


class TestReplayAndVerify:
    async def test_replay_stops_at_an_undecodable_event_naming_it_and_verify_reports_it(self, client, store, db):  # noqa: F811
        first = await append(store, events.TargetRegistered(target="eu-1", labels={"region": "eu"}, server="https://a"))
        poison = await insert_raw_data(db, "deployment-web", "RevisionSubmitted", BEYOND_INT32)
        await append(store, events.TargetRegistered(target="eu-2", labels={"region": "eu"}, server="https://b"))
        before = _counted(await (await client.get("/metrics")).text(), "replay")

        earlier = await client.get(f"/v1/state?at={first}")
        assert earlier.status == 200 and [t["name"] for t in (await earlier.json())["targets"]] == ["eu-1"]
        for query in (f"?at={poison}", "", "?at=head"):
            answer = await client.get(f"/v1/state{query}")
            assert answer.status == 503, (query, await answer.text())
            problem = await answer.json(content_type=None)
            assert (problem["position"], problem["event_type"]) == (poison, "RevisionSubmitted"), problem
            assert "$.revision" in problem["reason"] and answer.headers["Retry-After"]
        assert _counted(await (await client.get("/metrics")).text(), "replay") == before + 3

        report = await (await client.get("/v1/verify")).json()
        assert (report["ok"], report["position"], report["problem"]) == (False, poison, "undecodable"), report
        assert "$.revision" in report["detail"]
        assert (await (await client.get(f"/v1/verify?to={poison - 1}")).json())["ok"] is True


async def test_a_write_deciding_on_an_undecodable_event_is_503_naming_it_and_writes_nothing(client, store, db):  # noqa: F811
    await append(store, events.TargetRegistered(target="eu-1", labels={"region": "eu"}, server="https://a"))
    poison = await insert_raw_data(db, "deployment-web", "RevisionSubmitted", BEYOND_INT32)
    before = await db.fetchval("SELECT count(*) FROM events")
    for method, path, body in (
            ("POST", "/v1/deployments/web/revisions", {"manifests": [namespace(), configmap("web", v="2")],
                                                       "selector": "region=eu"}),
            ("POST", "/v1/deployments/web/pause", {"reason": "x"})):
        answer = await client.request(method, path, json=body)
        assert answer.status == 503, (path, await answer.text())
        problem = await answer.json(content_type=None)
        assert (problem["position"], problem["event_type"]) == (poison, "RevisionSubmitted"), problem
    assert await db.fetchval("SELECT count(*) FROM events") == before
    assert _counted(await (await client.get("/metrics")).text(), "commands") >= 2


class TestApplier:
    @pytest.fixture
    def settings(self, settings: settings_mod.Settings) -> settings_mod.Settings:
        return fast_settings(settings)

    async def test_the_applier_stops_before_an_undecodable_event_and_readiness_names_it(
            self, client, store, db, emu: Emulator):  # noqa: F811
        for name in ("eu-1", "eu-2"):
            assert (await client.put(f"/v1/targets/{name}", json={"labels": {"region": "eu"}, "credentials": name})).status == 201
        await client.put("/v1/targets/eu-2", json={"labels": {"region": "none"}, "credentials": "eu-2"})
        submitted = await client.post("/v1/deployments/web/revisions", json={
            "manifests": [namespace(), configmap("web", v="1")], "selector": "region=eu"})
        assert submitted.status == 201, await submitted.text()

        async def applied(cluster: str) -> bool:
            return emu.cluster(cluster).get("v1", "ConfigMap", "apps", "web") is not None

        await eventually(lambda: applied("eu-1"), what="revision 1 on eu-1")
        async with db.transaction():  # the applier appends outcomes meanwhile: hold the writer's lock
            await db.execute("SELECT pg_advisory_xact_lock($1)", writer.APPEND_LOCK)
            poison = await insert_raw_data(db, "deployment-web", "RevisionSubmitted", BEYOND_INT32)
        # Relabelled into the selector after the bad event: an applier that passed it by would apply here.
        assert (await client.put("/v1/targets/eu-2", json={"labels": {"region": "eu"}, "credentials": "eu-2"})).status == 200

        async def stopped() -> dict | None:
            ready = await client.get("/readyz")
            if ready.status != 503:
                return None
            named = (await ready.json())["not_ready"].get("applier")
            return named if named and f"position {poison}" in str(named) else None

        named = await eventually(stopped, timeout=30, what="/readyz names the applier stopped at the event")
        assert "does not decode" in str(named) and "$.revision" in str(named), named
        assert _counted(await (await client.get("/metrics")).text(), "applier") >= 1
        await asyncio.sleep(0.5)  # restarts from its checkpoint go on; none passes the event by
        assert not await applied("eu-2")
        saved = await db.fetchval("SELECT position FROM applier_checkpoints")
        assert saved is None or saved < poison
