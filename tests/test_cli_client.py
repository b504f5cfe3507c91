"""The ``ledger`` client commands against a real server: tables, --json, errors, and rebuild."""

from __future__ import annotations

import asyncio
import json

from api import keys
from cli import main as cli_main
from tests import credfiles
from tests.projected import CONFIG_MAP, live_client  # noqa: F401 - fixture


async def ledger(capsys, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli_main.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_a_deploy_session_reads_as_tables_and_json(live, capsys, tmp_path):
    url = str(live.make_url("")).rstrip("/")
    common = ["--url", url, "--actor", "dana"]
    for name, region in (("eu-1", "eu"), ("us-1", "us")):
        credfiles.add_anonymous(live.app[keys.SETTINGS], name)
        code, out, _ = await ledger(capsys, "targets", "add", name, "--credentials", name,
                                    "--server", f"https://{name}:6443", "-l", f"region={region}", *common)
        assert code == 0 and f"target {name}: TargetRegistered" in out
    code, out, _ = await ledger(capsys, "targets", "list", "-l", "region=eu", *common)
    assert [line.split() for line in out.splitlines()] == [
        ["NAME", "LABELS", "CREDENTIALS", "STATUS", "VERSION"],
        ["eu-1", "region=eu", "eu-1", "active", "1"],
    ]
    first, second = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    first.write_text(CONFIG_MAP.format(1))
    second.write_text(CONFIG_MAP.format(2))
    code, out, _ = await ledger(capsys, "deploy", "web", "-f", str(first), "--selector", "region=eu",
                                "-m", "first", *common)
    assert code == 0 and out.splitlines() == ["web: revision 1 submitted (position 3)", "matched 1 target(s): eu-1"]
    code, out, _ = await ledger(capsys, "deploy", "web", "-f", str(second), "-m", "second", "--json", *common)
    assert json.loads(out)["revision"] == 2
    code, out, _ = await ledger(capsys, "history", "web", *common)
    lines = out.splitlines()
    assert lines[0].split() == ["REV", "RECORDED", "AT", "ACTOR", "SELECTOR", "TARGETS", "RESTORES", "MESSAGE"]
    assert lines[1].split()[:2] == ["1", lines[1].split()[1]] and "admin-env" in lines[1] and "first" in lines[1]
    assert lines[2].startswith("* 2") and "second" in lines[2]
    code, out, _ = await ledger(capsys, "diff", "web", "1", "2", *common)
    assert "-  k: '1'" in out and "+  k: '2'" in out
    code, out, _ = await ledger(capsys, "rollback", "web", "--to", "1", *common)
    assert out.splitlines()[0] == "web: revision 3 rolls back to 1 (position 5)"
    code, out, _ = await ledger(capsys, "pause", "web", "--reason", "freeze", *common)
    assert out.strip() == "web: paused (position 6)"
    code, out, _ = await ledger(capsys, "status", "web", *common)
    assert out.splitlines()[:2] == ["web: revision 3, selector region=eu (paused: freeze)",
                                    "0/1 applied, 0 failed, 0 pending"]
    assert out.splitlines()[-1].split()[:4] == ["eu-1", "3", "-", "paused"]
    code, out, _ = await ledger(capsys, "status", *common)
    assert out.splitlines()[1].split()[:4] == ["web", "3", "region=eu", "paused"]
    code, out, _ = await ledger(capsys, "state", "--at", "3", "--json", *common)
    assert [d["current_revision"] for d in json.loads(out)["deployments"]] == [1]


async def test_errors_print_the_problem_detail_and_exit_non_zero(live, capsys, tmp_path):
    url = str(live.make_url("")).rstrip("/")
    code, _, err = await ledger(capsys, "pause", "web", "--url", url)
    assert code == 1 and err.strip() == "ledger: 404 Not found: deployment web has no revisions"
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad\n")
    code, _, err = await ledger(capsys, "deploy", "web", "-f", str(bad), "--selector", "", "--url", url)
    assert code == 1 and "manifests[0].metadata.name" in err
    code, _, err = await ledger(capsys, "targets", "list", "--url", "http://127.0.0.1:9")
    assert code == 1 and "cannot reach the ledger at http://127.0.0.1:9" in err


async def test_rebuild_refills_the_read_models_and_refuses_beside_a_live_projector(live, capsys, settings, db):
    url = str(live.make_url("")).rstrip("/")
    credfiles.add_anonymous(live.app[keys.SETTINGS], "eu-1")
    await ledger(capsys, "targets", "add", "eu-1", "--credentials", "eu-1", "--url", url)
    db_flag = ["--database-url", settings.database_url]
    code, _, err = await ledger(capsys, "rebuild", *db_flag)
    assert code == 1 and "a projector is running" in err
    await live.close()
    code, out, _ = await ledger(capsys, "rebuild", *db_flag)
    assert code == 0 and out.startswith("rebuilt the read models from 1 events")
    assert await db.fetchval("SELECT name FROM read_targets") == "eu-1"
