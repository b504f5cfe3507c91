"""The ``ledger`` client commands against a real server: tables, --json, errors, and rebuild."""

from __future__ import annotations

import asyncio
import json
import uuid

from api import keys
from cli import exits
from cli import main as cli_main
from ledger import records
from tests import cli_support, credfiles
from tests.projected import CONFIG_MAP, live_client, manifests  # noqa: F401 - fixture


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
                                    "0/1 healthy, 0 progressing, 0 degraded, 0 failed, 0 pending"]
    assert out.splitlines()[-1].split()[:4] == ["eu-1", "3", "-", "paused"]
    code, out, _ = await ledger(capsys, "status", *common)
    assert out.splitlines()[1].split()[:4] == ["web", "3", "region=eu", "paused"]
    code, out, _ = await ledger(capsys, "state", "--at", "3", "--json", *common)
    assert [d["current_revision"] for d in json.loads(out)["deployments"]] == [1]


async def test_errors_print_the_problem_detail_and_exit_non_zero(live, capsys, tmp_path):
    url = str(live.make_url("")).rstrip("/")
    code, _, err = await ledger(capsys, "pause", "web", "--url", url)
    assert code == exits.Code.NOT_FOUND and err.strip() == "ledger: 404 Not found: deployment web has no revisions"
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad\n")
    code, _, err = await ledger(capsys, "deploy", "web", "-f", str(bad), "--selector", "", "--url", url)
    assert code == exits.Code.USAGE and "manifests[0].metadata.name" in err
    code, _, err = await ledger(capsys, "targets", "list", "--url", "http://127.0.0.1:9")
    assert code == exits.Code.UNREACHABLE and "cannot reach the ledger at http://127.0.0.1:9" in err


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


async def add_target(live, capsys, name: str, *extra: str) -> int:
    credfiles.add_anonymous(live.app[keys.SETTINGS], name)
    url = str(live.make_url("")).rstrip("/")
    code, _, err = await ledger(capsys, "targets", "add", name, "--credentials", name, *extra, "--url", url)
    assert code == 0, err
    return code


async def test_adding_an_existing_target_is_a_conflict_naming_it_and_changes_nothing(live, capsys):
    url = str(live.make_url("")).rstrip("/")
    await add_target(live, capsys, "eu-1", "-l", "region=eu", "-l", "tier=prod")
    code, out, err = await ledger(capsys, "targets", "add", "eu-1", "--credentials", "eu-1",
                                  "-l", "region=us", "--url", url)
    assert code == exits.Code.CONFLICT and out == ""
    assert err.strip() == ("ledger: target eu-1 already exists (version 1); "
                           "change it with 'ledger targets update eu-1'")
    code, out, _ = await ledger(capsys, "targets", "list", "--json", "--url", url)
    assert [(t["labels"], t["version"]) for t in json.loads(out)["targets"]] == [
        ({"region": "eu", "tier": "prod"}, 1)]


async def test_adding_a_retired_target_says_it_was_retired_not_to_update_it(live, capsys):
    # Found walking the CLI: the answer sent the user to 'targets update', which then refused too.
    url = str(live.make_url("")).rstrip("/")
    await add_target(live, capsys, "eu-1", "-l", "region=eu")
    code, _, err = await ledger(capsys, "targets", "retire", "eu-1", "--url", url)
    assert code == 0, err
    code, out, err = await ledger(capsys, "targets", "add", "eu-1", "--credentials", "eu-1", "--url", url)
    assert code == exits.Code.CONFLICT and out == ""
    assert err.strip() == "ledger: target eu-1 was retired (version 2); a retired name is not reused"


async def test_update_changes_only_what_it_names(live, capsys):
    url = str(live.make_url("")).rstrip("/")
    await add_target(live, capsys, "eu-1", "--server", "https://eu-1:6443",
                     "-l", "region=eu", "-l", "tier=prod", "-l", "canary=yes")
    code, out, _ = await ledger(capsys, "targets", "update", "eu-1", "--label", "tier=staging",
                                "--label", "zone=a", "--remove-label", "canary", "--url", url)
    assert code == 0 and out.strip() == "target eu-1: TargetUpdated (version 2, position 2)"
    target = await (await live.get("/v1/targets/eu-1?min_position=head")).json()
    assert target["labels"] == {"region": "eu", "tier": "staging", "zone": "a"}
    assert (target["credentials"], target["server"]) == ("eu-1", "https://eu-1:6443")
    credfiles.add_anonymous(live.app[keys.SETTINGS], "eu-1b")
    code, out, _ = await ledger(capsys, "targets", "update", "eu-1", "--credentials", "eu-1b", "--url", url)
    assert code == 0
    target = await (await live.get("/v1/targets/eu-1?min_position=head")).json()
    assert target["labels"] == {"region": "eu", "tier": "staging", "zone": "a"}
    assert (target["credentials"], target["server"], target["version"]) == ("eu-1b", None, 3)
    code, out, _ = await ledger(capsys, "targets", "update", "eu-1", "--label", "zone=a", "--url", url)
    assert code == 0 and out.strip() == "target eu-1: unchanged (version 3, position 3)"


