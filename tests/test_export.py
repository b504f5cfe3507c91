"""``ledger export`` and ``ledger import``: byte-identical round trips, refusals that write nothing,
and the standard-library verifier from docs/export.md run against a real export."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from cli import main as cli_main
from ledger import hashing, records
from tests import chain, pgfixtures

DOCS = Path(__file__).resolve().parent.parent / "docs" / "export.md"


@pytest.fixture
async def empty_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A second, empty ledger database to import into."""
    async with pgfixtures.fresh_database(pg_admin_url) as url:
        yield url


async def seed(store) -> int:
    """A realistic little history: targets, revisions with manifests, outcomes; 2,300 events."""
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "wëb"},
                "data": {"ratio": "0.25", "note": "line\nbreak \"quoted\" ✓"}}
    meta = {"actor": "alice", "reason": "release", "correlation_id": "c-1"}
    for t in range(10):
        await store.append(f"target-t{t}", "any", [records.NewEvent(
            uuid.uuid4(), "TargetRegistered", {"target": f"t{t}", "labels": {"region": "eu"}}, meta)])
    for r in range(1, 11):
        await store.append("deployment-web", "any", [records.NewEvent(
            uuid.uuid4(), "RevisionSubmitted",
            {"deployment": "web", "revision": r, "manifests": [manifest], "selector": "region=eu",
             "matched_targets": [f"t{t}" for t in range(10)]}, meta)])
        await store.append("rollout-web", "any", [records.NewEvent(
            uuid.uuid4(), "ApplySucceeded",
            {"deployment": "web", "revision": r, "target": f"t{i % 10}", "duration_ms": i * 3 // 2,
             "attempt": 1}) for i in range(228)])
    return 10 + 10 * 229


async def run_cli(*argv: str) -> int:
    return await asyncio.to_thread(cli_main.main, list(argv))


def url_of(client) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_export_import_export_is_byte_identical(client, store, database_url, empty_url, tmp_path):
    total = await seed(store)
    first, second = tmp_path / "first.ndjson", tmp_path / "second.ndjson"
    assert await run_cli("export", "--url", url_of(client), "-o", str(first)) == 0
    assert len(first.read_bytes().splitlines()) == total
    assert await run_cli("import", str(first), "--database-url", empty_url) == 0
    assert await run_cli("export", "--database-url", empty_url, "-o", str(second)) == 0
    assert first.read_bytes() == second.read_bytes()
    columns = "position, id, hash, prev_hash, recorded_at, stream, version, type, data, metadata"
    source, target = await asyncpg.connect(database_url), await asyncpg.connect(empty_url)
    try:
        query = f"SELECT {columns} FROM events ORDER BY position"
        assert await source.fetch(query) == await target.fetch(query)
        assert await chain.check_log(target) == total
    finally:
        await source.close()
        await target.close()


async def test_http_and_database_exports_write_the_same_bytes(client, store, database_url, tmp_path):
    await seed(store)
    for fmt in ("ndjson", "cloudevents"):
        via_http, via_db = tmp_path / f"http.{fmt}", tmp_path / f"db.{fmt}"
        assert await run_cli("export", "--url", url_of(client), "--format", fmt, "--after", "5",
                             "--until", "1500", "-o", str(via_http)) == 0
        assert await run_cli("export", "--database-url", database_url, "--format", fmt, "--after", "5",
                             "--until", "1500", "-o", str(via_db)) == 0
        assert via_http.read_bytes() == via_db.read_bytes()
        positions = [json.loads(line)["position"] for line in via_http.read_bytes().splitlines()]
        assert positions == list(range(6, 1501))


async def test_cloudevents_export_has_one_cloudevent_per_line(client, store, tmp_path):
    await seed(store)
    out = tmp_path / "events.jsonl"
    assert await run_cli("export", "--url", url_of(client), "--format", "cloudevents", "--until", "12",
                         "-o", str(out)) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["position"] for e in lines] == list(range(1, 13))
    assert lines[10]["type"] == "dev.ledger.RevisionSubmitted" and lines[10]["actor"] == "alice"
    assert lines[10]["data"]["manifests"][0]["metadata"]["namespace"] == "wëb"


@pytest.fixture
async def export_lines(client, store, tmp_path) -> list[bytes]:
    await seed(store)
    path = tmp_path / "export.ndjson"
    assert await run_cli("export", "--url", url_of(client), "--until", "30", "-o", str(path)) == 0
    return path.read_bytes().splitlines(keepends=True)


