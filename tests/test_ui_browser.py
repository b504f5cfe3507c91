"""The web UI in a real browser (headless Chromium through Playwright) against the real service:
sign-in, the fleet matrix of what the emulator applied, live cells, a rollback by its button, the
diff, the audit page at an earlier time, no console errors on any page, and every action by
keyboard. Screenshots of each page land in docs/images/ (shown in the README)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests import servers
from tests.applier_support import emu  # noqa: F401 - fixture
from tests.ui_support import PHONE, shot, ui_fixture, until  # noqa: F401 - fixture

TARGETS = ("eu-1", "eu-2", "us-1")


def manifests(value: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "apps"},
             "data": {"k": value}}]


async def _seed(ui, revisions: int = 1) -> None:
    for name in TARGETS:
        response = await ui.client.put(f"/v1/targets/{name}", json={
            "labels": {"region": name.split("-")[0], "tier": "edge"}, "credentials": name})
        assert response.status == 201, await response.text()
    for revision in range(1, revisions + 1):
        await _submit(ui, str(revision), message=f"release {revision}")


async def _submit(ui, value: str, message: str = "", selector: str = "tier=edge") -> dict[str, Any]:
    response = await ui.client.post("/v1/deployments/web/revisions", json={
        "manifests": manifests(value), "selector": selector, "message": message})
    assert response.status == 201, await response.text()
    body = await response.json()
    await _applied(ui, body["revision"])
    return body


# What the applier reaches once a revision is applied: progressing while its objects are followed,
# then healthy (or degraded) when a verdict is recorded.
APPLIED = ("progressing", "healthy")


async def _applied(ui, revision: int) -> None:
    async def done() -> bool:
        response = await ui.client.get("/v1/deployments/web")
        body = await response.json()
        return body["current_revision"] == revision and all(
            r["state"] in APPLIED and r["applied_revision"] == revision for r in body["rollouts"])
    await until(done, f"revision {revision} applied on every target")


async def _states(ui) -> dict[str, str]:
    body = await (await ui.client.get("/v1/deployments/web")).json()
    return {r["target"]: r["state"] for r in body["rollouts"]}


def _cell(target: str) -> str:
    return f'#matrix tr[data-t="{target}"] td'


async def _events(ui, stream: str) -> list[dict[str, Any]]:
    response = await ui.client.get(f"/v1/streams/{stream}")
    return (await response.json())["events"]


async def test_sign_in_with_a_token_and_a_bad_token_is_refused(ui):
    page = await ui.page(sign_in=False)
    await page.goto(ui.base + "/fleet")
    assert page.url.endswith("/signin?next=/fleet")
    await page.fill("#token", "not-a-token-at-all")
    await page.click("button[type=submit]")
    assert "the token is not known" in await page.inner_text("#refused")
    cookies = await page.context.cookies()
    assert not [c for c in cookies if c["name"] == "ledger_session"]
    await shot(page, "signin")
    await page.fill("#token", servers.ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/fleet")
    assert "admin-env" in await page.inner_text("header .who")
    session = [c for c in await page.context.cookies() if c["name"] == "ledger_session"]
    assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
    assert servers.ADMIN_TOKEN not in session[0]["value"]
    # The refusal is a 401, which the browser reports on its console once; nothing else may be there.
    assert len(ui.errors) <= 1 and all("status of 401" in e for e in ui.errors), ui.errors


async def test_the_fleet_matrix_shows_what_the_emulator_applied_and_a_cell_changes_live(ui):
    await _seed(ui)
    assert ui.emu.cluster("eu-1").get("v1", "ConfigMap", "apps", "web") is not None
    page = await ui.page()
    states = await _states(ui)
    for target in TARGETS:
        cell = page.locator(_cell(target)).first
        assert states[target] in APPLIED
        await page.wait_for_function(
            "([t, s]) => document.querySelector(`#matrix tr[data-t=\"${t}\"] td`).textContent === s",
            arg=[target, (await _states(ui))[target]])
        assert await cell.get_attribute("class") == f"s-{await cell.inner_text()}"
    assert await page.inner_text('#matrix th[data-d="web"] .rev') == "r1"
    await page.evaluate("window.__still_the_same_page = true")
    await until(lambda: _live(page), "the page's live feed is open")
    await shot(page, "fleet")
    # Revision 2 leaves us-1 (its selector takes region=eu only): that cell empties, live.
    await _submit(ui, "2", message="release 2", selector="region=eu")
    await page.wait_for_function("""() => {
        const cell = document.querySelector('#matrix tr[data-t="us-1"] td');
        return cell.textContent === '' && !cell.className
            && document.querySelector('#matrix th[data-d="web"] .rev').textContent === 'r2';
    }""")
    assert await page.locator(_cell("eu-1")).first.inner_text() in (*APPLIED, "pending")
    assert await page.evaluate("window.__still_the_same_page") is True
    assert ui.errors == []


async def _live(page) -> bool:
    return (await page.inner_text("#live")) == "live"


async def test_a_rollback_through_the_button_records_rolled_back_with_the_typed_reason(ui):
    await _seed(ui, revisions=2)
    page = await ui.page()
    await page.goto(ui.base + "/deployments/web")
    await page.click("#rollback summary")
    await page.select_option("#rollback-to", "1")
    await page.fill("#rollback-reason", "r2 breaks checkout")
    await page.click("#rollback button[type=submit]")
    await page.wait_for_selector("#recorded")
    assert "Recorded RolledBack" in await page.inner_text("#recorded")
    assert "r2 breaks checkout" in await page.inner_text("#recorded .reason")
    last = (await _events(ui, "deployment-web"))[-1]
    assert last["type"] == "RolledBack"
    assert last["data"]["to_revision"] == 1 and last["data"]["message"] == "r2 breaks checkout"
    assert last["metadata"]["reason"] == "r2 breaks checkout" and last["metadata"]["actor"] == "admin-env"
    await _applied(ui, 3)
    await page.goto(ui.base + "/deployments/web")
    await shot(page, "deployment", full_page=True)
    assert ui.errors == []


async def test_the_diff_shows_the_changed_line(ui):
    await _seed(ui, revisions=2)
    page = await ui.page()
    await page.goto(ui.base + "/deployments/web?from=1&to=2#diff")
    added = await page.locator(".diff .add").all_inner_texts()
    removed = await page.locator(".diff .del").all_inner_texts()
    assert "+  k: '2'" in added and "-  k: '1'" in removed
    assert ui.errors == []


async def test_the_audit_page_at_an_earlier_time_shows_the_earlier_revision(ui):
    await _seed(ui)
    first = (await _events(ui, "deployment-web"))[-1]
    await _submit(ui, "2")
    second = (await _events(ui, "deployment-web"))[-1]
    moment = dt.datetime.fromisoformat(second["recorded_at"]).replace(microsecond=0) \
        if False else dt.datetime.fromisoformat(second["recorded_at"]) - dt.timedelta(milliseconds=1)
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert moment >= dt.datetime.fromisoformat(first["recorded_at"])
    page = await ui.page()
    await page.goto(ui.base + "/audit")
    assert await page.inner_text('#audit-deployments tr[data-d="web"] .revision') == "r2"
    await page.fill("#at-datetime", moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3])
    await page.click("#at-time button[type=submit]")
    await page.wait_for_url("**/audit?at=*")
    assert await page.inner_text('#audit-deployments tr[data-d="web"] .revision') == "r1"
    assert ui.errors == []


async def test_no_page_logs_a_console_error_and_each_is_photographed(ui):
    await _seed(ui, revisions=2)
    page = await ui.page()
    pages = {
        "fleet-grouped": "/fleet?group=region",
        "target": "/targets/eu-1",
        "timeline": "/timeline",
        "audit": "/audit?since=0&verify=1",
        "deployment-diff": "/deployments/web?from=1&to=2#diff",
    }
    for name, path in pages.items():
        await page.goto(ui.base + path)
        await page.wait_for_load_state("networkidle")
        await shot(page, name)
    phone = await ui.page(viewport=PHONE)
    await phone.goto(ui.base + "/fleet")
    await shot(phone, "fleet-phone")
    for path in ("/fleet", "/deployments/web", "/timeline?type=RevisionSubmitted", "/fleet?selector=region%3Deu",
                 "/audit?at=1"):
        await page.goto(ui.base + path)
        await page.wait_for_load_state("networkidle")
    assert ui.errors == [], "\n".join(ui.errors)


FOCUSABLE = "a[href], button, summary, input:not([type=hidden]), select, textarea"


async def _reached_by_tab(page, limit: int = 400) -> set[str]:
    """Open every <details>, then Tab through the page; returns the ids of what took focus."""
    await page.evaluate("""(focusable) => {
        document.querySelectorAll('details').forEach(d => d.open = true);
        let n = 0;
        document.querySelectorAll(focusable).forEach(e => { if (!e.dataset.k) e.dataset.k = String(n++); });
    }""", FOCUSABLE)
    seen: list[str] = []
    await page.locator("body").focus()
    for _ in range(limit):
        await page.keyboard.press("Tab")
        key = await page.evaluate("document.activeElement && document.activeElement.dataset.k")
        if key is None or (seen and key == seen[-1]):
            continue  # outside the controls, or the next part of one (a date-time field's parts)
        if key == (seen[0] if seen else None):
            break  # round the page once
        seen.append(key)
    return set(seen)


async def test_every_action_is_reachable_by_keyboard_and_works_from_it(ui):
    await _seed(ui, revisions=2)
    page = await ui.page()
    for path in ("/fleet", "/deployments/web", "/targets/eu-1", "/timeline", "/audit"):
        await page.goto(ui.base + path)
        reached = await _reached_by_tab(page)
        controls = await page.evaluate("(s) => Array.from(document.querySelectorAll(s))"
                                       ".filter(e => e.offsetParent !== null).map(e => e.dataset.k)", FOCUSABLE)
        missed = [k for k in controls if k not in reached]
        assert not missed, f"{path}: controls Tab never reaches: {missed}"
    # Pause by keyboard alone: Tab to the action, Enter opens it, type the reason, Enter submits.
    await page.goto(ui.base + "/deployments/web")
    await page.locator("body").focus()
    for _ in range(60):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.textContent.trim()") == "Pause…":
            break
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "pause-reason"
    await page.keyboard.type("maintenance window")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#recorded")
    last = (await _events(ui, "deployment-web"))[-1]
    assert last["type"] == "DeploymentPaused" and last["data"]["reason"] == "maintenance window"
    assert ui.errors == []


async def test_a_viewer_is_not_offered_the_actions(ui):
    await _seed(ui)
    response = await ui.client.post("/v1/tokens", json={"name": "watcher", "role": "viewer"})
    secret = (await response.json())["token"]
    page = await ui.page(sign_in=False)
    await page.goto(ui.base + "/signin")
    await page.fill("#token", secret)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/fleet")
    await page.goto(ui.base + "/deployments/web")
    assert await page.locator("details.action").count() == 0
    assert await page.locator("form[action$='/rollback']").count() == 0
    assert ui.errors == []
