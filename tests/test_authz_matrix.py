"""The route x role matrix, generated from the application's router: every route has a policy row,
every role gets exactly what the row allows (2xx), every refusal is 401 or 403 problem+json and
writes nothing. A route added without a row, or without a sample request here, fails this suite."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from api import keys, policy
from ledger import events, records, secrets
from tests import credfiles, servers
from tests.projected import live_client, manifests, register, submit  # noqa: F401 - fixture
from tests.tokens_support import bearer, issue

ROLES = list(events.ROLES)
Sample = Callable[[Any, str], Awaitable[tuple[str, Any]]]
_counter = itertools.count()


async def _plain(path: str) -> tuple[str, Any]:
    return path, None


def _get(path: str) -> Sample:
    async def sample(_live: Any, _n: str) -> tuple[str, Any]:
        return path, None
    return sample


async def _put_target(live: Any, n: str) -> tuple[str, Any]:
    credfiles.add_anonymous(live.app[keys.SETTINGS], "t")
    return f"/v1/targets/t{n}", {"labels": {"region": "eu"}, "credentials": "t"}


async def _retire_target(live: Any, n: str) -> tuple[str, Any]:
    await register(live, f"t{n}", region="eu")
    return f"/v1/targets/t{n}", None


async def _append(live: Any, n: str) -> tuple[str, Any]:
    credfiles.add_anonymous(live.app[keys.SETTINGS], "g")
    return f"/v1/streams/target-g{n}/events", {"events": [
        {"type": "TargetRegistered", "data": {"target": f"g{n}", "credentials": "g"}}]}


async def _revision(_live: Any, n: str) -> tuple[str, Any]:
    return f"/v1/deployments/d{n}/revisions", {"manifests": manifests(name=f"d{n}"), "selector": ""}


async def _rollback(live: Any, n: str) -> tuple[str, Any]:
    await submit(live, f"d{n}", "", "1")
    await submit(live, f"d{n}", "", "2")
    return f"/v1/deployments/d{n}/rollback", {"to_revision": 1}


async def _pause(live: Any, n: str) -> tuple[str, Any]:
    await submit(live, f"d{n}", "")
    return f"/v1/deployments/d{n}/pause", {"reason": "matrix"}


async def _resume(live: Any, n: str) -> tuple[str, Any]:
    await submit(live, f"d{n}", "")
    assert (await live.post(f"/v1/deployments/d{n}/pause", json={})).status == 200
    return f"/v1/deployments/d{n}/resume", {}


async def _remove(live: Any, n: str) -> tuple[str, Any]:
    await submit(live, f"d{n}", "")
    return f"/v1/deployments/d{n}", None


WAVES: Any = {"waves": [{"name": "a", "selector": "none=here"}, {"name": "b"}], "approval": ["a"],
              "soak_seconds": 3600}


async def _approve(live: Any, n: str) -> tuple[str, Any]:
    await submit(live, f"d{n}", "", strategy=WAVES)
    return f"/v1/deployments/d{n}/approve", {"wave": "a", "reason": "matrix"}


async def _promote(live: Any, n: str) -> tuple[str, Any]:
    await submit(live, f"d{n}", "", strategy=WAVES)
    done = [events.WaveStarted(deployment=f"d{n}", revision=1, wave="a"),
            events.WaveCompleted(deployment=f"d{n}", revision=1, wave="a")]
    await live.app[keys.STORE].append(f"rollout-d{n}", "any", [records.NewEvent(
        uuid.uuid4(), events.type_name(e), events.to_data(e), {"actor": "ledger"}) for e in done])
    return f"/v1/deployments/d{n}/promote", {"wave": "b"}


async def _halt(live: Any, n: str) -> tuple[str, Any]:
    await submit(live, f"d{n}", "", strategy=WAVES)
    return f"/v1/deployments/d{n}/halt", {"reason": "matrix"}


async def _issue(_live: Any, n: str) -> tuple[str, Any]:
    return "/v1/tokens", {"name": f"k{n}", "role": "viewer"}


async def _revoke(live: Any, n: str) -> tuple[str, Any]:
    await issue(live, f"k{n}", "viewer")
    return f"/v1/tokens/k{n}", None


def _freeze_body() -> dict[str, Any]:
    """A freeze of the coming day over no target (so that it holds up no other sample)."""
    now = dt.datetime.now(dt.UTC)
    return {"selector": "matrix=none", "reason": "matrix", "schedule": {
        "from": now.isoformat(), "until": (now + dt.timedelta(days=1)).isoformat()}}


async def _set_freeze(_live: Any, n: str) -> tuple[str, Any]:
    return f"/v1/freezes/f{n}", _freeze_body()


async def _remove_freeze(live: Any, n: str) -> tuple[str, Any]:
    assert (await live.put(f"/v1/freezes/f{n}", json=_freeze_body())).status == 201
    return f"/v1/freezes/f{n}", None
class Form(dict[str, str]):
    """A body sent as an HTML form (the web UI's pages), not as JSON."""


def _form(path: str, **fields: str) -> Sample:
    async def sample(_live: Any, _n: str) -> tuple[str, Any]:
        return path, Form(fields)
    return sample


async def _ui_rollback(live: Any, n: str) -> tuple[str, Any]:
    await submit(live, f"u{n}", "", "1")
    await submit(live, f"u{n}", "", "2")
    return f"/deployments/u{n}/rollback", Form(to_revision="1", reason="matrix")


async def _ui_pause(live: Any, n: str) -> tuple[str, Any]:
    await submit(live, f"u{n}", "")
    return f"/deployments/u{n}/pause", Form(reason="matrix")


async def _ui_resume(live: Any, n: str) -> tuple[str, Any]:
    await submit(live, f"u{n}", "")
    assert (await live.post(f"/v1/deployments/u{n}/pause", json={})).status == 200
    return f"/deployments/u{n}/resume", Form(reason="matrix")


async def _ui_approve(live: Any, n: str) -> tuple[str, Any]:
    _, body = await _approve(live, n)
    return f"/deployments/d{n}/approve", Form(wave=body["wave"], reason="matrix")


async def _ui_promote(live: Any, n: str) -> tuple[str, Any]:
    _, body = await _promote(live, n)
    return f"/deployments/d{n}/promote", Form(wave=body["wave"], reason="matrix")


async def _ui_halt(live: Any, n: str) -> tuple[str, Any]:
    await _halt(live, n)
    return f"/deployments/d{n}/halt", Form(reason="matrix")


HEAD = "min_position=head"
SAMPLES: dict[tuple[str, str], Sample] = {
    ("GET", "/healthz"): _get("/healthz"),
    ("GET", "/readyz"): _get("/readyz"),
    ("GET", "/metrics"): _get("/metrics"),
    ("GET", "/openapi.json"): _get("/openapi.json"),
    ("GET", "/api"): _get("/api"),
    ("GET", "/api/assets/{asset}"): _get("/api/assets/reference.js"),
    ("POST", "/v1/streams/{stream}/events"): _append,
    ("GET", "/v1/streams/{stream}"): _get("/v1/streams/target-seed"),
    ("GET", "/v1/events"): _get("/v1/events"),
    ("GET", "/v1/feed"): _get("/v1/feed"),
    ("GET", "/v1/feed/live"): _get("/v1/feed/live?after=0"),
    ("GET", "/v1/verify"): _get("/v1/verify"),
    ("GET", "/v1/digest"): _get("/v1/digest"),
    ("GET", "/v1/state"): _get("/v1/state"),
    ("PUT", "/v1/targets/{name}"): _put_target,
    ("DELETE", "/v1/targets/{name}"): _retire_target,
    ("GET", "/v1/targets"): _get(f"/v1/targets?{HEAD}"),
    ("GET", "/v1/targets/{name}"): _get(f"/v1/targets/seed?{HEAD}"),
    ("POST", "/v1/deployments/{name}/revisions"): _revision,
    ("POST", "/v1/deployments/{name}/rollback"): _rollback,
    ("POST", "/v1/deployments/{name}/pause"): _pause,
    ("POST", "/v1/deployments/{name}/resume"): _resume,
    ("DELETE", "/v1/deployments/{name}"): _remove,
    ("POST", "/v1/deployments/{name}/approve"): _approve,
    ("POST", "/v1/deployments/{name}/promote"): _promote,
    ("POST", "/v1/deployments/{name}/halt"): _halt,
    ("GET", "/v1/deployments/{name}/rollout"): _get("/v1/deployments/web/rollout"),
    ("GET", "/v1/deployments"): _get(f"/v1/deployments?{HEAD}"),
    ("GET", "/v1/deployments/{name}"): _get(f"/v1/deployments/web?{HEAD}"),
    ("GET", "/v1/deployments/{name}/revisions"): _get(f"/v1/deployments/web/revisions?{HEAD}"),
    ("GET", "/v1/deployments/{name}/revisions/{number}"): _get(f"/v1/deployments/web/revisions/1?{HEAD}"),
    ("GET", "/v1/deployments/{name}/diff"): _get(f"/v1/deployments/web/diff?{HEAD}"),
    ("POST", "/v1/tokens"): _issue,
    ("GET", "/v1/tokens"): _get("/v1/tokens"),
    ("GET", "/v1/tokens/{name}"): _get("/v1/tokens/seed"),
    ("DELETE", "/v1/tokens/{name}"): _revoke,
    ("PUT", "/v1/freezes/{name}"): _set_freeze,
    ("DELETE", "/v1/freezes/{name}"): _remove_freeze,
    ("GET", "/v1/freezes"): _get("/v1/freezes"),
    ("GET", "/"): _get("/"),
    ("GET", "/signin"): _get("/signin"),
    ("POST", "/signin"): _form("/signin", token=servers.ADMIN_TOKEN),
    ("POST", "/signout"): _form("/signout"),
    ("GET", "/ui/assets/{asset}"): _get("/ui/assets/app.css"),
    ("GET", "/fleet"): _get("/fleet"),
    ("GET", "/fleet/matrix"): _get("/fleet/matrix?group=region"),
    ("GET", "/deployments/{name}"): _get("/deployments/web"),
    ("POST", "/deployments/{name}/rollback"): _ui_rollback,
    ("POST", "/deployments/{name}/pause"): _ui_pause,
    ("POST", "/deployments/{name}/resume"): _ui_resume,
    ("POST", "/deployments/{name}/approve"): _ui_approve,
    ("POST", "/deployments/{name}/promote"): _ui_promote,
    ("POST", "/deployments/{name}/halt"): _ui_halt,
    ("GET", "/targets/{name}"): _get("/targets/seed"),
    ("GET", "/timeline"): _get("/timeline"),
    ("GET", "/timeline/rows"): _get("/timeline/rows?after=0"),
    ("GET", "/audit"): _get("/audit?at=1"),
    ("GET", "/audit/digest"): _get("/audit/digest"),
}


def _refusal_type(method: str, template: str) -> str:
    return "text/html" if policy.is_page(method, template) else "application/problem+json"


def _routes(app: Any) -> list[tuple[str, str]]:
    return sorted({(r.method, r.resource.canonical) for r in app.router.routes()})


async def _count(db: Any) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


async def _call(live: Any, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    if path.startswith("/v1/feed/live"):
        headers = {**headers, "Connection": "close"}  # an event stream never ends: status, then drop it
    if isinstance(body, Form):
        response = await live.request(method, path, data=dict(body), headers=headers)
    else:
        response = await live.request(method, path, json=body, headers=headers)
    try:
        status = response.status
        text = "" if method == "HEAD" or path.startswith("/v1/feed/live") else await response.text()
        return status, (response.headers, text)
    finally:
        response.close()


@pytest.fixture
async def seeded(live):
    await register(live, "seed", region="eu")
    await submit(live, "web", "region=eu")
    await issue(live, "seed", "viewer")
    holders = {role: await issue(live, f"as-{role}", role) for role in ROLES}
    return live, holders


def test_every_route_of_the_application_has_a_policy_row_and_a_sample(app):
    missing_rule = [(m, p) for m, p in _routes(app) if policy.rule_for(m, p) is None]
    assert missing_rule == [], "routes without an access rule (add them to api/policy.py)"
    missing_sample = [(m, p) for m, p in _routes(app) if (("GET" if m == "HEAD" else m), p) not in SAMPLES]
    assert missing_sample == [], "routes without a sample request in this test"
    stale = set(policy.RULES).difference((("GET" if m == "HEAD" else m), p) for m, p in _routes(app))
    assert stale == set(), "policy rows for routes the application does not have"


async def test_each_role_gets_exactly_what_the_policy_allows_and_refusals_write_nothing(seeded, db):
    live, holders = seeded
    allowed = refused = 0
    for (method, template), role in itertools.product(_routes(live.app), ROLES):
        rule = policy.rule_for(method, template)
        assert rule is not None
        path, body = await SAMPLES["GET" if method == "HEAD" else method, template](live, str(next(_counter)))
        before = await _count(db)
        status, (headers, text) = await _call(live, method, path, body, holders[role])
        if policy.allows(role, rule.permission):
            assert 200 <= status < 300, f"{role} {method} {path}: {status} {text}"
            allowed += 1
        else:
            assert status == 403, f"{role} {method} {path}: {status} {text}"
            # A page of the web UI refuses with an HTML page saying the same.
            assert headers["Content-Type"].split(";")[0] == _refusal_type(method, template)
            if method != "HEAD":
                assert rule.permission in text and role in text
            assert await _count(db) == before, f"{role} {method} {path} wrote although refused"
            refused += 1
    assert allowed and refused


async def test_without_a_valid_token_every_non_public_route_is_401_and_writes_nothing(seeded, db, store):
    live, _ = seeded
    revoked = await issue(live, "gone", "admin")
    assert (await live.delete("/v1/tokens/gone")).status == 200
    expired_secret = secrets.new()
    expired = events.TokenIssued(
        name="old", role="admin", secret_sha256=secrets.digest(expired_secret).hex(),
        fingerprint=secrets.fingerprint(secrets.digest(expired_secret)),
        expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    await store.append("token-old", "no_stream", [records.NewEvent(
        uuid.uuid4(), "TokenIssued", events.to_data(expired), {"actor": "test"})])
    # The expired token reaches the table through the log, as in any other process.
    await _until_status(live, "/v1/tokens", bearer(expired_secret), 401, "expired")
    cases = {
        "missing": {"Authorization": ""},
        "malformed": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "empty bearer": {"Authorization": "Bearer "},
        "unknown": bearer(secrets.new()),
        "expired": bearer(expired_secret),
        "revoked": revoked,
    }
    checked = 0
    for method, template in _routes(live.app):
        rule = policy.rule_for(method, template)
        assert rule is not None
        if rule.permission == "public":
            continue
        path, body = await SAMPLES["GET" if method == "HEAD" else method, template](live, str(next(_counter)))
        for case, headers in cases.items():
            before = await _count(db)
            status, (answer_headers, text) = await _call(live, method, path, body, headers)
            assert status == 401, f"{case}: {method} {path}: {status} {text}"
            assert answer_headers["WWW-Authenticate"].startswith("Bearer")
            assert answer_headers["Content-Type"].split(";")[0] == _refusal_type(method, template)
            assert await _count(db) == before
            checked += 1
    assert checked > 0


async def test_public_routes_need_no_token(seeded):
    live, _ = seeded
    for path in ("/healthz", "/readyz"):
        response = await live.get(path, headers={"Authorization": ""})
        assert response.status == 200


async def _until_status(live: Any, path: str, headers: dict[str, str], status: int, text: str = "") -> None:
    import asyncio

    async def wait() -> None:
        while True:
            response = await live.get(path, headers=headers)
            if response.status == status and text in await response.text():
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(wait(), 5)


def test_docs_security_shows_the_policy_as_it_is():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text()
    assert policy.markdown_table() in text, "docs/security.md: regenerate the table from api/policy.py"


async def test_a_route_without_a_policy_row_is_denied_even_to_an_admin(aiohttp_client, settings):
    from aiohttp import web

    from api import app as app_mod

    app = app_mod.make_app(settings)
    called = []

    async def unruled(_request):
        called.append(True)
        return web.json_response({})

    app.router.add_get("/v1/unruled", unruled)
    client = await aiohttp_client(app)
    response = await client.get("/v1/unruled")
    assert response.status == 403 and "no access rule" in (await response.json())["detail"]
    assert (await client.get("/v1/unruled", headers={"Authorization": ""})).status == 401
    assert called == []
    assert (await client.get("/v1/no-such-route")).status == 404
    assert (await client.get("/v1/no-such-route", headers={"Authorization": ""})).status == 401
