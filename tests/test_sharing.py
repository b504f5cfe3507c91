"""One object, one deployment per cluster, refused at the door (projections/sharing.py): the pure rule
over the fold, then every way a revision enters the log over HTTP (submission, rollback, the
generic append), each refusal a 409 naming the field and the other deployment, with nothing written.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger import events
from projections import commands, sharing
from tests.fleetdata import Log
from tests.projected import live_client, read, register  # noqa: F401 - fixture


def cm(name: str, namespace: str | None = "apps", api_version: str = "v1", kind: str = "ConfigMap") -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace is not None else {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "data": {"k": "v"}}


def _fleet(*others: tuple[str, list[dict[str, Any]], str]) -> Log:
    log = Log()
    log.target("eu-1", region="eu")
    log.target("eu-2", region="eu")
    log.target("us-1", region="us")
    for name, manifests, selector in others:
        log.add(events.RevisionSubmitted(deployment=name, revision=1, manifests=manifests, selector=selector))
    return log


# ---------------------------------------------------------------- the pure rule


def test_an_object_another_deployment_deploys_to_a_common_target_is_refused_naming_both():
    log = _fleet(("api", [cm("a"), cm("shared")], "region=eu"))
    with pytest.raises(sharing.Shared) as caught:
        sharing.check("web", [cm("mine"), cm("shared")], ["eu-2", "us-1"], sharing.holdings(log.fleet, "web"))
    refusal = caught.value
    assert isinstance(refusal, commands.Conflict)
    assert refusal.field == "manifests[1]"
    assert refusal.members == {"owner": "api", "targets": ["eu-2"],
                               "object": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "apps", "name": "shared"}}
    assert refusal.message.startswith("manifests[1] (ConfigMap apps/shared) is already deployed by deployment api to eu-2")


def test_disjoint_targets_other_objects_and_the_deployment_itself_are_no_conflict():
    log = _fleet(("api", [cm("shared")], "region=eu"))
    held = sharing.holdings(log.fleet, "web")
    sharing.check("web", [cm("shared")], ["us-1"], held)  # no common target
    sharing.check("web", [cm("shared", namespace="other"), cm("other")], ["eu-1"], held)
    sharing.check("web", [cm("shared", kind="Secret")], ["eu-1"], held)
    sharing.check("api", [cm("shared")], ["eu-1"], sharing.holdings(log.fleet, "api"))  # its own next revision
    sharing.check("web", [cm("shared")], [], held)  # reaching no target yet


def test_the_same_object_is_group_kind_namespace_and_name_whatever_the_version():
    log = _fleet(("api", [cm("d", api_version="apps/v1", kind="Deployment"), cm("plain", namespace=None)], ""))
    held = sharing.holdings(log.fleet, "web")
    with pytest.raises(sharing.Shared, match=r"Deployment\.apps apps/d"):
        sharing.check("web", [cm("d", api_version="apps/v1beta2", kind="Deployment")], ["eu-1"], held)
    sharing.check("web", [cm("d", api_version="extensions/v1beta1", kind="Deployment")], ["eu-1"], held)
    with pytest.raises(sharing.Shared, match="deployment api"):  # an omitted namespace is "default"
        sharing.check("web", [cm("plain", namespace="default")], ["eu-1"], held)


def test_a_removed_deployment_holds_nothing_and_a_paused_one_still_does():
    log = _fleet(("api", [cm("shared")], ""), ("old", [cm("gone")], ""))
    log.add(events.DeploymentPaused(deployment="api", reason="incident"))
    log.add(events.DeploymentRemoved(deployment="old"))
    held = sharing.holdings(log.fleet, "web")
    assert [h.deployment for h in held] == ["api"]
    sharing.check("web", [cm("gone")], ["eu-1"], held)
    with pytest.raises(sharing.Shared):
        sharing.check("web", [cm("shared")], ["eu-1"], held)


def test_the_targets_a_deployment_holds_are_those_it_matches_now():
    log = _fleet(("api", [cm("shared")], "region=eu"))
    log.add(events.TargetUpdated(target="us-1", labels={"region": "eu"}, server="https://us-1:6443"))
    with pytest.raises(sharing.Shared) as caught:
        sharing.check("web", [cm("shared")], ["us-1"], sharing.holdings(log.fleet, "web"))
    assert caught.value.members["targets"] == ["us-1"]


def test_a_rollback_is_refused_for_the_manifests_it_restores_naming_to_revision():
    log = _fleet(("api", [cm("shared")], "region=eu"))
    with pytest.raises(sharing.Shared) as caught:
        sharing.check("web", [cm("shared")], ["eu-1"], sharing.holdings(log.fleet, "web"),
                      field="to_revision", what="revision 1's ")
    assert caught.value.field == "to_revision"
    assert caught.value.message.startswith("revision 1's manifests[0] (ConfigMap apps/shared)")


# ---------------------------------------------------------------- over HTTP


async def _count(db: Any) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


async def _post(client: Any, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.post(path, json=body)
    return response.status, await response.json()


async def _revision(client: Any, name: str, manifests: list[dict[str, Any]], selector: str | None = None) -> dict[str, Any]:
    status, body = await _post(client, f"/v1/deployments/{name}/revisions",
                               {"manifests": manifests, **({"selector": selector} if selector is not None else {})})
    assert status == 201, body
    return body


async def _fleet_over_http(client: Any) -> None:
    await register(client, "eu-1", region="eu")
    await register(client, "us-1", region="us")
    await _revision(client, "api", [cm("api"), cm("shared")], "region=eu")


async def test_a_submission_sharing_an_object_is_409_naming_the_manifest_and_the_owner(client, db):
    await _fleet_over_http(client)
    before = await _count(db)
    status, problem = await _post(client, "/v1/deployments/web/revisions",
                                  {"manifests": [cm("web"), cm("shared")], "selector": ""})
    assert status == 409, problem
    assert (problem["field"], problem["owner"], problem["targets"]) == ("manifests[1]", "api", ["eu-1"])
    assert problem["object"] == {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "apps", "name": "shared"}
    assert "deployment api" in problem["detail"]
    yaml_body = await client.post("/v1/deployments/web/revisions?selector=region%3Deu", headers={
        "Content-Type": "application/yaml"}, data="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n"
                                                  "  namespace: apps\n")
    assert yaml_body.status == 409 and (await yaml_body.json())["field"] == "manifests[0]"
    assert await _count(db) == before
    # Where the two do not meet, the same object is fine; moving the selector onto api's target is not.
    await _revision(client, "web", [cm("web"), cm("shared")], "region=us")
    status, problem = await _post(client, "/v1/deployments/web/revisions", {"manifests": [cm("shared")], "selector": ""})
    assert (status, problem["field"]) == (409, "manifests[0]")


async def test_a_rollback_restoring_a_shared_object_is_409_naming_to_revision(client, db):
    await register(client, "eu-1", region="eu")
    await _revision(client, "web", [cm("shared")], "")
    await _revision(client, "web", [cm("web")])
    await _revision(client, "api", [cm("shared")], "region=eu")  # web no longer deploys it
    before = await _count(db)
    status, problem = await _post(client, "/v1/deployments/web/rollback", {"to_revision": 1})
    assert status == 409, problem
    assert (problem["field"], problem["owner"]) == ("to_revision", "api")
    assert problem["detail"].startswith("revision 1's manifests[0] (ConfigMap apps/shared) is already deployed by "
                                        "deployment api to eu-1")
    assert await _count(db) == before


async def test_the_generic_append_refuses_as_the_commands_do(client, db):
    await _fleet_over_http(client)
    await _revision(client, "web", [cm("web")], "")
    await _revision(client, "web", [cm("web"), cm("other")])
    before = await _count(db)
    status, problem = await _post(client, "/v1/streams/deployment-web/events", {"events": [{
        "type": "RevisionSubmitted", "data": {"deployment": "web", "revision": 3, "manifests": [cm("shared")]}}]})
    assert (status, problem["field"], problem["owner"]) == (409, "$.events[0].data.manifests[0]", "api")
    # A rollback submitted after a revision in the same append: decided on what the first leaves.
    status, problem = await _post(client, "/v1/streams/deployment-web/events", {"events": [
        {"type": "RevisionSubmitted", "data": {"deployment": "web", "revision": 3, "manifests": [cm("third")]}},
        {"type": "RolledBack", "data": {"deployment": "web", "revision": 4, "to_revision": 1}}]})
    assert status == 201, problem
    await _post(client, "/v1/deployments/api/revisions", {"manifests": [cm("api"), cm("shared"), cm("other")]})
    status, problem = await _post(client, "/v1/streams/deployment-web/events", {"events": [
        {"type": "RolledBack", "data": {"deployment": "web", "revision": 5, "to_revision": 2}}]})
    assert (status, problem["field"], problem["owner"]) == (409, "$.events[0].data.to_revision", "api")
    assert await _count(db) == before + 3


async def test_removing_the_owner_frees_its_objects(client, db):
    await _fleet_over_http(client)
    response = await client.delete("/v1/deployments/api")
    assert response.status == 200, await response.text()
    await _revision(client, "web", [cm("shared")], "")


async def test_the_read_models_and_the_log_after_them_are_both_seen(live, db):
    await _fleet_over_http(live)
    written = await _revision(live, "other", [cm("other")], "")
    await read(live, "/v1/deployments", written["position"])  # the projector has folded api
    # api is behind the read models' checkpoint, so only they can show it; "late" may be after it.
    await _revision(live, "late", [cm("late")], "region=us")
    for name, field, owner in (("shared", "manifests[0]", "api"), ("late", "manifests[0]", "late")):
        status, problem = await _post(live, "/v1/deployments/web/revisions", {"manifests": [cm(name)], "selector": ""})
        assert (status, problem["field"], problem["owner"]) == (409, field, owner)
