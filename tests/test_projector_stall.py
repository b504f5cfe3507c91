"""An event the projector cannot fold and store stalls it visibly, and is never skipped.

The event is put straight into the log with SQL (hash chain kept), as only a log written around
the API could hold it. Here it is a valid RevisionSubmitted that the read model refuses (a check
constraint the test adds on read_revisions, standing for any table the fold cannot write): the
projector stops before it, /readyz answers 503 naming the projector, the position and the reason,
/metrics shows the stall, later events wait behind it, and once the table is repaired the
projector continues by itself from exactly that event.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import asyncpg
import pytest

from ledger import events, hashing, writer
from ledger import settings as settings_mod
from projections import tables
from tests.applier_support import append, client, eventually  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return settings.replace(projector=True)


async def insert_raw(db: asyncpg.Connection, stream: str, event: events.Event) -> int:
    """Append ``event`` as a row written by hand at the head of the log, hash chain included."""
    return await insert_raw_data(db, stream, events.type_name(event), events.to_data(event))


async def insert_raw_data(db: asyncpg.Connection, stream: str, type_: str, data: dict) -> int:
    """A row of any type and data written by hand at the head of the log, hash chain included."""
    head = await db.fetchrow("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
    position, prev = (head["position"] + 1, head["hash"]) if head else (1, hashing.GENESIS)
    version = await db.fetchval("SELECT coalesce(max(version), 0) + 1 FROM events WHERE stream = $1", stream)
    event_id, metadata = uuid.uuid4(), {"actor": "test"}
    recorded_at = dt.datetime.now(dt.UTC)
    digest = hashing.chain(prev, hashing.canonical(
        position=position, stream=stream, version=version, id=event_id, type=type_,
        data=data, metadata=metadata, recorded_at=recorded_at))
    await db.execute(
        "INSERT INTO events (position, stream, version, id, type, data, metadata, recorded_at, prev_hash, hash)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10)",
        position, stream, version, event_id, type_, json.dumps(data), json.dumps(metadata),
        recorded_at, prev, digest)
    await db.execute("SELECT pg_notify($1, $2)", writer.NOTIFY_CHANNEL, str(position))
    return position


async def test_an_event_that_cannot_be_stored_stalls_the_projector_visibly_and_is_never_skipped(
        client, store, db):  # noqa: F811
    first = await append(store, events.TargetRegistered(target="eu-1", labels={"region": "eu"}, server="https://eu-1"))
    await eventually(lambda: _checkpoint_at_least(db, first), what="projector caught up")
    await db.execute("ALTER TABLE read_revisions ADD CONSTRAINT test_refuses CHECK (message <> 'refused')")
    poison = await insert_raw(db, "deployment-web", events.RevisionSubmitted(
        deployment="web", revision=1, manifests=[], selector="region=eu", message="refused"))
    later = await append(store, events.TargetRegistered(target="eu-2", labels={"region": "eu"},
                                                        server="https://eu-2"))
    assert later == poison + 1

    def stalled_at_poison():
        return stalled_at(client, poison)

    named = await eventually(stalled_at_poison, timeout=30, what="/readyz names the stalled projector")
    assert named["status"] == "stalled"
    assert f"position {poison}" in named["reason"] and "test_refuses" in named["reason"]
    assert named["checkpoint"] == poison - 1

    metrics = _samples(await (await client.get("/metrics")).text())
    assert metrics["ledger_projector_stalled"] == 1
    assert metrics["ledger_projector_stalled_at"] == poison
    assert metrics["ledger_projector_position"] == poison - 1

    # Retried, never skipped: the read models stay before the event, the later event waits behind it.
    await asyncio.sleep(1.5)
    assert await tables.checkpoint(db) == poison - 1
    assert await db.fetchval("SELECT count(*) FROM read_targets WHERE name = 'eu-2'") == 0
    assert await stalled_at_poison() is not None

    # Repaired: the projector continues by itself from exactly that event.
    await db.execute("ALTER TABLE read_revisions DROP CONSTRAINT test_refuses")
    await eventually(lambda: _checkpoint_at_least(db, later), timeout=30, what="projector continued")
    assert await db.fetchval("SELECT message FROM read_revisions WHERE deployment = 'web' AND revision = 1") == "refused"
    assert await db.fetchval("SELECT count(*) FROM read_targets WHERE name = 'eu-2'") == 1
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    metrics = _samples(await (await client.get("/metrics")).text())
    assert metrics["ledger_projector_stalled"] == 0
    assert metrics["ledger_projector_position"] == later


async def stalled_at(http, position: int) -> dict | None:
    """What /readyz says of the projector when it is stalled at ``position``, else None."""
    ready = await http.get("/readyz")
    if ready.status != 503:
        return None
    found = (await ready.json())["not_ready"].get("projector")
    return found if found and found.get("position") == position else None


async def _checkpoint_at_least(db: asyncpg.Connection, position: int) -> bool:
    return await tables.checkpoint(db) >= position


def _samples(text: str) -> dict[str, float]:
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line and not line.startswith("#") and "{" not in line}



async def test_an_event_that_does_not_decode_stalls_the_projector_and_is_never_passed_by(
        client, store, db):  # noqa: F811
    # Before: every fold skipped it silently, so the read models went on as if it were not in the log.
    first = await append(store, events.TargetRegistered(target="eu-1", labels={"region": "eu"}, server="https://eu-1"))
    await eventually(lambda: _checkpoint_at_least(db, first), what="projector caught up")
    poison = await insert_raw_data(db, "deployment-web", "RevisionSubmitted",
                                   {"deployment": "web", "revision": 2147483648, "manifests": [], "selector": ""})
    later = await append(store, events.TargetRegistered(target="eu-2", labels={"region": "eu"},
                                                        server="https://eu-2"))

    def stalled_at_poison():
        return stalled_at(client, poison)

    named = await eventually(stalled_at_poison, timeout=30, what="/readyz names the stalled projector")
    assert named["status"] == "stalled" and "$.revision" in named["reason"], named
    assert await tables.checkpoint(db) == poison - 1
    assert await db.fetchval("SELECT count(*) FROM read_targets WHERE name = 'eu-2'") == 0
    assert later == poison + 1
