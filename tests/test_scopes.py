"""Scoped tokens: a deployer limited to a target selector and deployment-name globs.

The scope is recorded with the revision, and the targets it reaches are those its selector and its
scope both match, so a later relabel never carries it beyond the scope: checked in the pure fold,
and end to end with the applier against emulated clusters. Rollback, pause and resume check the
same scope, and every refusal is 403 problem+json naming the scope, with nothing written.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from emulator import Emulator
from ledger import events
from ledger import settings as settings_mod
from projections import fleet
from tests.applier_support import (
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    namespace,
)
from tests.applier_support import fast as fast_settings
from tests.tokens_support import issue

pytestmark = pytest.mark.timeout(90)
T0 = dt.datetime(2026, 3, 3, tzinfo=dt.UTC)
EU = {"targets": "region=eu", "deployments": ["web-*"]}


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings)


def _fold(*evs: events.AnyEvent) -> fleet.Fleet:
    state = fleet.empty()
    for i, e in enumerate(evs, 1):
        fleet.apply(state, e, fleet.Meta(i, "s", i, T0))
    return state


def test_a_scoped_revision_reaches_only_targets_its_selector_and_scope_both_match_whatever_the_labels():
    state = _fold(
        events.TargetRegistered(target="eu-1", labels={"region": "eu", "app": "web"}, server="https://a"),
        events.TargetRegistered(target="us-1", labels={"region": "us"}, server="https://b"),
        events.RevisionSubmitted(deployment="web-1", revision=1, manifests=[], selector="app=web",
                                 scope=events.Scope(targets="region=eu")),
    )
    assert sorted(state.deployments["web-1"].rollouts) == ["eu-1"]
    fleet.apply(state, events.TargetUpdated(target="us-1", labels={"region": "us", "app": "web"},
                                            server="https://b"), fleet.Meta(4, "s", 2, T0))
    assert sorted(state.deployments["web-1"].rollouts) == ["eu-1"]
    fleet.apply(state, events.TargetUpdated(target="us-1", labels={"region": "eu", "app": "web"},
                                            server="https://b"), fleet.Meta(5, "s", 3, T0))
    assert sorted(state.deployments["web-1"].rollouts) == ["eu-1", "us-1"]
    # A rollback keeps the restored revision's scope (and an unscoped one adds nothing).
    fleet.apply(state, events.RevisionSubmitted(deployment="web-1", revision=2, manifests=[], selector="app=web"),
                fleet.Meta(6, "s", 4, T0))
    fleet.apply(state, events.TargetUpdated(target="us-1", labels={"region": "us", "app": "web"},
                                            server="https://b"), fleet.Meta(7, "s", 5, T0))
    assert sorted(state.deployments["web-1"].rollouts) == ["eu-1", "us-1"]
    fleet.apply(state, events.RolledBack(deployment="web-1", revision=3, to_revision=1), fleet.Meta(8, "s", 6, T0))
    assert sorted(state.deployments["web-1"].rollouts) == ["eu-1"]


async def _count(db) -> int:
    """Events recorded by requests (the applier's outcomes go on by themselves)."""
    return int(await db.fetchval("SELECT count(*) FROM events WHERE category <> 'rollout'"))


async def _target(client, name: str, emu: Emulator, **labels: str) -> None:  # noqa: F811
    response = await client.put(f"/v1/targets/{name}", json={"labels": labels, "credentials": name})
    assert response.status in (200, 201), await response.text()


async def test_relabelling_a_target_into_the_selector_never_carries_a_scoped_revision_beyond_the_scope(
        client, emu: Emulator, db):  # noqa: F811
    await _target(client, "eu-1", emu, region="eu", tier="prod")
    await _target(client, "eu-2", emu, region="eu", tier="staging")
    await _target(client, "us-1", emu, region="us", tier="staging")
    deployer = await issue(client, "eu-deployer", "deployer", **EU)
    response = await client.post("/v1/deployments/web-1/revisions", headers=deployer,
                                 json={"manifests": [namespace(), configmap("web", v="1")], "selector": "tier=prod"})
    assert response.status == 201, await response.text()
    assert (await response.json())["matched_targets"] == ["eu-1"]
    row = await db.fetchrow("SELECT data, metadata FROM events WHERE type = 'RevisionSubmitted'")
    data, metadata = json.loads(row["data"]), json.loads(row["metadata"])
    assert data["selector"] == "tier=prod"
    assert data["scope"] == {"targets": "region=eu", "deployments": ["web-*"]}
    assert metadata["actor"] == "eu-deployer"
    await eventually(lambda: _has(emu, "eu-1"), what="applied to eu-1")
    # us-1 joins the selector (but not the scope) first, then eu-2 joins both: once eu-2 has the
    # revision the applier has seen both relabels, and us-1 must still have nothing.
    await _target(client, "us-1", emu, region="us", tier="prod")
    await _target(client, "eu-2", emu, region="eu", tier="prod")
    await eventually(lambda: _has(emu, "eu-2"), what="applied to eu-2 after its relabel")
    assert not await _has(emu, "us-1")
    assert not [r for r in emu.cluster("us-1").requests if r.method == "PATCH"]


async def _has(emu: Emulator, cluster: str) -> bool:  # noqa: F811
    return emu.cluster(cluster).get("v1", "ConfigMap", "apps", "web") is not None


async def test_a_deployment_outside_the_globs_or_reaching_outside_the_targets_is_403_and_nothing_is_written(
        client, emu: Emulator, db):  # noqa: F811
    await _target(client, "eu-1", emu, region="eu")
    await _target(client, "us-1", emu, region="us")
    deployer = await issue(client, "eu-deployer", "deployer", **EU)
    revision = {"manifests": [configmap("web", v="1")], "selector": ""}
    # Admin deploys web-wide everywhere; the scoped deployer may not touch it (it reaches us-1).
    assert (await client.post("/v1/deployments/web-wide/revisions", json=revision)).status == 201
    assert (await client.post("/v1/deployments/web-wide/revisions", json=revision)).status == 201
    before = await _count(db)
    refusals = {
        "outside the globs": ("POST", "/v1/deployments/api/revisions", revision),
        "reaching us-1 (revision)": ("POST", "/v1/deployments/web-wide/revisions", revision),
        "reaching us-1 (rollback)": ("POST", "/v1/deployments/web-wide/rollback", {"to_revision": 1}),
        "reaching us-1 (pause)": ("POST", "/v1/deployments/web-wide/pause", {}),
    }
    for case, (method, path, body) in refusals.items():
        response = await client.request(method, path, json=body, headers=deployer)
        assert response.status == 403, f"{case}: {response.status} {await response.text()}"
        assert response.content_type == "application/problem+json"
        problem = await response.json()
        assert problem["missing"] == "scope", case
        assert "scope" in problem["detail"], case
    assert await _count(db) == before
    # Inside the scope: its own deployment, which reaches eu-1 only, may be paused, resumed, rolled back.
    own = {"manifests": [configmap("web-eu", v="1")], "selector": ""}
    assert (await client.post("/v1/deployments/web-eu/revisions", headers=deployer, json=own)).status == 201
    assert (await client.post("/v1/deployments/web-eu/revisions", headers=deployer, json=own)).status == 201
    for path, body in (("pause", {}), ("resume", {}), ("rollback", {"to_revision": 1})):
        response = await client.post(f"/v1/deployments/web-eu/{path}", headers=deployer, json=body)
        assert response.status in (200, 201), f"{path}: {await response.text()}"
    rows = await db.fetch("SELECT data FROM events WHERE stream = 'deployment-web-eu' ORDER BY version")
    assert [json.loads(r["data"]).get("matched_targets") for r in rows] == [["eu-1"], ["eu-1"], None, None, ["eu-1"]]
