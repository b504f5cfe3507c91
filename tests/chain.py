"""An independent check of the log's contract, straight from the rows (used by several tests)."""

from __future__ import annotations

import json

import asyncpg

from ledger import hashing


async def check_log(conn: asyncpg.Connection) -> int:
    """Assert positions 1..N dense, per-stream versions dense, and the hash chain intact; return N."""
    rows = await conn.fetch(
        "SELECT position, stream, version, id, type, data::text, metadata::text, recorded_at,"
        " prev_hash, hash FROM events ORDER BY position"
    )
    prev = hashing.GENESIS
    versions: dict[str, int] = {}
    for expected_position, r in enumerate(rows, start=1):
        assert r["position"] == expected_position, f"gap before position {r['position']}"
        assert r["version"] == versions.get(r["stream"], 0) + 1, f"version gap at {r['position']}"
        versions[r["stream"]] = r["version"]
        assert r["prev_hash"] == prev, f"prev_hash mismatch at {r['position']}"
        canonical = hashing.canonical(
            position=r["position"], stream=r["stream"], version=r["version"], id=r["id"],
            type=r["type"], data=json.loads(r["data"]), metadata=json.loads(r["metadata"]),
            recorded_at=r["recorded_at"],
        )
        assert hashing.chain(prev, canonical) == r["hash"], f"hash mismatch at {r['position']}"
        prev = r["hash"]
    return len(rows)
