"""The web UI under test: the service (projector and applier on) serving emulated clusters over
real HTTP, and a headless Chromium driven by Playwright on the same event loop.

Every page the tests open is watched for console errors and uncaught exceptions (``Watched``);
``shot`` saves a screenshot under docs/images/ for the README.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from api import app as app_mod
from tests import applier_support, browser, servers

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
DESKTOP = ViewportSize(width=1280, height=860)
PHONE = ViewportSize(width=390, height=844)


@dataclass
class UI:
    client: Any  # the aiohttp TestClient, authenticated as the suite's admin
    emu: Any
    browser: Browser
    base: str
    errors: list[str] = field(default_factory=list)

    async def page(self, *, viewport: ViewportSize | None = None, sign_in: bool = True) -> Page:
        context = await self.browser.new_context(viewport=viewport or DESKTOP)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", lambda m: self.errors.append(f"{page.url}: console {m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: uncaught {e}"))
        if sign_in:
            await page.goto(self.base + "/signin")
            await page.fill("#token", servers.ADMIN_TOKEN)
            await page.click("button[type=submit]")
            await page.wait_for_url("**/fleet")
        return page


@pytest_asyncio.fixture(name="ui")
async def ui_fixture(aiohttp_client: Any, settings: Any, emu: Any, database_url: str) -> AsyncIterator[UI]:
    app = app_mod.make_app(applier_support.fast(settings, projector=True, read_wait_timeout=20.0))
    client = await aiohttp_client(app)
    base = str(client.make_url("")).rstrip("/")
    executable = browser.executable()
    async with async_playwright() as p:
        chromium = await p.chromium.launch(
            executable_path=str(executable) if executable else None, args=browser.ARGS, headless=True)
        try:
            yield UI(client, emu, chromium, base)
        finally:
            await chromium.close()
    await client.close()


async def shot(page: Page, name: str, *, full_page: bool = False) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(IMAGES / f"{name}.png"), full_page=full_page)


async def until(check: Any, what: str, timeout: float = 20.0) -> Any:
    return await applier_support.eventually(check, timeout=timeout, what=what)


async def settle() -> None:
    await asyncio.sleep(0)