async def test_update_refuses_what_it_cannot_do(live, capsys):
    url = str(live.make_url("")).rstrip("/")
    code, _, err = await ledger(capsys, "targets", "update", "eu-1", "--label", "a=b", "--url", url)
    assert code == exits.Code.NOT_FOUND and "eu-1" in err
    await add_target(live, capsys, "eu-1")
    code, _, err = await ledger(capsys, "targets", "update", "eu-1", "--remove-label", "zone", "--url", url)
    assert code == exits.Code.NOT_FOUND and err.strip() == "ledger: target eu-1 has no label zone"
    code, _, err = await ledger(capsys, "targets", "update", "eu-1", "--url", url)
    assert code == exits.Code.USAGE and "nothing to update" in err


async def test_concurrent_updates_never_undo_each_other(live, capsys):
    url = str(live.make_url("")).rstrip("/")
    await add_target(live, capsys, "eu-1")
    writers = 4  # each round of a race lets at least one through, so 4 need at most 4 of the 5 attempts
    codes = await asyncio.gather(*(
        asyncio.to_thread(cli_main.main, ["targets", "update", "eu-1", "--label", f"k{i}=v", "--url", url])
        for i in range(writers)))
    capsys.readouterr()
    assert codes == [0] * writers
    target = await (await live.get("/v1/targets/eu-1?min_position=head")).json()
    assert target["labels"] == {f"k{i}": "v" for i in range(writers)}


async def test_status_exits_1_while_a_target_has_failed(live, capsys):
    url = str(live.make_url("")).rstrip("/")
    for name in ("eu-1", "eu-2"):
        await add_target(live, capsys, name, "-l", "region=eu")
    await live.post("/v1/deployments/web/revisions", json={"manifests": manifests(), "selector": "region=eu"})
    assert (await ledger(capsys, "status", "web", "--url", url))[0] == exits.Code.OK
    await live.app[keys.STORE].append("rollout-web", "any", [
        records.NewEvent(uuid.uuid4(), "ApplySucceeded", {"deployment": "web", "revision": 1, "target": "eu-1"}),
        records.NewEvent(uuid.uuid4(), "ApplyFailed", {"deployment": "web", "revision": 1, "target": "eu-2",
                                                       "error": "HTTP 422: bad field"})])
    code, out, _ = await ledger(capsys, "status", "web", "--url", url)
    assert code == exits.Code.FAILED and "0/2 healthy, 1 progressing, 0 degraded, 1 failed" in out
    code, out, _ = await ledger(capsys, "status", "--json", "--url", url)
    assert code == exits.Code.FAILED and json.loads(out)["deployments"][0]["summary"]["failed"] == 1


async def test_status_names_a_shared_object_and_its_owner_in_the_reason_column(live, capsys):
    url = str(live.make_url("")).rstrip("/")
    await add_target(live, capsys, "eu-1", "-l", "region=eu")
    await live.post("/v1/deployments/web/revisions", json={"manifests": manifests(), "selector": "region=eu"})
    error = ("ConfigMap apps/web belongs to deployment api, not web: two deployments may not share an object "
             "(label ledger.dev/deployment=api); remove it from one of them")
    await live.app[keys.STORE].append("rollout-web", "any", [records.NewEvent(uuid.uuid4(), "ApplyFailed", {
        "deployment": "web", "revision": 1, "target": "eu-1", "error": error, "status": 409,
        "reason": "SharedResource"})])
    code, out, _ = await ledger(capsys, "status", "web", "--url", url)
    row = next(line for line in out.splitlines() if line.startswith("eu-1"))
    assert code == exits.Code.FAILED
    assert row.split(None, 5)[3:] == ["failed", "1", "SharedResource: ConfigMap apps/web belongs to deployment "
                                                     "api, not web: two deployments may not share"]


async def test_verify_and_digest_ask_the_service_at_ledger_url_and_create_nothing(live, capsys, tmp_path):
    url = str(live.make_url("")).rstrip("/")
    for name in ("eu-1", "eu-2"):
        await add_target(live, capsys, name)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    verified = await cli_support.run_async("verify", cwd=cwd, url=url)
    assert verified.returncode == 0, verified.stderr
    head = (await (await live.get("/v1/digest")).json())["position"]
    assert verified.stdout.startswith(f"OK: positions 1..{head} intact ({head} checked)")
    digest = await cli_support.run_async("digest", cwd=cwd, url=url)
    assert digest.returncode == 0 and json.loads(digest.stdout)["position"] == head
    assert list(cwd.iterdir()) == []
