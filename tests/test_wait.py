"""Waiting on a rollout (issue 12 item 5): the shared verdict, ``GET /v1/deployments/{name}?wait=healthy``
and ``ledger wait`` / ``ledger deploy --wait`` with their exit codes (0 healthy, 1 degraded or failed,
2 timeout), against a real service whose log gets the outcomes and health events the applier
records (appended through the store here, as the applier appends them)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from api import keys
from api import waiting as waiting_api
from cli import exits
from cli import main as cli_main
from cli import wait as wait_cli
from ledger import events, records
from projections import waiting
from tests import servers
from tests.projected import CONFIG_MAP, live_client, read, register, submit  # noqa: F401 - fixture

WEB = events.ObjectRef("apps/v1", "Deployment", "web", "apps")


def rollout(target: str, state: str, revision: int = 1) -> dict[str, Any]:
    return {"target": target, "state": state, "desired_revision": revision}


def doc(*rollouts: dict[str, Any], current: int = 1, removed: bool = False) -> dict[str, Any]:
    return {"name": "web", "current_revision": current, "removed": removed, "rollouts": list(rollouts)}


@pytest.mark.parametrize(("states", "expected"), [
    (["healthy", "healthy"], "healthy"),
    ([], "healthy"),
    (["healthy", "progressing"], "waiting"),
    (["pending", "applying"], "waiting"),
    (["healthy", "paused"], "waiting"),
    (["healthy", "degraded", "progressing"], "degraded"),
    (["degraded", "failed"], "failed"),
    (["failed", "healthy"], "failed"),
])
def test_the_verdict_over_the_targets_states(states, expected):
    assert waiting.verdict(doc(*(rollout(f"t{i}", s) for i, s in enumerate(states))), 1) == expected


def test_a_later_revision_supersedes_and_a_removal_ends_the_wait():
    assert waiting.verdict(doc(rollout("a", "healthy", 2), current=2), 1) == "superseded"
    assert waiting.verdict(doc(rollout("a", "healthy"), removed=True), 1) == "removed"
    assert waiting.verdict(doc(rollout("a", "healthy"), current=1), 2) == "waiting"


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600),
                                               ("2.5m", 150), (" 5S ", 5)])
def test_durations(text, seconds):
    assert waiting.seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-5", "5d", "1e3", "m", "10 m", "٣s", "inf", "nan"])
def test_durations_that_are_refused(text):
    with pytest.raises(ValueError):
        waiting.seconds(text)


async def append(live, event: events.Event) -> int:
    result = await live.app[keys.STORE].append("rollout-web", "any", [records.NewEvent(
        uuid.uuid4(), events.type_name(event), events.to_data(event), {"actor": "applier"})])
    return result.positions[0]


async def applied(live, target: str, revision: int = 1) -> int:
    return await append(live, events.ApplySucceeded(deployment="web", revision=revision, target=target))


async def healthy(live, target: str, revision: int = 1) -> int:
    await applied(live, target, revision)
    return await append(live, events.TargetHealthy(deployment="web", revision=revision, target=target,
                                                   objects=[WEB], duration_ms=900))


async def degraded(live, target: str, revision: int = 1) -> int:
    await applied(live, target, revision)
    return await append(live, events.TargetDegraded(deployment="web", revision=revision, target=target,
                                                    object=WEB, reason="ProgressDeadlineExceeded",
                                                    message="ReplicaSet web-1 has timed out progressing"))


async def fleet(live, *targets: str) -> dict[str, Any]:
    for name in targets:
        await register(live, name, env="prod")
    return await submit(live, "web", selector="env=prod")


async def started(live, position: int) -> None:
    """Until the read models hold ``position``: the state a wait begins from."""
    await read(live, "/v1/deployments/web", position)


# --- GET /v1/deployments/{name}?wait=healthy -------------------------------------------------------

async def http_wait(live, query: str = "") -> tuple[int, dict[str, Any]]:
    response = await live.get(f"/v1/deployments/web?wait=healthy{query}")
    return response.status, await response.json()


async def test_http_wait_answers_once_every_target_is_healthy(live):
    written = await fleet(live, "a", "b")
    await started(live, written["position"])
    pending = asyncio.ensure_future(http_wait(live, "&timeout=60s"))
    await healthy(live, "a")
    await healthy(live, "b")
    status, body = await pending
    assert status == 200 and body["wait"] == {"result": "healthy", "revision": 1, "timeout_seconds": 60}
    assert [(r["target"], r["state"]) for r in body["rollouts"]] == [("a", "healthy"), ("b", "healthy")]


async def test_http_wait_ends_at_the_first_degraded_target_with_its_reason(live):
    written = await fleet(live, "a", "b")
    await started(live, written["position"])
    pending = asyncio.ensure_future(http_wait(live, "&timeout=60"))
    await degraded(live, "b")
    status, body = await pending
    assert status == 200 and body["wait"]["result"] == "degraded"
    b = next(r for r in body["rollouts"] if r["target"] == "b")
    assert (b["state"], b["reason"]) == ("degraded", "ProgressDeadlineExceeded")


async def test_http_wait_reports_a_refused_apply_as_failed(live):
    written = await fleet(live, "a")
    await started(live, written["position"])
    pending = asyncio.ensure_future(http_wait(live, "&timeout=60"))
    await append(live, events.ApplyFailed(deployment="web", revision=1, target="a", error="HTTP 403: forbidden",
                                          retryable=False))
    status, body = await pending
    assert status == 200 and body["wait"]["result"] == "failed"


async def test_http_wait_for_a_revision_that_another_supersedes(live):
    written = await fleet(live, "a")
    await started(live, written["position"])
    pending = asyncio.ensure_future(http_wait(live, "&timeout=60&revision=1"))
    await submit(live, "web", value="2")
    status, body = await pending
    assert status == 200 and body["wait"]["result"] == "superseded" and body["current_revision"] == 2


async def test_http_wait_times_out_with_200_and_where_each_target_stands(live):
    await fleet(live, "a", "b")
    await healthy(live, "a")
    status, body = await http_wait(live, "&timeout=0.5s")
    assert status == 200 and body["wait"]["result"] == "timeout"
    assert {r["target"]: r["state"] for r in body["rollouts"]} == {"a": "healthy", "b": "pending"}


async def test_http_wait_refuses_bad_input_naming_the_field(live):
    await fleet(live, "a")
    for query, field in (("wait=ready", "wait"), ("wait=healthy&timeout=soon", "timeout"),
                         ("wait=healthy&timeout=0", "timeout"), ("wait=healthy&timeout=301s", "timeout"),
                         ("wait=healthy&revision=0", "revision")):
        response = await live.get(f"/v1/deployments/web?{query}")
        problem = await response.json()
        assert response.status == 422 and problem["field"] == field, (query, problem)
    response = await live.get("/v1/deployments/web?wait=healthy&revision=2")
    assert response.status == 404 and "no revision 2" in (await response.json())["detail"]
    response = await live.get("/v1/deployments/nope?wait=healthy&timeout=1")
    assert response.status == 404


async def test_a_stopping_service_answers_its_waits_503(live):
    assert waiting_api.stop_waits in live.app.on_shutdown
    written = await fleet(live, "a")
    await started(live, written["position"])
    pending = asyncio.ensure_future(live.get("/v1/deployments/web?wait=healthy&timeout=60"))
    await asyncio.sleep(0.2)  # let the request start waiting (a head start, not an assertion)
    await waiting_api.stop_waits(live.app)
    response = await pending
    assert response.status == 503 and response.headers["Retry-After"]


# --- ledger wait / ledger deploy --wait ------------------------------------------------------------

async def ledger(capsys, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli_main.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def url_of(live) -> str:
    return str(live.make_url("")).rstrip("/")


async def test_ledger_wait_exits_0_once_every_target_is_healthy(live, capsys):
    written = await fleet(live, "a", "b")
    await started(live, written["position"])
    command = asyncio.ensure_future(ledger(capsys, "wait", "web", "--timeout", "60s", "--url", url_of(live)))
    await healthy(live, "a")
    await healthy(live, "b")
    code, out, _ = await command
    assert code == exits.Code.OK
    lines = out.splitlines()
    assert lines[0] == "web revision 1: healthy (2 healthy)"
    assert [line.split()[:4] for line in lines[3:]] == [["a", "1", "1", "healthy"], ["b", "1", "1", "healthy"]]


async def test_ledger_wait_exits_1_with_the_table_when_a_target_degrades(live, capsys):
    written = await fleet(live, "a", "b")
    await healthy(live, "a")
    await started(live, written["position"])
    command = asyncio.ensure_future(ledger(capsys, "wait", "web", "--url", url_of(live)))
    await degraded(live, "b")
    code, out, err = await command
    assert code == exits.Code.FAILED
    assert out.splitlines()[0] == "web revision 1: degraded (1 degraded, 1 healthy)"
    assert "ProgressDeadlineExceeded" in out
    assert err.strip() == ("ledger: web revision 1 is degraded on b (degraded: ProgressDeadlineExceeded: "
                           "Deployment apps/web: ReplicaSet web-1 has timed out progressing)")


async def test_ledger_wait_exits_2_on_timeout_naming_what_it_waited_for(live, capsys):
    await fleet(live, "a", "b")
    await healthy(live, "a")
    code, out, err = await ledger(capsys, "wait", "web", "--timeout", "1s", "--url", url_of(live))
    assert code == 2  # exits.Code.TIMED_OUT
    assert out.splitlines()[0] == "web revision 1: timeout (1 healthy, 1 pending)"
    assert err.strip() == "ledger: web revision 1 not healthy within 1 s; still waiting for b (pending)"


async def test_ledger_wait_exits_1_when_the_revision_is_superseded_and_4_for_one_that_does_not_exist(live, capsys):
    written = await fleet(live, "a")
    await started(live, written["position"])
    command = asyncio.ensure_future(ledger(capsys, "wait", "web", "--revision", "1", "--url", url_of(live)))
    await submit(live, "web", value="2")
    code, _, err = await command
    assert code == exits.Code.FAILED and "web revision 1 was superseded by revision 2" in err
    code, _, err = await ledger(capsys, "wait", "web", "--revision", "3", "--url", url_of(live))
    assert code == exits.Code.NOT_FOUND and "has no revision 3" in err


async def test_ledger_wait_prints_the_deployment_and_how_the_wait_ended_as_json(live, capsys):
    await fleet(live, "a")
    await healthy(live, "a")
    code, out, _ = await ledger(capsys, "wait", "web", "--output", "json", "--url", url_of(live))
    body = json.loads(out)
    assert code == 0 and body["wait"] == {"result": "healthy", "revision": 1, "timeout_seconds": 600}
    assert body["rollouts"][0]["state"] == "healthy"


async def test_ledger_deploy_wait_waits_for_the_revision_it_submitted(live, capsys, tmp_path):
    for name in ("a", "b"):
        await register(live, name, env="prod")
    await submit(live, "web", selector="env=prod")
    await healthy(live, "a")
    await healthy(live, "b")  # revision 1 is healthy everywhere: the wait must be for revision 2
    manifest = tmp_path / "web.yaml"
    manifest.write_text(CONFIG_MAP.format(2))
    command = asyncio.ensure_future(ledger(capsys, "deploy", "web", "-f", str(manifest), "-m", "ci", "--wait",
                                           "--timeout", "60s", "--output", "json", "--url", url_of(live)))
    await _revision(live, 2)
    await healthy(live, "a", revision=2)
    await degraded(live, "b", revision=2)
    code, out, err = await command
    body = json.loads(out)
    assert code == exits.Code.FAILED and body["wait"]["result"] == "degraded" and body["wait"]["revision"] == 2
    assert "web revision 2 is degraded on b" in err


async def _revision(live, number: int) -> None:
    """Until the deployment's current revision is ``number`` (the CLI submits it in its own thread)."""
    for _ in range(600):
        response = await live.get("/v1/deployments/web")
        if response.status == 200 and (await response.json())["current_revision"] == number:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"revision {number} was never submitted")


async def test_the_event_stream_parser_follows_the_whatwg_format():
    reader = asyncio.StreamReader()
    reader.feed_data(b"retry: 1000\n\n: heartbeat\n\nid: 7\nevent: TargetHealthy\ndata: {\"subject\":\n"
                     b"data: \"rollout-web\"}\n\nid: 8\r\ndata:x\r\n\r\n")
    reader.feed_eof()
    found = [event async for event in wait_cli.sse(reader)]
    assert found == [{"retry": "1000"}, {"id": "7", "event": "TargetHealthy", "data": '{"subject":\n"rollout-web"}'},
                     {"id": "8", "data": "x"}]
    assert wait_cli.concerns("rollout-web", "web") and wait_cli.concerns("target-eu-1", "web")
    assert not wait_cli.concerns("rollout-webshop", "web") and not wait_cli.concerns("deployment-api", "web")


def test_the_exit_codes_of_a_wait_are_documented():
    text = (servers.ROOT / "docs" / "cli.md").read_text()
    assert "ledger wait" in text and "--timeout" in text.split("| 2 | USAGE |", 1)[1].split("\n", 1)[0]