async def refused(lines: list[bytes], empty_url: str, tmp_path: Path, capsys) -> str:
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b"".join(lines))
    assert await run_cli("import", str(path), "--database-url", empty_url) == 1
    conn = await asyncpg.connect(empty_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
    finally:
        await conn.close()
    return capsys.readouterr().err


async def test_import_refuses_a_tampered_line_naming_it_and_writes_nothing(export_lines, empty_url,
                                                                           tmp_path, capsys):
    lines = list(export_lines)
    assert b'"region=eu"' in lines[10]
    lines[10] = lines[10].replace(b'"region=eu"', b'"region=us"')
    err = await refused(lines, empty_url, tmp_path, capsys)
    assert "nothing written: line 11: hash" in err


async def test_import_refuses_a_missing_line(export_lines, empty_url, tmp_path, capsys):
    lines = export_lines[:4] + export_lines[5:]
    assert "line 5: expected position 5, found 6" in await refused(lines, empty_url, tmp_path, capsys)


async def test_import_refuses_a_broken_link(export_lines, empty_url, tmp_path, capsys):
    lines = list(export_lines)
    lines[6] = re.sub(rb'"prev_hash":"[0-9a-f]+"', b'"prev_hash":"' + b"1" * 64 + b'"', lines[6])
    assert "line 7: prev_hash" in await refused(lines, empty_url, tmp_path, capsys)


async def test_import_refuses_an_export_that_does_not_start_at_one(export_lines, empty_url, tmp_path,
                                                                   capsys):
    err = await refused(export_lines[3:], empty_url, tmp_path, capsys)
    assert "line 1: starts at position 4" in err


async def test_import_refuses_a_cloudevents_export(client, store, empty_url, tmp_path, capsys):
    await seed(store)
    path = tmp_path / "ce.jsonl"
    assert await run_cli("export", "--url", url_of(client), "--format", "cloudevents", "--until", "3",
                         "-o", str(path)) == 0
    err = await refused([path.read_bytes()], empty_url, tmp_path, capsys)
    assert "line 1: this is a CloudEvents export" in err


def crafted(lines: list[bytes], index: int, **changes) -> list[bytes]:
    """The export with line ``index``'s type or data changed and the hash chain recomputed from
    there on: a log whose chain verifies but that no append could have written."""
    out = list(lines[:index])
    prev = json.loads(lines[index - 1])["hash"] if index else hashing.GENESIS
    for number, raw in enumerate(lines[index:], start=index):
        line = json.loads(raw)
        if number == index:
            line["type"] = changes.get("type", line["type"])
            line["data"] = {**line["data"], **changes.get("data", {})}
        line["prev_hash"] = prev
        line["hash"] = prev = hashing.chain(prev, hashing.canonical(
            position=line["position"], stream=line["stream"], version=line["version"], id=line["id"],
            type=line["type"], data=line["data"], metadata=line["metadata"], recorded_at=line["recorded_at"]))
        out.append(json.dumps(line).encode() + b"\n")
    return out


@pytest.mark.parametrize(("changes", "named"), [
    ({"data": {"revision": 2**31}}, "position 11: RevisionSubmitted data at $.revision: Expected `int` <= 2147483647"),
    ({"data": {"matched_targets": ["t1", 7]}}, "position 11: RevisionSubmitted data at $.matched_targets[1]"),
    ({"type": "RevisionErased"}, "position 11: unknown event type 'RevisionErased'"),
], ids=["beyond-int32", "wrong-type", "unknown-type"])
async def test_import_refuses_an_event_no_append_could_write_naming_its_position_and_field(
        export_lines, empty_url, tmp_path, capsys, changes, named):
    lines = crafted(export_lines, 10, **changes)
    assert json.loads(lines[10])["position"] == 11 and json.loads(lines[12])["prev_hash"] == json.loads(lines[11])["hash"]
    err = await refused(lines, empty_url, tmp_path, capsys)
    assert f"nothing written: line 11: {named}" in err, err


async def test_import_refuses_a_ledger_that_is_not_empty(export_lines, database_url, tmp_path, capsys):
    path = tmp_path / "again.ndjson"
    path.write_bytes(b"".join(export_lines))
    assert await run_cli("import", str(path), "--database-url", database_url) == 1
    assert "already holds events" in capsys.readouterr().err


async def test_import_wakes_a_running_service_once(client, store, empty_url, tmp_path, settings):
    await seed(store)
    path = tmp_path / "export.ndjson"
    assert await run_cli("export", "--url", url_of(client), "-o", str(path)) == 0
    listener = await asyncpg.connect(empty_url)
    got: list[str] = []
    await listener.add_listener("ledger_events", lambda *args: got.append(args[-1]))
    try:
        assert await run_cli("import", str(path), "--database-url", empty_url) == 0
        async with asyncio.timeout(5):
            while not got:
                await asyncio.sleep(0.02)
        assert got == ["2300"]
    finally:
        await listener.close()


def docs_verifier() -> str:
    text = DOCS.read_text()
    marker = text.index("<!-- verifier: verify_export.py")
    start = text.index("```python\n", marker) + len("```python\n")
    return text[start:text.index("```", start)]


def run_docs_verifier(script: Path, export: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), str(export)], capture_output=True, text=True,
                          timeout=60)


async def test_the_verifier_in_the_docs_accepts_a_real_export_and_rejects_tampering(
        client, store, db, tmp_path):
    await seed(store)
    script = tmp_path / "verify_export.py"
    script.write_text(docs_verifier())
    export = tmp_path / "ledger.ndjson"
    assert await run_cli("export", "--url", url_of(client), "-o", str(export)) == 0
    result = await asyncio.to_thread(run_docs_verifier, script, export)
    head = await db.fetchval("SELECT hash FROM events WHERE position = 2300")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"OK through position 2300, head hash {head}"

    partial = tmp_path / "partial.ndjson"
    assert await run_cli("export", "--url", url_of(client), "--after", "100", "--until", "200",
                         "-o", str(partial)) == 0
    assert (await asyncio.to_thread(run_docs_verifier, script, partial)).returncode == 0

    lines = export.read_bytes().splitlines(keepends=True)
    assert b'"attempt": 1' in lines[41]
    lines[41] = lines[41].replace(b'"attempt": 1', b'"attempt": 2')
    tampered = tmp_path / "tampered.ndjson"
    tampered.write_bytes(b"".join(lines))
    result = await asyncio.to_thread(run_docs_verifier, script, tampered)
    assert result.returncode == 1
    assert result.stderr.strip() == "line 42: position 42 does not hash to its hash"
