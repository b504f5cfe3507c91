"""Deployments over HTTP: submission in every body form, numbering, idempotency, expected versions,
refusals that write nothing, and the state read back with per-target rollouts."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from ledger import records
from tests.projected import CONFIG_MAP, live_client, manifests, read, register, submit  # noqa: F401 - fixture


async def count(db) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


async def test_a_revision_in_each_body_form_is_numbered_and_records_who_and_what(client, db):
    await register(client, "eu-1", region="eu")
    await register(client, "us-1", region="us")
    first = await client.post("/v1/deployments/web/revisions", headers={"X-Actor": "alice"},
                              json={"manifests": manifests(), "selector": "region = eu", "message": "m1"})
    assert first.status == 201
    assert await first.json() == {
        "deployment": "web", "stream": "deployment-web", "event": "RevisionSubmitted", "position": 3,
        "version": 1, "revision": 1, "selector": "region=eu", "matched_targets": ["eu-1"]}
    assert first.headers["Location"] == "/v1/deployments/web/revisions/1"
    second = await client.post("/v1/deployments/web/revisions",
                               json={"manifests_yaml": CONFIG_MAP.format(2), "message": "m2"})
    third = await client.post("/v1/deployments/web/revisions?selector=&message=m3",
                              data=CONFIG_MAP.format(3), headers={"Content-Type": "application/yaml"})
    assert [(await r.json())["revision"] for r in (second, third)] == [2, 3]
    assert (await third.json())["matched_targets"] == ["eu-1", "us-1"]
    rows = await db.fetch("SELECT data, metadata FROM events WHERE stream = 'deployment-web' ORDER BY version")
    data = [json.loads(r["data"]) for r in rows]
    assert [d.get("selector", "") for d in data] == ["region=eu", "region=eu", ""]
    assert [d["message"] for d in data] == ["m1", "m2", "m3"]
    assert data[2]["manifests"] == manifests("3")
    assert json.loads(rows[0]["metadata"])["actor"] == "admin-env"
    assert json.loads(rows[0]["metadata"])["on_behalf_of"] == "alice"


async def test_invalid_manifests_and_selectors_are_422_naming_index_field_and_position(client, db):
    bad = [*manifests(), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}]
    response = await client.post("/v1/deployments/web/revisions", json={"manifests": bad, "selector": ""})
    problem = await response.json()
    assert response.status == 422
    assert (problem["field"], problem["index"]) == ("manifests[1].metadata.name", 1)
    broken = await client.post("/v1/deployments/web/revisions",
                               json={"manifests_yaml": "a: [1\n", "selector": ""})
    assert broken.status == 422 and (await broken.json())["field"] == "manifests_yaml"
    selector = await client.post("/v1/deployments/web/revisions",
                                 json={"manifests": manifests(), "selector": "env notin (a,"})
    problem = await selector.json()
    assert selector.status == 422 and (problem["field"], problem["position"]) == ("selector", 13)
    neither = await client.post("/v1/deployments/web/revisions", json={"selector": ""})
    assert neither.status == 422 and (await neither.json())["field"] == "manifests"
    first = await client.post("/v1/deployments/web/revisions", json={"manifests": manifests()})
    assert first.status == 422 and (await first.json())["field"] == "selector"
    wrong_type = await client.post("/v1/deployments/web/revisions", data="x", headers={"Content-Type": "text/csv"})
    assert wrong_type.status == 415
    assert await count(db) == 0


async def test_a_retry_is_recognised_before_numbering_and_writes_nothing(client, db):
    key = {"Idempotency-Key": "deploy-42"}
    first = await client.post("/v1/deployments/web/revisions", headers=key,
                              json={"manifests": manifests("a"), "selector": ""})
    await submit(client, "web", value="b")
    retry = await client.post("/v1/deployments/web/revisions", headers=key,
                              json={"manifests": manifests("a"), "selector": ""})
    assert retry.status == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert await retry.json() == await first.json()
    assert await count(db) == 2


async def test_racing_retries_with_one_key_record_one_revision(client, db):
    key = {"Idempotency-Key": "race"}
    responses = await asyncio.gather(*(
        client.post("/v1/deployments/web/revisions", headers=key, json={"manifests": manifests(), "selector": ""})
        for _ in range(6)))
    bodies = [await r.json() for r in responses]
    assert {r.status for r in responses} == {201}
    assert {(b["revision"], b["position"]) for b in bodies} == {(1, 1)}
    assert await count(db) == 1


async def test_concurrent_submissions_get_dense_revision_numbers(client, db):
    results = await asyncio.gather(*(submit(client, "web", value=str(i)) for i in range(12)))
    assert sorted(r["revision"] for r in results) == list(range(1, 13))
    assert await count(db) == 12


async def test_a_stale_expected_version_is_409_naming_both_versions(client, db):
    await submit(client, "web")
    stale = await client.post("/v1/deployments/web/revisions",
                              json={"manifests": manifests("2"), "expected_version": 0})
    problem = await stale.json()
    assert stale.status == 409
    assert (problem["stream"], problem["expected_version"], problem["actual_version"]) == (
        "deployment-web", "no_stream", 1)
    assert "version 1" in problem["detail"]
    header = await client.post("/v1/deployments/web/pause", json={}, headers={"If-Match": '"3"'})
    assert header.status == 409 and (await header.json())["actual_version"] == 1
    fresh = await client.post("/v1/deployments/web/pause", json={"expected_version": 1})
    assert fresh.status == 200 and (await fresh.json())["version"] == 2
    assert await count(db) == 2


async def test_refused_commands_are_clear_problems_and_write_nothing(client, db):
    await submit(client, "web")
    await submit(client, "web", value="2")
    expectations = [
        ("POST", "/v1/deployments/web/rollback", {"to_revision": 9}, 422, "to_revision"),
        ("POST", "/v1/deployments/web/rollback", {"to_revision": 2}, 409, "to_revision"),
        ("POST", "/v1/deployments/web/resume", None, 409, None),
        ("POST", "/v1/deployments/nope/pause", None, 404, None),
        ("DELETE", "/v1/deployments/nope", None, 404, None),
    ]
    before = await count(db)
    for method, path, body, status, field in expectations:
        response = await client.request(method, path, json=body)
        problem = await response.json()
        assert (response.status, problem.get("field")) == (status, field), problem
        assert response.content_type == "application/problem+json"
    assert await count(db) == before
    assert (await client.post("/v1/deployments/web/pause", json={"reason": "incident"})).status == 200
    twice = await client.post("/v1/deployments/web/pause")
    assert twice.status == 409 and "already paused: incident" in (await twice.json())["detail"]
    assert (await client.delete("/v1/deployments/web?reason=retired")).status == 200
    for method, path in (("POST", "/v1/deployments/web/pause"), ("POST", "/v1/deployments/web/resume"),
                         ("DELETE", "/v1/deployments/web")):
        response = await client.request(method, path)
        assert response.status == 409 and "removed" in (await response.json())["detail"]
    assert await count(db) == before + 2


async def test_matched_targets_come_from_the_read_model_and_the_log_after_it(live, store, db):
    await register(live, "eu-1", region="eu")
    await register(live, "eu-2", region="eu")
    retired = await live.delete("/v1/targets/eu-2")
    await read(live, "/v1/targets", (await retired.json())["position"])
    # Stop the projector's view from moving on: register straight into the log, then deploy at once.
    late = records.NewEvent(uuid.uuid4(), "TargetRegistered", {"target": "eu-3", "labels": {"region": "eu"}})
    await store.append("target-eu-3", "no_stream", [late])
    body = await submit(live, "web", selector="region=eu")
    assert body["matched_targets"] == ["eu-1", "eu-3"]


async def test_rollback_records_a_new_revision_that_restores_manifests_and_selector(live):
    await register(live, "eu-1", region="eu")
    await register(live, "us-1", region="us")
    await submit(live, "web", selector="region=eu", value="one")
    await submit(live, "web", selector="region=us", value="two")
    response = await live.post("/v1/deployments/web/rollback", json={"to_revision": 1})
    body = await response.json()
    assert response.status == 201
    assert (body["revision"], body["rolled_back_to"], body["matched_targets"]) == (3, 1, ["eu-1"])
    state = await read(live, "/v1/deployments/web", body["position"])
    assert (state["current_revision"], state["selector"]) == (3, "region=eu")
    assert [(r["target"], r["desired_revision"]) for r in state["rollouts"]] == [("eu-1", 3)]


async def test_deployment_state_shows_rollouts_per_target_and_summary_counts(live, store):
    for name in ("a", "b", "c", "d"):
        await register(live, name, env="prod")
    await submit(live, "web", selector="env=prod")
    outcomes: list[tuple[str, dict[str, Any]]] = [
        ("ApplySucceeded", {"target": "a", "objects": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "web"}]}),
        ("ApplyFailed", {"target": "b", "error": "HTTP 503", "retryable": True}),
        ("ApplyFailed", {"target": "c", "error": "HTTP 422: bad field", "attempt": 3}),
    ]
    result = await store.append("rollout-web", "any", [
        records.NewEvent(uuid.uuid4(), kind, {"deployment": "web", "revision": 1, **data}) for kind, data in outcomes])
    state = await read(live, "/v1/deployments/web", result.positions[-1])
    assert state["summary"] == {"targets": 4, "pending": 1, "applying": 1, "progressing": 1,
                                "healthy": 0, "degraded": 0, "failed": 1, "paused": 0}
    by_target = {r["target"]: r for r in state["rollouts"]}
    assert (by_target["a"]["applied_revision"], by_target["a"]["objects_applied"]) == (1, 1)
    assert (by_target["c"]["last_error"], by_target["c"]["attempts"]) == ("HTTP 422: bad field", 3)
    paused = await live.post("/v1/deployments/web/pause", json={"reason": "freeze"})
    listed = await read(live, "/v1/deployments", (await paused.json())["position"])
    assert [(d["name"], d["paused"], d["summary"]["paused"]) for d in listed["deployments"]] == [("web", True, 4)]
    target = await read(live, "/v1/targets/a", (await paused.json())["position"])
    assert [(r["deployment"], r["applied_revision"], r["state"]) for r in target["rollouts"]] == [("web", 1, "paused")]
    removed = await live.delete("/v1/deployments/web")
    position = (await removed.json())["position"]
    assert (await read(live, "/v1/deployments", position))["deployments"] == []
    gone = await read(live, "/v1/deployments?include_removed=true", position)
    assert [(d["removed"], d["summary"]["targets"]) for d in gone["deployments"]] == [(True, 0)]
