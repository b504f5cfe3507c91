"""A rollout in waves on the deployment page, in a real browser (headless Chromium through
Playwright) against the real service with the applier and the rollout driver on emulated clusters:
the waves as they stand, an approval given by keyboard alone that records ApprovalGranted with the
typed reason, and the page following the rollout live to its end without a reload."""

from __future__ import annotations

from typing import Any

from tests.applier_support import emu  # noqa: F401 - fixture
from tests.test_ui_browser import FOCUSABLE, _events, _reached_by_tab, _seed, manifests
from tests.ui_support import shot, ui_fixture, until  # noqa: F401 - fixture

STRATEGY = {"waves": [{"name": "canary", "selector": "region=us"}, {"name": "rest"}], "approval": ["rest"]}


def _wave_state(wave: str) -> str:
    return f'#wave-table tr[data-wave="{wave}"] .wave-state'


async def _requested(ui) -> bool:
    return any(e["type"] == "ApprovalRequested" for e in await _events(ui, "rollout-web"))


async def test_a_waved_rollout_waits_for_approval_given_by_keyboard_and_the_page_follows_it_live(ui):
    await _seed(ui)
    response = await ui.client.post("/v1/deployments/web/revisions", json={
        "manifests": manifests("2"), "selector": "tier=edge", "message": "release 2", "strategy": STRATEGY})
    assert response.status == 201, await response.text()
    await until(lambda: _requested(ui), "the canary completed and wave rest asks for approval")

    page = await ui.page()
    await page.goto(ui.base + "/deployments/web")
    assert await page.inner_text(_wave_state("canary")) == "completed"
    assert await page.inner_text(_wave_state("rest")) == "awaiting approval"
    assert "waiting for approval" in await page.inner_text('#wave-table tr[data-wave="rest"] .approval')
    assert await page.inner_text('#wave-table tr[data-wave="canary"] .healthy') == "1 of 1"
    assert await page.inner_text("#t-us-1 .st") == "healthy"
    assert await page.inner_text("#t-eu-1 .st") == "pending"
    assert await page.inner_text("#t-eu-1 td:last-child") == "waits for wave rest (awaiting approval)"
    await shot(page, "deployment-waves", full_page=True)

    # Every control of the page, the rollout's included, is reached by Tab.
    reached = await _reached_by_tab(page)
    controls = await page.evaluate("(s) => Array.from(document.querySelectorAll(s))"
                                   ".filter(e => e.offsetParent !== null).map(e => e.dataset.k)", FOCUSABLE)
    assert not [k for k in controls if k not in reached]
    await page.goto(ui.base + "/deployments/web")
    await until(lambda: _live(page), "the page's live feed is open")

    # Approve by keyboard alone: Tab to the action, Enter opens it, Tab to the wave, Tab to the reason.
    await page.locator("body").focus()
    for _ in range(80):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.textContent.trim()") == "Approve…":
            break
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "approve-wave"
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "approve-reason"
    await page.keyboard.type("canary in us is healthy")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#recorded")
    assert "Recorded ApprovalGranted" in await page.inner_text("#recorded")
    assert await page.inner_text("#recorded .reason") == "canary in us is healthy"
    granted = [e for e in await _events(ui, "rollout-web") if e["type"] == "ApprovalGranted"]
    assert len(granted) == 1
    assert granted[0]["data"] == {**granted[0]["data"], "wave": "rest", "by": "admin-env",
                                  "reason": "canary in us is healthy"}
    assert granted[0]["metadata"]["reason"] == "canary in us is healthy"

    # From here the driver starts wave rest and completes the rollout; the page follows, no reload.
    await page.evaluate("window.__still_the_same_page = true")
    await page.wait_for_function(
        "() => document.querySelector('#wave-table tr[data-wave=\"rest\"] .wave-state').textContent === 'completed'"
        " && document.querySelector('#waves-title .st').textContent === 'completed'", timeout=30_000)
    assert "approved by admin-env" in await page.inner_text('#wave-table tr[data-wave="rest"] .approval')
    assert await page.evaluate("window.__still_the_same_page") is True
    assert ui.errors == [], "\n".join(ui.errors)


async def _live(page: Any) -> bool:
    return (await page.inner_text("#live")) == "live"
