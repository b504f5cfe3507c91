"""What a cluster answers enters the public log bounded and sanitised: the HTTP status, the
Kubernetes Status.message (up to a bound) and a few hundred characters of anything else, never an
HTML page, never control characters. Driven through the applier and the real kubernetes-asyncio
client, against the emulator's injected faults and a loopback server that is no API server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from emulator import Emulator, Fault
from handlers import errors
from ledger import events
from ledger import settings as settings_mod
from tests import credfiles
from tests.applier_support import (
    append,
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    namespace,
    outcomes,
    register,
    submit,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(60)

CONFIGMAPS = "/api/v1/namespaces/apps/configmaps"
SECRET_IN_PAGE = "session-cookie-4f2a"
HTML_PAGE = ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title><script>var t='"
             + SECRET_IN_PAGE + "';</script></head><body>\n" + "<p>upstream unavailable</p>\n" * 5000
             + "</body></html>")
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings)


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[str]:
    """A loopback server in front of nothing: every request gets a large HTML error page."""

    async def page(_request: web.Request) -> web.Response:
        return web.Response(status=502, text=HTML_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _failures(db: Any, target: str) -> list[dict[str, Any]] | None:
    found = [o for o in await outcomes(db, "web") if o["type"] == "ApplyFailed" and o["target"] == target]
    return found or None


async def test_an_html_error_page_never_enters_the_log(store, db, gateway: str, tmp_path: Path):
    credfiles.add(tmp_path, proxied={"server": gateway, "anonymous": True})
    await append(store, events.TargetRegistered(target="proxied", labels={"region": "eu"}, credentials="proxied"))
    await submit(store, "web", [configmap("a", namespace="default")], "region=eu")
    failed = (await eventually(lambda: _failures(db, "proxied")))[0]
    assert failed["status"] == 502 and failed["retryable"]
    assert "text/html" in failed["error"] and "bytes" in failed["error"]
    assert "<" not in failed["error"] and SECRET_IN_PAGE not in failed["error"]
    assert len(failed["error"]) <= errors.EXCERPT_MAX
    stored = await db.fetchval("SELECT data::text FROM events WHERE type = 'ApplyFailed'")
    assert SECRET_IN_PAGE not in stored and "upstream unavailable" not in stored


async def test_a_status_message_is_kept_bounded_and_on_one_line(store, db, emu: Emulator):  # noqa: F811
    said = "admission webhook \"policy.example\" denied the request:\n\x1b[31mimage not allowed\x1b[0m\u202e "
    emu.cluster("eu-1").add_fault(Fault(status=403, method="PATCH", path=CONFIGMAPS,
                                        message=said + "x" * 20_000))
    await register(store, emu, "eu-1", region="eu")
    await submit(store, "web", [namespace(), configmap("a")], "region=eu")
    failed = (await eventually(lambda: _failures(db, "eu-1")))[0]
    assert failed["status"] == 403 and not failed["retryable"]
    assert failed["error"].startswith('admission webhook "policy.example" denied the request: [31mimage not allowed')
    assert len(failed["error"]) <= errors.STATUS_MESSAGE_MAX
    assert not UNPRINTABLE.search(failed["error"])


def test_anything_but_a_status_is_cut_to_an_excerpt_and_markup_is_never_quoted():
    plain = errors.from_status(503, errors.decode_body(b"upstream connect error\r\n" + b"y" * 5000, "text/plain"))
    assert plain.message.startswith("HTTP 503: upstream connect error y") and len(plain.message) <= 320
    not_status = errors.from_status(400, {"message": "z" * 5000, "error": "bad"})
    assert len(not_status.message) <= errors.EXCERPT_MAX
    xml = errors.from_status(500, errors.decode_body(b"<?xml version='1.0'?><Error>secret</Error>", None))
    assert "secret" not in xml.message and "<" not in xml.message
    sneaky = errors.from_status(500, errors.decode_body(b"  <html>hidden</html>", "text/plain"))
    assert "hidden" not in sneaky.message
