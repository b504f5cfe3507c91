"""One set of rules on every path into the log: the generic endpoint is decided like the commands,
ledger-written streams are closed to clients, and idempotency keys are bound to their request and
scoped to their actor. Each case here was accepted (201) before the rules were shared."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import credfiles, tokens_support
from tests.fleetdata import manifest

PROBLEM = "application/problem+json"
CREDENTIAL = "cluster"


async def post(client, stream: str, *events: dict[str, Any], **kw: Any):
    return await client.post(f"/v1/streams/{stream}/events", json={"events": list(events)}, **kw)


def revision(n: int = 1, **data: Any) -> dict[str, Any]:
    return {"type": "RevisionSubmitted",
            "data": {"deployment": "web", "revision": n, "selector": "", "manifests": [manifest()], **data}}


def without(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {**event, "data": {k: v for k, v in event["data"].items() if k != field}}


async def count(db) -> int:
    return await db.fetchval("SELECT count(*) FROM events")


async def refused(resp, status: int, field: str) -> dict[str, Any]:
    body = await resp.json()
    assert (resp.status, resp.content_type) == (status, PROBLEM), body
    assert body["field"] == field, body
    return body


@pytest.fixture(autouse=True)
def cluster_credential(settings):
    """The credential every target here names (the rules refuse a target without one)."""
    credfiles.add_anonymous(settings, CREDENTIAL)


async def register(client, name: str, **labels: str) -> None:
    resp = await client.put(f"/v1/targets/{name}", json={"labels": labels, "credentials": CREDENTIAL})
    assert resp.status == 201, await resp.text()


@pytest.mark.parametrize(("event", "field"), [
    (revision(2147483648), "$.events[0].data.revision"),
    (revision(2**64), "$.events[0].data.revision"),
    (revision(-5), "$.events[0].data.revision"),
    (revision(7), "$.events[0].data.revision"),
    (revision(selector="(((!!!"), "$.events[0].data.selector"),
    (revision(manifests=[{"foo": "bar"}]), "$.events[0].data.manifests[0].apiVersion"),
    (revision(manifests=[]), "$.events[0].data.manifests"),
    (revision(manifests=[{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"m{i}"}}
                         for i in range(10_000)]), "$.events[0].data.manifests"),
    (revision(manifests=[{**manifest(), "metadata": {"name": "web", "labels": {"app": "a\u0007b"}}}]),
     '$.events[0].data.manifests[0].metadata.labels.app'),
    (revision(manifests=[{**manifest(), "metadata": {"name": "web", "labels": {"app": "x" * 900_000}}}]),
     '$.events[0].data.manifests[0].metadata.labels.app'),
    (without(revision(), "selector"), "$.events[0].data.selector"),
    (revision(manifests=[{**manifest(), "data": {"n": 2**64}}]), "$.events[0].data.manifests[0].data.n"),
    (revision(matched_targets=["eu-1", "us-1"]), "$.events[0].data.matched_targets"),
    (revision(scope={"targets": "region=eu"}), "$.events[0].data.scope"),
    ({"type": "RolledBack", "data": {"deployment": "web", "revision": 1, "to_revision": 1}}, "$.events[0]"),
    ({"type": "DeploymentPaused", "data": {"deployment": "web"}}, "$.events[0]"),
])
async def test_generic_revision_breaking_a_rule_is_refused_naming_the_field(client, db, event, field):
    resp = await post(client, "deployment-web", event)
    assert resp.status in (404, 409, 422), await resp.text()
    await refused(resp, resp.status, field)
    assert await count(db) == 0


async def test_generic_revision_is_recorded_as_the_command_would_record_it(client, db):
    await register(client, "eu-1", region="eu")
    await register(client, "us-1", region="us")
    resp = await post(client, "deployment-web", revision(selector="region = eu"))
    assert resp.status == 201, await resp.text()
    stored = json.loads(await db.fetchval("SELECT data::text FROM events WHERE stream = 'deployment-web'"))
    assert stored["selector"] == "region=eu" and stored["matched_targets"] == ["eu-1"]
    # Supplying the server's values is fine; leaving the selector out keeps the current one.
    resp = await post(client, "deployment-web", without(revision(2, matched_targets=["eu-1"]), "selector"))
    assert resp.status == 201, await resp.text()
    second = json.loads(await db.fetchval("SELECT data::text FROM events WHERE position = 4"))
    assert (second["revision"], second["selector"], second["matched_targets"]) == (2, "region=eu", ["eu-1"])


async def test_generic_rollback_is_decided_like_the_command(client, db):
    await register(client, "eu-1", region="eu")
    await register(client, "us-1", region="us")
    assert (await post(client, "deployment-web", revision(selector="region=eu"))).status == 201
    assert (await post(client, "deployment-web", revision(2, selector="region=us"))).status == 201
    missing = await post(client, "deployment-web",
                         {"type": "RolledBack", "data": {"deployment": "web", "revision": 3, "to_revision": 9}})
    await refused(missing, 422, "$.events[0].data.to_revision")
    forged = await post(client, "deployment-web", {"type": "RolledBack", "data": {
        "deployment": "web", "revision": 3, "to_revision": 1, "matched_targets": ["us-1"]}})
    await refused(forged, 422, "$.events[0].data.matched_targets")
    assert await count(db) == 4
    ok = await post(client, "deployment-web",
                    {"type": "RolledBack", "data": {"deployment": "web", "revision": 3, "to_revision": 1}})
    assert ok.status == 201, await ok.text()
    stored = json.loads(await db.fetchval("SELECT data::text FROM events WHERE position = 5"))
    assert stored["matched_targets"] == ["eu-1"] and stored["message"] == "roll back to revision 1"


async def test_generic_target_events_follow_the_target_rules(client, db):
    base = {"target": "eu-1", "credentials": CREDENTIAL}
    cases = [
        ({"type": "TargetRegistered", "data": {"target": "eu-1"}}, 422, "$.events[0].data.credentials"),
        ({"type": "TargetRegistered", "data": {**base, "credentials": "nope"}}, 422,
         "$.events[0].data.credentials"),
        ({"type": "TargetRegistered", "data": {**base, "credentials_ref": "env:HOME"}}, 422,
         "$.events[0].data.credentials_ref"),
        ({"type": "TargetRegistered", "data": {**base, "labels": {"a": "b\u0001"}}}, 422,
         "$.events[0].data.labels.a"),
        ({"type": "TargetRegistered", "data": {**base, "labels": {"a": "x" * 900_000}}}, 422,
         "$.events[0].data.labels.a"),
        ({"type": "TargetRegistered", "data": {**base, "server": "file:///etc/passwd"}}, 422,
         "$.events[0].data.server"),
        ({"type": "TargetUpdated", "data": base}, 404, "$.events[0].type"),
        ({"type": "TargetRetired", "data": {"target": "eu-1"}}, 404, "$.events[0]"),
    ]
    for event, status, field in cases:
        await refused(await post(client, "target-eu-1", event), status, field)
    assert await count(db) == 0
    assert (await post(client, "target-eu-1", {"type": "TargetRegistered", "data": base})).status == 201
    await refused(await post(client, "target-eu-1", {"type": "TargetRegistered", "data": base}), 409,
                  "$.events[0].type")
    await refused(await post(client, "target-eu-1", {"type": "TargetUpdated", "data": base}), 409,
                  "$.events[0].type")
    assert await count(db) == 1


async def test_a_generic_append_is_decided_event_after_event_and_stored_whole_or_not_at_all(client, db):
    pause = {"type": "DeploymentPaused", "data": {"deployment": "web"}}
    resume = {"type": "DeploymentResumed", "data": {"deployment": "web"}}
    twice = await post(client, "deployment-web", revision(), pause, pause)
    await refused(twice, 409, "$.events[2]")
    skipped = await post(client, "deployment-web", revision(), revision(3))
    await refused(skipped, 422, "$.events[1].data.revision")
    assert await count(db) == 0
    ok = await post(client, "deployment-web", revision(), pause, resume, revision(2))
    assert ok.status == 201, await ok.text()
    assert (await ok.json())["positions"] == [1, 2, 3, 4]


async def test_ledger_written_streams_refuse_client_appends(client, db):
    forged = {"type": "ApplySucceeded", "data": {"deployment": "web", "revision": 1, "target": "eu-1"}}
    await refused(await post(client, "rollout-web", forged), 403, "stream")
    token = {"type": "TokenRevoked", "data": {"name": "admin"}}
    await refused(await post(client, "token-admin", token), 403, "stream")
    await refused(await post(client, "deployment-web", forged), 422, "$.events[0].type")
    await refused(await post(client, "widget-web", forged), 422, "stream")
    assert await count(db) == 0


async def test_idempotency_key_reused_for_another_body_is_422_on_every_write(client, db):
    await register(client, "eu-1", region="eu")
    key = {"Idempotency-Key": "k-1", "X-Actor": "alice"}
    first = await client.post("/v1/deployments/web/revisions", headers=key,
                              json={"manifests": [manifest()], "selector": ""})
    assert first.status == 201
    retry = await client.post("/v1/deployments/web/revisions", headers=key,
                              json={"selector": "", "manifests": [manifest()]})
    assert retry.status == 201 and retry.headers["Idempotent-Replayed"] == "true"
    other = await client.post("/v1/deployments/web/revisions", headers=key,
                              json={"manifests": [manifest(k="other")], "selector": ""})
    await refused(other, 422, "Idempotency-Key")
    paused = await client.post("/v1/deployments/web/pause", headers=key)
    await refused(paused, 422, "Idempotency-Key")
    put = await client.put("/v1/targets/eu-1", headers={**key, "Idempotency-Key": "t-1"},
                           json={"labels": {"region": "us"}, "credentials": CREDENTIAL})
    assert put.status == 200
    put_other = await client.put("/v1/targets/eu-1", headers={**key, "Idempotency-Key": "t-1"},
                                 json={"labels": {"region": "ap"}, "credentials": CREDENTIAL})
    await refused(put_other, 422, "Idempotency-Key")
    generic = await post(client, "deployment-web", {"type": "DeploymentPaused", "data": {"deployment": "web"}},
                         headers={**key, "Idempotency-Key": "g-1"})
    assert generic.status == 201
    generic_other = await post(client, "deployment-web",
                               {"type": "DeploymentPaused", "data": {"deployment": "web", "reason": "x"}},
                               headers={**key, "Idempotency-Key": "g-1"})
    await refused(generic_other, 422, "Idempotency-Key")
    assert await count(db) == 4
    hashes = await db.fetch("SELECT metadata->>'request_hash' AS h FROM events ORDER BY position")
    assert [r["h"] is not None for r in hashes] == [False, True, True, True]


async def test_idempotency_key_is_scoped_to_its_actor(client, db):
    await register(client, "eu-1", region="eu")
    body = {"manifests": [manifest()], "selector": ""}
    as_alice, as_bob = await tokens_support.issue(client, "alice"), await tokens_support.issue(client, "bob")
    alice = await client.post("/v1/deployments/web/revisions", json=body,
                              headers={"Idempotency-Key": "k", **as_alice})
    bob = await client.post("/v1/deployments/web/revisions", json=body,
                            headers={"Idempotency-Key": "k", **as_bob})
    assert (alice.status, bob.status) == (201, 201)
    assert "Idempotent-Replayed" not in bob.headers
    assert ((await alice.json())["revision"], (await bob.json())["revision"]) == (1, 2)
    actors = await db.fetch("SELECT metadata->>'actor' AS a FROM events WHERE stream = 'deployment-web'"
                            " ORDER BY position")
    assert [r["a"] for r in actors] == ["alice", "bob"]


async def test_client_event_id_reused_by_another_actor_is_a_conflict(client, db):
    event = {"id": "0192f0c4-0000-7000-8000-000000000001", "type": "TargetRegistered",
             "data": {"target": "eu-1", "credentials": CREDENTIAL}}
    other_admin = await tokens_support.issue(client, "root-2", role="admin")
    assert (await post(client, "target-eu-1", event)).status == 201
    again = await post(client, "target-eu-1", event)
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    await refused(await post(client, "target-eu-1", event, headers=other_admin), 409, "id")
    assert await db.fetchval("SELECT count(*) FROM events WHERE stream = 'target-eu-1'") == 1


async def test_a_registration_is_decided_on_the_stream_as_stored_when_it_exists(client, db):
    # A registration is first decided as if its stream were new (no read); each case below has a
    # stream already, so the guess is refused and the answer must be the one the stored stream gives.
    base = {"target": "eu-2", "credentials": CREDENTIAL}
    registered = {"type": "TargetRegistered", "data": base}
    assert (await post(client, "target-eu-2", registered)).status == 201
    body = await refused(await post(client, "target-eu-2", {"type": "TargetRegistered",
                                                           "data": {**base, "labels": {"a": "b"}}}),
                         409, "$.events[0].type")
    assert "already registered (version 1)" in body["detail"]
    resp = await client.post("/v1/streams/target-eu-2/events",
                             json={"events": [registered], "expected_version": "no_stream"})
    assert resp.status == 409 and "at version 1" in (await resp.json())["detail"]
    assert (await post(client, "target-eu-2", {"type": "TargetRetired", "data": {"target": "eu-2"}})).status == 201
    body = await refused(await post(client, "target-eu-2", registered), 409, "$.events[0]")
    assert "retired (version 2); a retired name is not reused" in body["detail"]
    assert [r["type"] for r in await db.fetch("SELECT type FROM events WHERE stream = 'target-eu-2' ORDER BY version")] \
        == ["TargetRegistered", "TargetRetired"]
