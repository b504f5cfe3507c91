"""``ledger approve / halt / resume / rollout`` against a real server (no applier: the waves do not
move by themselves, so what the commands record is all that happens)."""

from __future__ import annotations

import asyncio

from api import keys
from cli import exits
from tests import credfiles
from tests.projected import live_client, register, submit  # noqa: F401 - fixture
from tests.test_cli_client import ledger

STRATEGY = {"waves": [{"name": "canary", "size": 1}, {"name": "rest"}], "approval": ["canary"]}


async def test_approve_halt_resume_and_a_rollout_view_that_follows_the_feed_until_the_halt(live, capsys):
    url = str(live.make_url("")).rstrip("/")
    common = ["--url", url]
    credfiles.add_anonymous(live.app[keys.SETTINGS], "eu-1")
    await register(live, "eu-1", region="eu")
    await submit(live, "web", "", strategy=STRATEGY)
    code, out, _ = await ledger(capsys, "approve", "web", "--wave", "canary", "-m", "reviewed", *common)
    assert code == exits.Code.OK and out.strip().startswith("web: wave canary approved (revision 1")
    code, out, err = await ledger(capsys, "approve", "web", "--wave", "nope", *common)
    assert code != exits.Code.OK
    assert "no wave 'nope'" in err

    follower = asyncio.create_task(ledger(capsys, "rollout", "web", *common))
    await asyncio.sleep(0.5)  # the follower is reading the live feed by now, or catches up from its cursor
    assert not follower.done()
    halted = await live.post("/v1/deployments/web/halt", json={"reason": "incident"})
    assert halted.status == 200, await halted.text()
    code, out, _ = await asyncio.wait_for(follower, 30)
    assert code == exits.Code.FAILED
    assert "web: revision 1 halted at wave canary: incident" in out
    assert out.splitlines()[-2].split()[:2] == ["canary", "pending"]

    code, out, _ = await ledger(capsys, "resume", "web", "--reason", "fixed", *common)
    assert code == exits.Code.OK and "rollout resumed" in out
    code, out, _ = await ledger(capsys, "rollout", "web", "--once", "--json", *common)
    assert code == exits.Code.OK and '"phase": "rolling"' in out


async def test_status_says_which_wave_a_waiting_target_waits_for(live, capsys):
    url = str(live.make_url("")).rstrip("/")
    for name in ("eu-1", "eu-2"):
        credfiles.add_anonymous(live.app[keys.SETTINGS], name)
        await register(live, name, region="eu")
    await submit(live, "web", "", strategy=STRATEGY)
    code, out, _ = await ledger(capsys, "status", "web", "--url", url)
    reasons = {line.split()[0]: " ".join(line.split()[5:]) for line in out.splitlines() if line.startswith("eu-")}
    assert code == exits.Code.OK
    assert reasons == {"eu-1": "waits for wave canary", "eu-2": "waits for wave rest"}, out
    halted = await live.post("/v1/deployments/web/halt", json={"reason": "incident"})
    assert halted.status == 200, await halted.text()
    code, out, _ = await ledger(capsys, "status", "web", "--url", url)
    assert "waits for wave rest (rollout halted at wave canary)" in out, out
    code, out, _ = await ledger(capsys, "status", "web", "--url", url, "--json")
    assert code == exits.Code.OK and "waits for wave" not in out
