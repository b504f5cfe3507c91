"""Web UI sessions outlive a restart of the service: a browser signed in before is still signed in
after, with the same CSRF token; what is stored is a hash of the session id (never the id, never
the token); sessions of revoked tokens and ended sessions are gone after a restart."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import aiohttp

from api import app as app_mod
from api.ui import sessions
from tests import servers
from tests.tokens_support import issue

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def _start(aiohttp_client: Any, settings: Any) -> Any:
    return await aiohttp_client(app_mod.make_app(settings.replace(projector=True, read_wait_timeout=20.0)))


async def _sign_in(client: Any, secret: str = servers.ADMIN_TOKEN) -> str:
    """Sign in as a browser does (no Authorization header); the session cookie's value."""
    async with aiohttp.ClientSession(str(client.make_url(""))) as browser:
        async with browser.post("/signin", data={"token": secret}, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            return resp.cookies[sessions.COOKIE].value


async def _as_browser(client: Any, sid: str, method: str = "GET", path: str = "/fleet",
                      data: dict[str, str] | None = None) -> tuple[int, str, str]:
    async with aiohttp.ClientSession(str(client.make_url(""))) as browser:
        async with browser.request(method, path, data=data, allow_redirects=False,
                                   headers={"Cookie": f"{sessions.COOKIE}={sid}"}) as resp:
            return resp.status, resp.headers.get("Location", ""), await resp.text()


async def test_a_restart_keeps_a_signed_in_browser_signed_in_with_the_same_csrf_token(aiohttp_client, settings, db):
    first = await _start(aiohttp_client, settings)
    sid = await _sign_in(first)
    status, _, page = await _as_browser(first, sid)
    assert status == 200
    csrf = _CSRF.search(page).group(1)  # type: ignore[union-attr]
    await first.close()

    second = await _start(aiohttp_client, settings)
    status, where, page = await _as_browser(second, sid)
    assert status == 200, where
    assert "admin-env" in page and _CSRF.search(page).group(1) == csrf  # type: ignore[union-attr]
    # Signing out after the restart ends the session, there and in the table.
    status, where, _ = await _as_browser(second, sid, "POST", "/signout", {"csrf": csrf})
    assert status == 303 and where == "/signin"
    assert await db.fetchval("SELECT count(*) FROM ui_sessions") == 0
    status, where, _ = await _as_browser(second, sid)
    assert status == 303 and where.startswith("/signin")


async def test_the_table_holds_a_hash_of_the_session_id_and_nothing_of_the_id_or_the_token(aiohttp_client, settings, db):
    client = await _start(aiohttp_client, settings)
    sid = await _sign_in(client)
    rows = await db.fetch("SELECT id_sha256, token_sha256, expires_at::text FROM ui_sessions")
    assert len(rows) == 1
    assert bytes(rows[0][0]) == hashlib.sha256(sid.encode()).digest()
    assert bytes(rows[0][1]) == hashlib.sha256(servers.ADMIN_TOKEN.encode()).digest()
    stored = b"".join(bytes(v) if isinstance(v, bytes) else str(v).encode() for v in rows[0])
    for secret in (sid, servers.ADMIN_TOKEN):
        assert secret.encode() not in stored and secret.encode().hex().encode() not in stored


async def test_after_a_restart_sessions_of_revoked_tokens_and_ended_sessions_are_gone(aiohttp_client, settings, db):
    first = await _start(aiohttp_client, settings)
    viewer = (await issue(first, "reader", "viewer"))["Authorization"].removeprefix("Bearer ")
    revoked = await _sign_in(first, viewer)
    ended = await _sign_in(first)
    kept = await _sign_in(first)
    assert (await first.delete("/v1/tokens/reader")).status == 200
    assert (await _as_browser(first, revoked))[0] == 303  # at once, before any restart
    await first.close()
    await db.execute("UPDATE ui_sessions SET expires_at = now() - interval '1 second' WHERE id_sha256 = $1",
                     hashlib.sha256(ended.encode()).digest())

    second = await _start(aiohttp_client, settings)
    assert (await _as_browser(second, kept))[0] == 200
    for gone in (revoked, ended):
        status, where, _ = await _as_browser(second, gone)
        assert status == 303 and where.startswith("/signin")
    left = await db.fetch("SELECT id_sha256 FROM ui_sessions")
    assert [bytes(r[0]) for r in left] == [hashlib.sha256(kept.encode()).digest()]


async def test_a_session_in_use_moves_its_stored_end_forward_and_an_unused_one_does_not(aiohttp_client, settings, db):
    client = await _start(aiohttp_client, settings)
    used, unused = await _sign_in(client), await _sign_in(client)
    await client.close()
    await db.execute("UPDATE ui_sessions SET expires_at = now() + interval '1 hour'")
    client = await _start(aiohttp_client, settings)
    assert (await _as_browser(client, used))[0] == 200
    ends = {bytes(r[0]): r[1] for r in await db.fetch(
        "SELECT id_sha256, expires_at - now() > interval '11 hours' FROM ui_sessions")}
    assert ends == {hashlib.sha256(used.encode()).digest(): True, hashlib.sha256(unused.encode()).digest(): False}
