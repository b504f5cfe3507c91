"""The deployment page's rollout in waves over HTTP, without a browser: the waves as the API folds
them, the approve, halt and resume-rollout forms recording the rollout's events with the typed
reason, what each role is offered, four eyes, and the per-target words with a freeze's hold."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from api import keys
from ledger import events, records
from tests import servers
from tests.projected import live_client, register, submit  # noqa: F401 - fixture
from tests.tokens_support import issue

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
STRATEGY = {"waves": [{"name": "canary", "selector": "region=eu"}, {"name": "rest"}], "approval": ["rest"]}


@pytest.fixture
async def browser(live) -> AsyncIterator[aiohttp.ClientSession]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(str(live.make_url("")), cookie_jar=jar) as session:
        yield session


async def _sign_in(browser: aiohttp.ClientSession, secret: str = servers.ADMIN_TOKEN) -> None:
    browser.cookie_jar.clear()
    async with browser.post("/signin", data={"token": secret, "next": "/fleet"}, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()


async def _seed(live, **headers: str) -> None:
    await register(live, "eu-1", region="eu")
    await register(live, "us-1", region="us")
    await submit(live, "web", "", "1", message="first")
    response = await live.post("/v1/deployments/web/revisions", headers=headers, json={
        "manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "apps"},
                       "data": {"k": "2"}}], "selector": "", "message": "second", "strategy": STRATEGY})
    assert response.status == 201, await response.text()


async def _page(browser: aiohttp.ClientSession, path: str = "/deployments/web") -> str:
    async with browser.get(path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.text()


async def _post(browser: aiohttp.ClientSession, action: str, **form: str) -> str:
    csrf = _CSRF.search(await _page(browser)).group(1)  # type: ignore[union-attr]
    async with browser.post(f"/deployments/web/{action}", data={**form, "csrf": csrf}) as resp:
        text = await resp.text()
        assert resp.status == 200, text[:2000]
        assert re.search(r"/deployments/web\?recorded=\d+", str(resp.url)), resp.url
        return text


async def _last(db, stream: str = "rollout-web") -> dict[str, Any]:
    row = await db.fetchrow("SELECT type, data::text, metadata::text FROM events WHERE stream = $1"
                            " ORDER BY position DESC LIMIT 1", stream)
    return {"type": row[0], "data": json.loads(row[1]), "metadata": json.loads(row[2])}


def _wave_row(text: str, wave: str) -> str:
    return re.search(rf'<tr data-wave="{wave}">.*?</tr>', text, re.S).group(0)  # type: ignore[union-attr]


async def test_a_waved_rollout_shows_its_waves_and_approve_halt_and_resume_record_their_events(live, browser, db):
    await _seed(live)
    await _sign_in(browser)
    text = await _page(browser)
    assert 'id="wave-table"' in text and "in 2 waves" in text
    assert '<span class="st s-rolling">rolling</span>' in text
    canary, rest = _wave_row(text, "canary"), _wave_row(text, "rest")
    assert "<td>1</td>" in canary and "<summary>1</summary>eu-1</details>" in canary and "not needed" in canary
    assert "<td>2</td>" in rest and "<summary>1</summary>us-1</details>" in rest and "required" in rest
    assert '<span class="st s-pending">pending</span>' in rest
    assert 'action="/deployments/web/approve"' in text and 'action="/deployments/web/halt"' in text
    assert '<option value="rest">rest</option>' in text

    text = await _post(browser, "approve", wave="rest", reason="canary dashboards are green")
    assert "Recorded ApprovalGranted" in text and "canary dashboards are green" in text
    granted = await _last(db)
    assert granted["type"] == "ApprovalGranted"
    assert granted["data"]["wave"] == "rest" and granted["data"]["by"] == "admin-env"
    assert granted["data"]["reason"] == "canary dashboards are green"
    assert granted["metadata"]["reason"] == "canary dashboards are green"
    assert "approved by admin-env" in _wave_row(text, "rest")
    assert 'action="/deployments/web/approve"' not in text  # nothing left to approve

    text = await _post(browser, "halt", reason="error rate up in eu")
    assert "Recorded RolloutHalted" in text
    halted = await _last(db)
    assert halted["type"] == "RolloutHalted" and halted["data"]["reason"] == "error rate up in eu"
    assert 'id="halted"' in text and "error rate up in eu" in text
    assert '<span class="st s-halted">halted</span>' in text
    assert 'action="/deployments/web/halt"' not in text and 'id="resume-rollout"' in text

    text = await _post(browser, "resume", reason="false alarm")
    assert "Recorded RolloutResumed" in text
    resumed = await _last(db)
    assert resumed["type"] == "RolloutResumed" and resumed["data"]["reason"] == "false alarm"
    assert (await _last(db, "deployment-web"))["type"] == "RevisionSubmitted"  # not DeploymentResumed
    assert 'id="resume-rollout"' not in text and 'action="/deployments/web/halt"' in text


async def test_an_approval_refused_by_the_rollout_is_an_error_page_and_writes_nothing(live, browser, db):
    await _seed(live)
    await _sign_in(browser)
    before = await db.fetchval("SELECT count(*) FROM events")
    csrf = _CSRF.search(await _page(browser)).group(1)  # type: ignore[union-attr]
    for form, status, field in (({"wave": "canary", "reason": "x"}, 409, "wave"),
                                ({"wave": "nope", "reason": "x"}, 422, "wave"),
                                ({"wave": "rest", "reason": " "}, 422, "reason")):
        async with browser.post("/deployments/web/approve", data={**form, "csrf": csrf},
                                allow_redirects=False) as resp:
            text = await resp.text()
            assert resp.status == status and resp.content_type == "text/html", text[:500]
            assert f'data-field="{field}"' in text, text[:800]
    assert await db.fetchval("SELECT count(*) FROM events") == before


async def test_each_role_is_offered_only_the_rollout_controls_it_may_use(live, browser, db):
    ci = await issue(live, "ci", "deployer")
    await _seed(live, **ci, **{"X-Actor": "alice"})
    forms = ("approve", "halt", "rollback")
    offered: dict[str, set[str]] = {}
    for name, role in (("viewer-1", "viewer"), ("deployer-1", "deployer"), ("approver-1", "approver"),
                       ("alice", "approver")):
        token = (await issue(live, name, role))["Authorization"].removeprefix("Bearer ")
        await _sign_in(browser, token)
        text = await _page(browser)
        offered[name] = {f for f in forms if f'action="/deployments/web/{f}"' in text}
        if name == "alice":
            assert 'id="four-eyes"' in text
    assert offered == {"viewer-1": set(), "deployer-1": {"halt", "rollback"}, "approver-1": {"approve"},
                       "alice": set()}
    # The route refuses what the page does not offer, and the approver who submitted is refused.
    csrf = _CSRF.search(await _page(browser)).group(1)  # type: ignore[union-attr]
    async with browser.post("/deployments/web/halt", data={"reason": "x", "csrf": csrf},
                            allow_redirects=False) as resp:
        assert resp.status == 403
    async with browser.post("/deployments/web/approve", data={"wave": "rest", "reason": "mine", "csrf": csrf},
                            allow_redirects=False) as resp:
        assert resp.status == 403 and "four eyes" in await resp.text()
    assert await db.fetchval("SELECT count(*) FROM events WHERE stream = 'rollout-web'") == 0


async def test_each_target_shows_its_rollout_word_and_frozen_with_the_freeze_while_it_waits(live, browser):
    await _seed(live)  # the applier is off: every target waits (pending)
    now = dt.datetime.now(dt.UTC)
    response = await live.put("/v1/freezes/black-friday", json={"selector": "region=eu", "reason": "sales",
                                                                "schedule": {"from": now.isoformat(),
                                                                             "until": (now + dt.timedelta(hours=2)).isoformat()}})
    assert response.status in (200, 201), await response.text()
    await _sign_in(browser)
    text = await _page(browser)
    eu = re.search(r'<tr id="t-eu-1">.*?</tr>', text, re.S).group(0)  # type: ignore[union-attr]
    us = re.search(r'<tr id="t-us-1">.*?</tr>', text, re.S).group(0)  # type: ignore[union-attr]
    assert '<span class="st s-frozen">frozen</span>' in eu and "held by freeze black-friday until" in eu
    assert '<span class="st s-pending">pending</span>' in us and "waits for wave rest" in us
    assert '<span class="n s-frozen">1 frozen</span>' in text


async def test_promote_starts_a_soaking_wave_and_records_who_with_the_reason(live, browser, db):
    await register(live, "eu-1", region="eu")
    await register(live, "us-1", region="us")
    await submit(live, "web", "", "1", strategy={**STRATEGY, "approval": [], "soak_seconds": 3600})
    done = [events.WaveStarted(deployment="web", revision=1, wave="canary", targets=["eu-1"]),
            events.WaveCompleted(deployment="web", revision=1, wave="canary", healthy=1)]
    await live.app[keys.STORE].append("rollout-web", "any", [records.NewEvent(
        uuid.uuid4(), events.type_name(e), events.to_data(e), {"actor": "ledger"}) for e in done])
    await _sign_in(browser)
    text = await _page(browser, "/deployments/web?min_position=head")
    assert '<select id="promote-wave" name="wave"><option value="rest">rest</option></select>' in text
    text = await _post(browser, "promote", wave="rest", reason="hotfix, skip the soak")
    assert "Recorded WaveStarted" in text
    started = await _last(db)
    assert started["type"] == "WaveStarted" and started["data"]["wave"] == "rest"
    assert started["metadata"] == {**started["metadata"], "actor": "admin-env", "reason": "hotfix, skip the soak"}
    assert "promoted by admin-env" in _wave_row(text, "rest") and 'id="promote"' not in text


async def test_the_page_of_a_deployment_in_waves_on_1000_targets_weighs_under_300_kb_the_worst_first(live, browser, db):
    names = [f"edge-{i:04d}" for i in range(1000)]
    store = live.app[keys.STORE]
    await asyncio.gather(*(store.append(f"target-{n}", "no_stream", [records.NewEvent(
        uuid.uuid4(), "TargetRegistered", {"target": n, "labels": {"tier": "edge"}, "credentials": "bench"},
        {"actor": "test"})]) for n in names))
    await submit(live, "web", "tier=edge", "1", strategy={
        "waves": [{"name": "canary", "size": 10}, {"name": "early", "size": "25%"}, {"name": "rest"}],
        "approval": ["rest"]})
    failed = events.ApplyFailed(deployment="web", revision=1, target="edge-0999", error="quota exceeded",
                                attempt=1, retryable=False)
    await store.append("rollout-web", "any", [records.NewEvent(
        uuid.uuid4(), "ApplyFailed", events.to_data(failed), {"actor": "applier"})])
    await _sign_in(browser)
    async with browser.get("/deployments/web?min_position=head", headers={"Accept-Encoding": "identity"}) as resp:
        html = await resp.read()
    text = html.decode()
    rows = re.findall(r'<tr id="t-([a-z0-9-]+)">', text)
    assert len(rows) == 200 and rows[0] == "edge-0999" and rows[1:4] == ["edge-0000", "edge-0001", "edge-0002"]
    assert "Targets 1\u2013200 of 1000, the worst first" in text and 'href="/deployments/web?page=5#rollout"' in text
    assert "<summary>740</summary>" in _wave_row(text, "rest") and "and 690 more" in _wave_row(text, "rest")
    total = len(html)
    for asset in ("app.css", "deployment.js", "live.js", "favicon.svg"):
        async with browser.get(f"/ui/assets/{asset}", headers={"Accept-Encoding": "identity"}) as resp:
            total += len(await resp.read())
    assert total < 300 * 1024, f"{total} bytes"
    last = re.findall(r'<tr id="t-([a-z0-9-]+)">', await _page(browser, "/deployments/web?page=5"))
    assert len(last) == 200 and last[-1] == "edge-0998"
