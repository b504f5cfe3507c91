"""Targets over HTTP: register, update, retire, list by selector; every refusal writes nothing."""

from __future__ import annotations

from api import keys
from tests import credfiles
from tests.projected import live_client, read, register  # noqa: F401 - fixture


def allow(client, name="eu-1"):
    """An anonymous credential named ``name`` in the operator's file; returns its server."""
    return credfiles.add_anonymous(client.app[keys.SETTINGS], name)


async def test_put_registers_then_updates_and_an_unchanged_put_records_nothing(client, db):
    allow(client)
    body = {"labels": {"region": "eu"}, "server": "https://eu-1:6443", "credentials": "eu-1"}
    first = await client.put("/v1/targets/eu-1", json=body)
    assert first.status == 201
    assert await first.json() == {"target": "eu-1", "stream": "target-eu-1", "event": "TargetRegistered",
                                  "position": 1, "version": 1, "changed": True}
    assert first.headers["ETag"] == '"1"'
    same = await client.put("/v1/targets/eu-1", json=body)
    assert same.status == 200 and (await same.json())["changed"] is False
    changed = await client.put("/v1/targets/eu-1", json={**body, "labels": {"region": "eu", "tier": "edge"}})
    assert changed.status == 200
    assert (await changed.json())["event"] == "TargetUpdated"
    rows = await db.fetch("SELECT type, data->'labels' AS labels FROM events ORDER BY position")
    assert [r["type"] for r in rows] == ["TargetRegistered", "TargetUpdated"]


async def test_registering_twice_with_no_stream_is_409_naming_both_versions(client, db):
    await register(client, "eu-1")
    again = await client.put("/v1/targets/eu-1", json={"credentials": "eu-1", "expected_version": "no_stream"})
    assert again.status == 409
    problem = await again.json()
    assert (problem["expected_version"], problem["actual_version"]) == ("no_stream", 1)
    stale = await client.put("/v1/targets/eu-1", json={"credentials": "eu-1"}, headers={"If-Match": '"7"'})
    assert stale.status == 409 and (await stale.json())["actual_version"] == 1
    assert await db.fetchval("SELECT count(*) FROM events") == 1


async def test_a_retired_target_refuses_commands_and_writes_nothing(client, db):
    await register(client, "eu-1")
    retired = await client.delete("/v1/targets/eu-1")
    assert retired.status == 200 and (await retired.json())["event"] == "TargetRetired"
    for response in (await client.delete("/v1/targets/eu-1"),
                     await client.put("/v1/targets/eu-1", json={"credentials": "eu-1"})):
        assert response.status == 409
        assert response.content_type == "application/problem+json"
        assert "retired" in (await response.json())["detail"]
    missing = await client.delete("/v1/targets/nope")
    assert missing.status == 404
    assert await db.fetchval("SELECT count(*) FROM events") == 2


async def test_bad_target_input_is_422_naming_the_field(client, db):
    allow(client)
    cases = [
        ("/v1/targets/eu-1", {"labels": {"bad key": "x"}, "credentials": "eu-1"}, 'labels["bad key"]'),
        ("/v1/targets/eu-1", {"labels": {"a": "-x-"}, "credentials": "eu-1"}, "labels.a"),
        ("/v1/targets/eu-1", {"labels": {}}, "credentials"),
        ("/v1/targets/Bad_Name", {"credentials": "eu-1"}, "name"),
        ("/v1/targets/eu-1", {"credentials": "eu-1", "colour": "red"}, "$"),
    ]
    for path, body, field in cases:
        response = await client.put(path, json=body)
        assert response.status == 422, (body, await response.text())
        assert (await response.json())["field"] == field
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_an_idempotent_retry_returns_the_first_result(client, db):
    allow(client)
    headers = {"Idempotency-Key": "reg-eu-1"}
    first = await client.put("/v1/targets/eu-1", json={"credentials": "eu-1"}, headers=headers)
    retry = await client.put("/v1/targets/eu-1", json={"credentials": "eu-1"}, headers=headers)
    assert first.status == retry.status == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert await retry.json() == await first.json()
    assert await db.fetchval("SELECT count(*) FROM events") == 1


async def test_list_filters_by_selector_and_leaves_retired_targets_out(live):
    await register(live, "eu-1", region="eu", tier="edge")
    await register(live, "eu-2", region="eu")
    await register(live, "us-1", region="us", tier="edge")
    retired = await live.delete("/v1/targets/eu-2")
    position = (await retired.json())["position"]
    listed = await read(live, "/v1/targets?selector=region%3Deu", position)
    assert [t["name"] for t in listed["targets"]] == ["eu-1"]
    assert listed["as_of"] == 4
    edge = await read(live, "/v1/targets?selector=tier,region+notin+(us)", position)
    assert [t["name"] for t in edge["targets"]] == ["eu-1"]
    everything = await read(live, "/v1/targets?include_retired=true", position)
    assert [(t["name"], t["retired"]) for t in everything["targets"]] == [
        ("eu-1", False), ("eu-2", True), ("us-1", False)]
    one = await read(live, "/v1/targets/eu-1", position)
    assert one["labels"] == {"region": "eu", "tier": "edge"} and one["rollouts"] == []


async def test_a_selector_syntax_error_is_422_naming_selector_and_position(client):
    response = await client.get("/v1/targets", params={"selector": "region in (eu"})
    assert response.status == 422
    problem = await response.json()
    assert (problem["field"], problem["position"]) == ("selector", 13)


async def test_reading_a_position_the_projection_never_reaches_is_504(aiohttp_client, settings):
    from api import app as app_mod

    client = await aiohttp_client(app_mod.make_app(settings.replace(read_wait_timeout=0.2)))
    await register(client, "eu-1")
    response = await client.get("/v1/targets?min_position=1")
    assert response.status == 504
    problem = await response.json()
    assert (problem["field"], problem["position"], problem["min_position"]) == ("min_position", 0, 1)
