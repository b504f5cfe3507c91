"""HTTP submission and reads: every status the contract names, and that no error writes anything."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ledger import errors, records
from tests import chain, credfiles
from tests.fleetdata import manifest

PROBLEM = "application/problem+json"


def target_event(name: str = "eu-1", **extra):
    return {"type": "TargetRegistered",
            "data": {"target": name, "labels": {"region": "eu"}, "credentials": "cluster", **extra}}


def update_event(name: str = "eu-1", region: str = "us"):
    return {"type": "TargetUpdated", "data": {"target": name, "labels": {"region": region}, "credentials": "cluster"}}


@pytest.fixture(autouse=True)
def cluster_credential(settings):
    """The credential every target here names (the rules refuse a target without one)."""
    credfiles.add_anonymous(settings, "cluster")


async def post(client, stream, body, **kw):
    return await client.post(f"/v1/streams/{stream}/events", json=body, **kw)


async def count(db) -> int:
    return await db.fetchval("SELECT count(*) FROM events")


async def test_submit_and_read_back(client, db):
    resp = await post(client, "target-eu-1", {"events": [target_event()], "expected_version": "no_stream"},
                      headers={"X-Actor": "alice"})
    assert resp.status == 201
    assert await resp.json() == {"stream": "target-eu-1", "positions": [1], "first_version": 1, "last_version": 1}
    read = await (await client.get("/v1/streams/target-eu-1")).json()
    event = read["events"][0]
    assert event["type"] == "TargetRegistered" and event["data"]["labels"] == {"region": "eu"}
    assert event["metadata"]["actor"] == "admin-env"  # the token's name, never the header's claim
    assert event["metadata"]["on_behalf_of"] == "alice"
    assert (event["position"], event["version"]) == (1, 1)
    page = await (await client.get("/v1/events?after=0&limit=10")).json()
    assert [e["position"] for e in page["events"]] == [1] and page["next_after"] == 1
    assert await chain.check_log(db) == 1


async def test_client_supplied_id_makes_retries_idempotent(client, db):
    body = {"events": [{**target_event(), "id": str(uuid.uuid4())}]}
    first = await post(client, "target-eu-1", body)
    second = await post(client, "target-eu-1", body)
    assert first.status == second.status == 201
    assert (await first.json())["positions"] == (await second.json())["positions"]
    assert second.headers["Idempotent-Replayed"] == "true"
    changed = {"events": [{**body["events"][0], "data": {**body["events"][0]["data"], "labels": {"region": "us"}}}]}
    conflict = await post(client, "target-eu-1", changed)
    assert conflict.status == 409 and conflict.content_type == PROBLEM
    assert (await conflict.json())["position"] == 1
    assert await count(db) == 1


async def test_idempotency_key_header_makes_retries_idempotent(client, db):
    body = {"events": [target_event()]}
    first = await post(client, "target-eu-1", body, headers={"Idempotency-Key": "k-1"})
    second = await post(client, "target-eu-1", body, headers={"Idempotency-Key": "k-1"})
    third = await post(client, "target-eu-1", {"events": [update_event()]}, headers={"Idempotency-Key": "k-2"})
    assert (await first.json())["positions"] == (await second.json())["positions"] == [1]
    assert (await third.json())["positions"] == [2]
    assert await count(db) == 2


async def test_wrong_expected_version_is_409_naming_both_versions(client, db):
    await post(client, "target-eu-1", {"events": [target_event()]})
    resp = await post(client, "target-eu-1", {"events": [target_event()], "expected_version": 5})
    assert resp.status == 409 and resp.content_type == PROBLEM
    body = await resp.json()
    assert (body["expected_version"], body["actual_version"]) == (5, 1)
    assert "expected 5" in body["detail"] and "version 1" in body["detail"]
    via_header = await post(client, "target-eu-1", {"events": [target_event()]}, headers={"If-Match": '"0"'})
    assert via_header.status == 409
    ok = await post(client, "target-eu-1", {"events": [update_event()]}, headers={"If-Match": '"1"'})
    assert ok.status == 201
    assert await count(db) == 2


async def test_malformed_json_is_400(client, db):
    resp = await client.post("/v1/streams/target-a/events", data=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400 and resp.content_type == PROBLEM
    assert (await resp.json())["field"] == "body"
    assert await count(db) == 0


async def test_body_over_the_limit_is_413(client, db):
    big = {"events": [target_event(server="https://" + "x" * (1 << 20))]}
    resp = await post(client, "target-a", big)
    assert resp.status == 413 and resp.content_type == PROBLEM
    assert await count(db) == 0


async def test_not_json_is_415(client, db):
    resp = await client.post("/v1/streams/target-a/events", data=b"a=b",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415 and resp.content_type == PROBLEM
    assert "Content-Type" in (await resp.json())["detail"]
    assert await count(db) == 0


@pytest.mark.parametrize(
    ("stream", "event", "field", "reason"),
    [
        ("target-eu-1", {"type": "Nope", "data": {}}, "$.events[0].type", "unknown event type"),
        ("target-eu-1", {"type": "TargetRegistered", "data": {}}, "$.events[0].data", "missing required field `target`"),
        ("target-eu-1", {"type": "TargetRegistered", "data": {"target": 7}}, "$.events[0].data.target", "Expected `str`"),
        ("target-eu-1", {"type": "TargetRegistered", "data": {"target": "eu-1", "colour": "red"}},
         "$.events[0].data", "unknown field `colour`"),
        ("target-eu-1", {"type": "TargetRegistered", "data": {"target": "eu-2"}}, "$.events[0].data.target",
         "stream id"),
        ("target-eu-1", {"type": "DeploymentPaused", "data": {"deployment": "eu-1"}}, "$.events[0].type",
         "deployment-* stream"),
        ("Target_EU", {"type": "TargetRegistered", "data": {"target": "x"}}, "stream", "<category>-<id>"),
        ("widget-a", {"type": "TargetRegistered", "data": {"target": "a"}}, "stream", "unknown category"),
        ("target-eu-1", {"type": "TargetRegistered", "data": {"target": "eu-1"}, "metadata": {"actor": 1}},
         "$.events[0].metadata.actor", "Expected `str | null`"),
        ("target-eu-1", {"type": "TargetRegistered", "data": {"target": "eu-1", "server": "a\u0000b"}},
         "$.events[0].data.server", "NUL"),
    ],
)
async def test_invalid_events_are_422_naming_the_field(client, db, stream, event, field, reason):
    resp = await post(client, stream, {"events": [target_event(), event] if stream == "target-eu-1" else [event]})
    assert resp.status == 422 and resp.content_type == PROBLEM
    body = await resp.json()
    wanted = field.replace("events[0]", "events[1]") if stream == "target-eu-1" else field
    assert body["field"] == wanted, body
    assert reason in body["detail"], body
    assert await count(db) == 0


async def test_bad_envelope_and_query_values_are_422(client, db):
    for body, field in [
        ({"events": []}, "$.events"),
        ({"events": [target_event()], "expected_version": "maybe"}, "$.expected_version"),
        ({"events": [target_event()], "extra": 1}, "$"),
    ]:
        resp = await post(client, "target-eu-1", body)
        assert resp.status == 422, body
        assert (await resp.json())["field"] == field
    resp = await client.get("/v1/events?limit=0")
    assert resp.status == 422 and (await resp.json())["field"] == "limit"
    resp = await client.get("/v1/events?types=Nope")
    assert resp.status == 422 and (await resp.json())["field"] == "types"
    assert await count(db) == 0


async def test_an_unknown_category_is_refused_as_the_feed_refuses_it(client):
    """A misspelt category must not read as an empty log (the feed and SSE already say 422)."""
    for path in ("/v1/events?category=deploymnet", "/v1/events?category=target,nope"):
        resp = await client.get(path)
        assert resp.status == 422 and resp.content_type == PROBLEM, path
        body = await resp.json()
        assert body["field"] == "category" and "known: deployment" in body["detail"]


async def test_unknown_stream_is_404_and_unknown_route_is_problem(client):
    resp = await client.get("/v1/streams/target-missing")
    assert resp.status == 404 and resp.content_type == PROBLEM
    resp = await client.get("/v1/nothing-here")
    assert resp.status == 404 and resp.content_type == PROBLEM
    resp = await client.delete("/v1/streams/target-a/events")
    assert resp.status == 405 and resp.content_type == PROBLEM


async def test_stream_paging_and_global_filters(client):
    deployment_events = [
        {"type": "RevisionSubmitted", "data": {"deployment": "d", "revision": 1, "selector": "",
                                               "manifests": [manifest()]}},
        {"type": "DeploymentPaused", "data": {"deployment": "d"}},
        {"type": "DeploymentResumed", "data": {"deployment": "d"}},
    ]
    for i, deployment_event in enumerate(deployment_events):
        await post(client, "target-a", {"events": [update_event("a", f"r{i}") if i else target_event("a")]})
        await post(client, "deployment-d", {"events": [deployment_event]})
    page = await (await client.get("/v1/streams/target-a?from_version=2&limit=1")).json()
    assert [e["version"] for e in page["events"]] == [2] and page["next_from_version"] == 3
    deployments = await (await client.get("/v1/events?category=deployment")).json()
    assert [e["position"] for e in deployments["events"]] == [2, 4, 6]
    typed = await (await client.get("/v1/events?types=TargetUpdated&after=1")).json()
    assert [e["position"] for e in typed["events"]] == [3, 5]


async def test_health_and_readiness(client, store):
    await asyncio.wait_for(store.notifier.connected.wait(), 5)
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["checks"]["database"] == "ok"


async def test_metrics_count_appends(client, store):
    await post(client, "target-a", {"events": [target_event("a"), update_event("a")]})
    # A stale client is refused before the store (the write path checks the version it loaded); a
    # race the store loses is what the store counts as rejected.
    stale = await post(client, "target-a", {"events": [update_event("a", "eu")], "expected_version": 0})
    assert stale.status == 409
    with pytest.raises(errors.WrongExpectedVersion):
        await store.append("target-a", "no_stream", [records.NewEvent(uuid.uuid4(), "TargetRetired", {"target": "a"})])
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    assert "ledger_events_appended_total 2.0" in text
    assert "ledger_append_rejected_total 1.0" in text
