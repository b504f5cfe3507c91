"""The web UI's pages over HTTP, without a browser: sessions and their cookie, CSRF, deny by
default for every page of the router, the Content-Security-Policy, bad input answered with an HTML
error page, what each role is offered, and the weight of a page with its assets."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest

from api import keys, lanes, policy
from api.ui import render, sessions
from tests import credfiles, servers
from tests.projected import live_client, register, submit  # noqa: F401 - fixture
from tests.tokens_support import issue

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def browser(live) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of the same service that sends no Authorization header and keeps cookies, as a
    browser does."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(str(live.make_url("")), cookie_jar=jar) as session:
        yield session


async def _sign_in(browser: aiohttp.ClientSession, secret: str = servers.ADMIN_TOKEN) -> None:
    async with browser.post("/signin", data={"token": secret, "next": "/fleet"}, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        assert resp.headers["Location"] == "/fleet"


async def _seed(live) -> None:
    await register(live, "eu-1", region="eu")
    await register(live, "us-1", region="us")
    await submit(live, "web", "region", "1", message="first")
    await submit(live, "web", "region", "2", message="second")


def _page_routes(app) -> list[tuple[str, str]]:
    return sorted({(r.method, r.resource.canonical) for r in app.router.routes()
                   if r.method != "HEAD" and policy.is_page(r.method, r.resource.canonical)})


async def _count(db) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


async def test_every_page_without_a_session_or_token_redirects_to_sign_in_and_writes_nothing(live, browser, db):
    await _seed(live)
    before = await _count(db)
    checked = 0
    for method, template in _page_routes(live.app):
        if policy.rule_for(method, template).permission == "public":  # type: ignore[union-attr]
            continue
        path = template.replace("{name}", "web")
        async with browser.request(method, path, data={"reason": "x", "to_revision": "1"},
                                   allow_redirects=False) as resp:
            assert resp.status == 303, f"{method} {path}: {resp.status}"
            assert resp.headers["Location"].startswith("/signin?next=/"), resp.headers["Location"]
        checked += 1
    assert checked >= 10 and await _count(db) == before


async def test_sign_in_keeps_an_opaque_httponly_strict_cookie_and_a_bad_token_is_refused(live, browser):
    async with browser.post("/signin", data={"token": "wrong"}, allow_redirects=False) as resp:
        assert resp.status == 401 and resp.content_type == "text/html"
        assert "the token is not known" in await resp.text()
        assert sessions.COOKIE not in resp.cookies
    async with browser.post("/signin", data={"token": servers.ADMIN_TOKEN}, allow_redirects=False) as resp:
        assert resp.status == 303
        morsel = resp.cookies[sessions.COOKIE]
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
        assert servers.ADMIN_TOKEN not in morsel.value and len(morsel.value) >= 40
    async with browser.get("/fleet") as resp:
        assert resp.status == 200 and "admin-env" in await resp.text()


async def test_sign_in_never_sends_the_browser_to_another_site(live, browser):
    for wanted in ("//elsewhere.example/x", "https://elsewhere.example/", "/\\elsewhere", "fleet"):
        async with browser.post("/signin", data={"token": servers.ADMIN_TOKEN, "next": wanted},
                                allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/fleet", wanted


async def test_a_form_without_the_sessions_csrf_token_or_from_another_origin_is_refused(live, browser, db):
    await _seed(live)
    await _sign_in(browser)
    before = await _count(db)
    for form, headers in (({"reason": "no token"}, {}),
                          ({"reason": "stale", "csrf": "not-the-token"}, {}),
                          ({"reason": "elsewhere"}, {"Origin": "https://elsewhere.example"})):
        if "Origin" in headers:
            async with browser.get("/deployments/web") as page:
                form["csrf"] = _CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
        async with browser.post("/deployments/web/pause", data=form, headers=headers, allow_redirects=False) as resp:
            assert resp.status == 403 and resp.content_type == "text/html", form
    assert await _count(db) == before
    async with browser.get("/deployments/web") as page:
        csrf = _CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
    async with browser.post("/deployments/web/pause", data={"reason": "freeze for the audit", "csrf": csrf},
                            allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        assert re.fullmatch(r"/deployments/web\?recorded=\d+#recorded", resp.headers["Location"])
    last = await db.fetchrow("SELECT type, data, metadata FROM events ORDER BY position DESC LIMIT 1")
    assert last["type"] == "DeploymentPaused"
    assert '"freeze for the audit"' in last["data"] and '"actor": "admin-env"' in last["metadata"]


async def test_an_action_without_a_reason_is_refused_naming_it(live, browser, db):
    await _seed(live)
    await _sign_in(browser)
    async with browser.get("/deployments/web") as page:
        csrf = _CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
    before = await _count(db)
    async with browser.post("/deployments/web/rollback", data={"to_revision": "1", "reason": " ", "csrf": csrf},
                            allow_redirects=False) as resp:
        assert resp.status == 422 and 'data-field="reason"' in await resp.text()
    async with browser.post("/deployments/web/rollback", data={"to_revision": "x", "reason": "r", "csrf": csrf},
                            allow_redirects=False) as resp:
        assert resp.status == 422 and 'data-field="to_revision"' in await resp.text()
    assert await _count(db) == before


async def test_a_session_ends_when_its_token_is_revoked(live, browser):
    await _seed(live)
    headers = await issue(live, "reader", "viewer")
    await _sign_in(browser, headers["Authorization"].removeprefix("Bearer "))
    async with browser.get("/fleet", allow_redirects=False) as resp:
        assert resp.status == 200
    assert (await live.delete("/v1/tokens/reader")).status == 200
    async with browser.get("/fleet", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"].startswith("/signin")


async def test_sign_out_ends_the_session(live, browser):
    await _sign_in(browser)
    async with browser.get("/fleet") as page:
        csrf = _CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
    async with browser.post("/signout", data={"csrf": csrf}, allow_redirects=False) as resp:
        assert resp.status == 303
    async with browser.get("/fleet", allow_redirects=False) as resp:
        assert resp.status == 303


async def test_the_session_cookie_opens_the_live_feed_and_no_other_api_route(live, browser):
    await _sign_in(browser)
    async with browser.get("/v1/feed/live?after=0", headers={"Connection": "close"}) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
    async with browser.get("/v1/deployments") as resp:
        assert resp.status == 401


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and "src" not in names:
            self.found.append("inline script")
        if "style" in names or tag == "style":
            self.found.append(f"inline style on <{tag}>")
        self.found += [f"handler {n} on <{tag}>" for n in names if n.startswith("on")]
        self.found += [f"{n}=javascript: on <{tag}>" for n, v in names.items() if v and v.startswith("javascript:")]


async def test_every_page_sends_a_strict_policy_and_has_no_inline_script_or_style(live, browser):
    await _seed(live)
    await _sign_in(browser)
    for path in ("/signin", "/fleet", "/fleet?group=region", "/fleet/matrix", "/deployments/web", "/targets/eu-1",
                 "/timeline", "/timeline/rows", "/audit?since=0&verify=1", "/deployments/absent"):
        async with browser.get(path) as resp:
            assert resp.headers["Content-Security-Policy"] == render.CSP, path
            assert resp.headers["Cache-Control"] == "no-store" and resp.headers["X-Frame-Options"] == "DENY"
            parser = _Inline()
            parser.feed(await resp.text())
            assert parser.found == [], f"{path}: {parser.found}"
    assert "'unsafe-inline'" not in render.CSP and "script-src 'self'" in render.CSP


@pytest.mark.parametrize(("path", "field", "status"), [
    ("/fleet?selector=region%3D%3D%3D", "selector", 422),
    ("/fleet?group=a%3Db", "group", 422),
    ("/fleet?page=0", "page", 422),
    ("/fleet?page=99999999999", "page", 422),
    ("/deployments/NOT_A_NAME", "name", 422),
    ("/deployments/web?from=9", "from", 422),
    ("/deployments/absent", None, 404),
    ("/targets/absent", None, 404),
    ("/timeline?type=NoSuchEvent", "type", 422),
    ("/timeline?stream=nosuchcategory", "stream", 422),
    ("/timeline?stream=deployment-NOT%20OK", "stream", 422),
    ("/timeline?actor=%01", "actor", 422),
    ("/timeline?before=-1", "before", 422),
    ("/audit?at=yesterday", "at", 422),
    ("/audit?at=999999", "at", 422),
    ("/audit?since=%00", "since", 422),
    ("/audit?verify=maybe", "verify", 422),
])
async def test_bad_input_to_a_page_is_an_html_error_page_naming_it(live, browser, path, field, status):
    await _seed(live)
    await _sign_in(browser)
    async with browser.get(path) as resp:
        text = await resp.text()
        assert resp.status == status and resp.content_type == "text/html", text[:500]
        if field is not None:
            assert f'data-field="{field}"' in text, text[:800]


async def test_a_viewer_is_offered_no_action_and_a_scoped_deployer_only_in_scope(live, browser):
    await _seed(live)
    await submit(live, "api", "region", "1")
    await submit(live, "api", "region", "2")
    viewer = await issue(live, "looker", "viewer")
    await _sign_in(browser, viewer["Authorization"].removeprefix("Bearer "))
    async with browser.get("/deployments/web") as resp:
        assert 'action="/deployments/web/rollback"' not in await resp.text()
    async with browser.post("/deployments/web/pause", data={"reason": "no"}, allow_redirects=False) as resp:
        assert resp.status == 403
    scoped = await issue(live, "web-only", "deployer", deployments=["web"])
    await _sign_in(browser, scoped["Authorization"].removeprefix("Bearer "))
    async with browser.get("/deployments/web") as resp:
        assert 'action="/deployments/web/rollback"' in await resp.text()
    async with browser.get("/deployments/api") as resp:
        assert 'action="/deployments/api/rollback"' not in await resp.text()


async def test_a_page_with_its_assets_weighs_under_300_kb_for_a_page_of_100_targets(live, browser):
    for i in range(100):
        await register(live, f"edge-{i:03d}", region=("eu", "us", "ap")[i % 3], tier="edge")
    for name in ("web", "api", "auth", "cart", "search"):
        await submit(live, name, "tier=edge")
    await _sign_in(browser)
    total = 0
    async with browser.get("/fleet", headers={"Accept-Encoding": "identity"}) as resp:
        html = await resp.read()
        assert resp.status == 200 and html.count(b"<tr data-t=") == 100
    total += len(html)
    for asset in [*re.findall(rb'(?:href|src)="(/ui/assets/[^"]+)"', html), b"/ui/assets/live.js"]:
        async with browser.get(asset.decode(), headers={"Accept-Encoding": "identity"}) as resp:
            assert resp.status == 200
            total += len(await resp.read())
    assert total < 300 * 1024, f"{total} bytes"


async def test_the_digest_download_is_what_ledger_verify_digest_reads(live, browser):
    await _seed(live)
    await _sign_in(browser)
    async with browser.get("/audit/digest") as resp:
        assert resp.headers["Content-Disposition"].startswith('attachment; filename="ledger-digest-')
        body: dict[str, Any] = await resp.json(content_type=None)
    api = await (await live.get("/v1/digest")).json()
    assert body == api


async def test_the_audit_page_lists_what_changed_between_two_moments(live, browser):
    await _seed(live)
    await _sign_in(browser)
    async with browser.get("/audit?since=0") as resp:
        text = await resp.text()
    assert "What changed between position 0" in text
    assert "<th scope=\"row\">web</th><td>absent</td><td>r2</td>" in text


async def test_the_audit_pages_folds_run_in_a_lane_worker_process(live, browser):
    # They ran in a thread of the API process, which a fold of a long log holds the interpreter
    # from the event loop meanwhile: appends waited behind a page view.
    await _seed(live)
    await _sign_in(browser)
    lane = live.app[lanes.LANE]
    async with browser.get("/audit?at=1&since=0") as resp:
        assert resp.status == 200
        text = await resp.text()
    assert lane.runs["audit"] == 1 and lane.workers.pids()
    assert "What changed between position 0 and 1" in text
    async with browser.get("/audit?at=999999") as resp:  # beyond the head: the worker's answer, 422
        assert resp.status == 422 and "beyond the head" in await resp.text()
    assert lane.runs["audit"] == 2


async def test_a_target_a_freeze_holds_shows_frozen_with_the_freeze_and_its_end(live, browser):
    await _seed(live)  # the applier is off here: every rollout waits (pending)
    now = dt.datetime.now(dt.UTC)
    response = await live.put("/v1/freezes/black-friday", json={"selector": "region=eu", "reason": "sales", "schedule": {
        "from": now.isoformat(), "until": (now + dt.timedelta(hours=2)).isoformat()}})
    assert response.status in (200, 201), await response.text()
    await _sign_in(browser)
    async with browser.get("/fleet") as resp:
        text = await resp.text()
    eu = re.search(r'<tr data-t="eu-1">.*?</tr>', text, re.S).group(0)  # type: ignore[union-attr]
    us = re.search(r'<tr data-t="us-1">.*?</tr>', text, re.S).group(0)  # type: ignore[union-attr]
    assert re.search(r'<td class="s-frozen" title="held by freeze black-friday until [^"]+">frozen</td>', eu), eu
    assert '<td class="s-pending">pending</td>' in us
    assert "<code>black-friday</code>" in text


async def test_the_target_page_names_its_credential_and_shows_nothing_of_the_secret_or_where_it_lives(live, browser):
    directory = live.app[keys.SETTINGS].credentials.parent
    credfiles.add(directory, vault=credfiles.token_entry(directory, "vault", "https://eu-9.example:6443"))
    response = await live.put("/v1/targets/eu-9", json={"labels": {"region": "eu"}, "credentials": "vault"})
    assert response.status == 201, await response.text()
    await _sign_in(browser)
    async with browser.get("/targets/eu-9?min_position=head") as resp:
        text = await resp.text()
    assert resp.status == 200 and "<dt>Credential</dt><dd><code>vault</code>" in text
    for leak in (credfiles.token("vault"), str(directory), "token_file", "eu-9.example"):
        assert leak not in text, leak


async def test_the_target_page_says_frozen_where_a_freeze_holds_a_deployment_and_why(live, browser):
    await _seed(live)  # the applier is off: every rollout waits (pending)
    now = dt.datetime.now(dt.UTC)
    response = await live.put("/v1/freezes/black-friday", json={"selector": "region=eu", "reason": "sales", "schedule": {
        "from": now.isoformat(), "until": (now + dt.timedelta(hours=2)).isoformat()}})
    assert response.status in (200, 201), await response.text()
    await _sign_in(browser)
    async with browser.get("/targets/eu-1?min_position=head") as resp:
        eu = await resp.text()
    async with browser.get("/targets/us-1") as resp:
        us = await resp.text()
    assert '<span class="st s-frozen">frozen</span>' in eu and "held by freeze black-friday until" in eu
    assert '<span class="st s-pending">pending</span>' in us and "s-frozen" not in us


async def test_a_paused_deployments_cells_say_paused_in_word_and_colour_and_are_counted(live, browser):
    await _seed(live)
    response = await live.post("/v1/deployments/web/pause", json={"reason": "incident"})
    assert response.status == 200, await response.text()
    await _sign_in(browser)
    async with browser.get(f"/fleet?min_position={(await response.json())['position']}") as resp:
        text = await resp.text()
    for target in ("eu-1", "us-1"):
        row = re.search(rf'<tr data-t="{target}">.*?</tr>', text, re.S).group(0)  # type: ignore[union-attr]
        assert '<td class="s-paused">paused</td>' in row and '<span class="n s-paused">1 paused</span>' in row
    column = re.search(r'<th scope="col" data-d="web">.*?</th>', text, re.S).group(0)  # type: ignore[union-attr]
    assert '<span class="st s-paused">paused</span>' in column and '<span class="n s-paused">2 paused</span>' in column
