"""The export feed: CloudEvents 1.0 batches, cursor paging, caching of full pages, filters."""

from __future__ import annotations

import json
import uuid

from api import cloudevents
from ledger import records


def registered(target: str, actor: str | None = "alice") -> records.NewEvent:
    meta = {"actor": actor, "reason": "onboarding"} if actor else {}
    return records.NewEvent(uuid.uuid4(), "TargetRegistered",
                            {"target": target, "labels": {"region": "eu", "tier": "édge"}}, meta)


def paused(name: str) -> records.NewEvent:
    return records.NewEvent(uuid.uuid4(), "DeploymentPaused", {"deployment": name, "reason": "freeze"})


async def seed(store, n_targets: int = 3, n_paused: int = 2) -> None:
    for i in range(n_targets):
        await store.append(f"target-t{i}", "any", [registered(f"t{i}")])
    for i in range(n_paused):
        await store.append(f"deployment-d{i}", "any", [paused(f"d{i}")])


async def test_feed_page_is_a_cloudevents_batch_with_the_ledger_extensions(client, store, db):
    await seed(store, 2, 1)
    resp = await client.get("/v1/feed")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == cloudevents.BATCH_CONTENT_TYPE
    batch = await resp.json(content_type=None)
    rows = await db.fetch("SELECT position, id, data::text, hash, prev_hash, recorded_at, version, stream"
                          " FROM events ORDER BY position")
    assert [e["position"] for e in batch] == [1, 2, 3]
    first = batch[0]
    assert first == {
        "specversion": "1.0",
        "id": str(rows[0]["id"]),
        "source": "urn:deployment-ledger",
        "type": "dev.ledger.TargetRegistered",
        "subject": "target-t0",
        "time": rows[0]["recorded_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "datacontenttype": "application/json",
        "data": {"target": "t0", "labels": {"region": "eu", "tier": "édge"}},
        "position": 1,
        "streamversion": 1,
        "hash": rows[0]["hash"],
        "prevhash": "0" * 64,
        "actor": "alice",
        "reason": "onboarding",
    }
    assert batch[2]["type"] == "dev.ledger.DeploymentPaused" and "actor" not in batch[2]
    assert batch[2]["prevhash"] == rows[1]["hash"]
    assert all(k.isalnum() and k.islower() for e in batch for k in e)


async def test_feed_passes_stored_data_text_through_unchanged(client, store, db):
    await seed(store, 1, 0)
    raw = await (await client.get("/v1/feed")).read()
    stored = await db.fetchval("SELECT data::text FROM events WHERE position = 1")
    assert b'"data":' + stored.encode() + b"," in raw


async def test_paging_follows_link_next_through_the_whole_log(client, store):
    await seed(store, 5, 2)
    url, seen = "/v1/feed?limit=3", list[int]()
    for _ in range(10):
        resp = await client.get(url)
        page = await resp.json(content_type=None)
        seen.extend(e["position"] for e in page)
        url = resp.links["next"]["url"].path_qs
        if len(page) < 3:
            break
    assert seen == list(range(1, 8))
    assert url == "/v1/feed?limit=3&after=7"


async def test_a_full_page_is_immutable_with_a_strong_etag_and_answers_304(client, store):
    await seed(store, 4, 0)
    resp = await client.get("/v1/feed?after=1&limit=2")
    etag = resp.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # A shared cache may keep the page ("public"), but only for the same Authorization: without
    # Vary on it a CDN would hand the log to a request that carries no token at all.
    assert {v.strip() for v in resp.headers["Vary"].split(",")} == {"Accept", "Authorization"}
    await seed(store, 1, 1)
    again = await client.get("/v1/feed?after=1&limit=2", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.headers["ETag"] == etag
    other = await client.get("/v1/feed?after=1&limit=2", headers={"If-None-Match": '"nope"'})
    assert other.status == 200 and [e["position"] for e in await other.json(content_type=None)] == [2, 3]


async def test_the_head_page_is_not_cached_and_links_to_its_own_cursor(client, store):
    await seed(store, 2, 0)
    resp = await client.get("/v1/feed?after=1&limit=5")
    assert resp.headers["Cache-Control"] == "no-cache"
    assert "ETag" not in resp.headers
    assert resp.links["next"]["url"].query["after"] == "2"
    empty = await client.get("/v1/feed?after=2")
    assert await empty.json(content_type=None) == []
    assert empty.links["next"]["url"].query["after"] == "2"


async def test_until_closes_the_range(client, store):
    await seed(store, 4, 0)
    resp = await client.get("/v1/feed?until=3&limit=5")
    assert [e["position"] for e in await resp.json(content_type=None)] == [1, 2, 3]
    assert "next" not in resp.links


async def test_filters_by_type_and_category(client, store):
    await seed(store, 2, 2)
    by_type = await client.get("/v1/feed?types=DeploymentPaused")
    assert [e["subject"] for e in await by_type.json(content_type=None)] == ["deployment-d0", "deployment-d1"]
    by_category = await client.get("/v1/feed?category=target&limit=1&after=1")
    assert [e["position"] for e in await by_category.json(content_type=None)] == [2]
    assert by_category.links["next"]["url"].query["category"] == "target"


async def test_bad_parameters_are_problems_naming_the_field(client):
    for query, field in (("types=Nope", "types"), ("category=nope", "category"),
                         ("limit=0", "limit"), ("after=x", "after")):
        resp = await client.get(f"/v1/feed?{query}")
        assert resp.status == 422, query
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        assert json.loads(await resp.text())["field"] == field
