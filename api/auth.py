"""Authentication and authorization of every request: bearer tokens checked in memory against the
policy table (api/policy.py), and the token table kept current from the log.

Decisions:

- **No database round trip per request.** The token table (projections/tokens.py) is folded from
  the ``token-*`` streams at start-up and then followed: woken by the store's notifier on every
  committed batch (at most every ``_SETTLE`` seconds under load, so a busy log costs a few cheap
  reads a second) and, should notifications be lost, every ``_POLL`` seconds anyway. A revocation
  thus reaches every process well within 1 s.
- **Deny by default.** A route of the application without a policy row is refused (403) to every
  token; a request for no route at all (404/405) needs a valid token first, so the API's shape is
  not shown to strangers.
- **401 vs 403.** No token, a malformed header, an unknown, expired or revoked token: 401 with
  ``WWW-Authenticate: Bearer``. A valid token without the permission, or outside its scope: 403
  naming what is missing. Both before the handler runs, so nothing is read or written.
- **The actor is the token's name** (:func:`actor`); ``X-Actor`` is only a claim, recorded as
  ``on_behalf_of``.
- **Pages** of the web UI (``page`` rows, and ``GET /v1/feed/live``, which they read with an
  EventSource) also accept the session cookie the UI's sign-in sets (api/ui/sessions.py installs
  the lookup under ``SESSIONS``); a session acts with the role and scope of the token it was
  signed in with, and ends when that token is revoked or expires. Without either, a page redirects
  to the sign-in page rather than answering 401.
- **Bootstrap.** A process that starts with no active admin token in the log and no
  ``LEDGER_ADMIN_TOKEN`` issues one named ``admin`` and writes its secret to
  ``<data dir>/admin.token`` (mode 0600), logging the file's path, never the secret. The file is
  written before the event is appended and moved into place after, so a crash in between never
  leaves an admin token whose secret nobody has.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import quote

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from api import keys, policy, problems
from ledger import errors, events, ids, records, secrets, tasks
from ledger import store as store_mod
from projections import tokens

log = logging.getLogger(__name__)

PRINCIPAL: Final = web.RequestKey("principal", tokens.Token)
# Set on a request authenticated by its session cookie rather than an Authorization header: its
# state-changing forms must then carry the session's CSRF token (api/ui/sessions.py).
BY_SESSION: Final = web.RequestKey("by_session", bool)
RULES: Final = web.AppKey("policy_rules", dict[AbstractRoute, policy.Rule])
ADMIN_FILE: Final = "admin.token"
BOOTSTRAP_NAME: Final = "admin"
SYSTEM_ACTOR: Final = "ledger"
_POLL: Final = 0.5
_SETTLE: Final = 0.2
_PAGE: Final = 500


class SessionLookup(Protocol):
    def __call__(self, request: web.Request) -> tokens.Token | None: ...


SESSIONS: Final = web.AppKey("session_lookup", SessionLookup)
SIGN_IN: Final = "/signin"


def principal(request: web.Request) -> tokens.Token:
    """The token that authenticated ``request`` (every route but the public ones has one)."""
    return request[PRINCIPAL]


def actor(request: web.Request) -> str | None:
    """Who acts, as recorded in every event's metadata: the name of the request's token."""
    found = request.get(PRINCIPAL)
    return found.name if found is not None else None


def on_behalf_of(request: web.Request) -> str | None:
    return request.headers.get("X-Actor") or None


def unauthenticated(detail: str) -> problems.Problem:
    return problems.Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="ledger"'})


def forbidden(detail: str, *, field: str | None = None, **extra: Any) -> problems.Problem:
    return problems.Problem(403, "Forbidden", detail, field=field, **extra)


def install(app: web.Application) -> None:
    """Map every route of ``app`` to its policy row; call once all routes are added."""
    settings = app[keys.SETTINGS]
    found: dict[AbstractRoute, policy.Rule] = {}
    for route in app.router.routes():
        rule = policy.rule_for(route.method, route.resource.canonical if route.resource else "")
        if rule is None:
            log.error("no access rule for %s %s: denied to every token", route.method,
                      route.resource.canonical if route.resource else "?")
            continue
        if rule.public_if is not None and getattr(settings, rule.public_if):
            rule = policy.PUBLIC
        found[route] = rule
    app[RULES] = found


def _by_session(request: web.Request, rule: policy.Rule) -> tokens.Token:
    lookup = request.app.get(SESSIONS)
    token = lookup(request) if lookup is not None else None
    if token is not None:
        request[BY_SESSION] = True
        return token
    if rule.page:
        raise web.HTTPSeeOther(f"{SIGN_IN}?next={quote(request.path_qs, safe='/')}")
    raise unauthenticated(tokens.REASONS["missing"] + " (or sign in to the web UI)")


def _in_globs(name: str, globs: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, glob) for glob in globs)


def authorize(request: web.Request) -> None:
    """Admit ``request`` or raise 401/403 (see the module docstring). Synchronous and called from
    the one middleware (api/problems.py): on the hottest path a middleware of its own would cost a
    coroutine per request."""
    match = request.match_info
    rule = request.app[RULES].get(match.route)
    if rule is not None and rule.permission == "public":
        return
    header = request.headers.get("Authorization")
    if header is None and rule is not None and rule.by_session:
        token = _by_session(request, rule)
    else:
        try:
            token = tokens.check(request.app[keys.TOKENS], header, time.time())
        except tokens.Refused as exc:
            raise unauthenticated(str(exc)) from None
    request[PRINCIPAL] = token
    if rule is None:
        if match.http_exception is not None:
            return  # 404 or 405, for a caller with a valid token
        raise forbidden(f"{request.method} {match.route.resource.canonical if match.route.resource else ''} "
                        "has no access rule; denied by default", missing="rule")
    if not policy.allows(token.role, rule.permission):
        roles = ", ".join(policy.roles_with(rule.permission))
        raise forbidden(f"{request.method} {request.path} needs the {rule.permission!r} permission "
                        f"(roles: {roles}); token {token.name!r} has role {token.role!r}",
                        missing="permission", permission=rule.permission, role=token.role)
    if rule.scoped and token.scope.deployments:
        name = match.get("name", "")
        if not _in_globs(name, token.scope.deployments):
            raise forbidden(f"deployment {name!r} is outside the scope of token {token.name!r} "
                            f"(deployments {', '.join(token.scope.deployments)})",
                            missing="scope", field="name", scope="deployments")


# --- the token table, followed from the log ---------------------------------------------------

async def catch_up(store: store_mod.EventStore, table: tokens.Table) -> None:
    """Fold the token events after the table's cursor. The cursor then moves to the head the
    notifier had seen before the read (every event up to it was committed, so the read saw it): the
    next read scans only what was appended since, not the whole log after the last token event."""
    while True:
        head = store.notifier.head
        page = await store.read_all(table.position, _PAGE, categories=["token"])
        for rec in page:
            tokens.apply_recorded(table, rec)
        if len(page) < _PAGE:
            table.position = max(table.position, head)
            return


async def follow(store: store_mod.EventStore, table: tokens.Table) -> None:
    while True:
        woken = store.notifier.token()
        try:
            await catch_up(store, table)
        except errors.StoreUnavailable:
            await asyncio.sleep(_POLL)
            continue
        await store.notifier.wait(woken, _POLL)
        await asyncio.sleep(_SETTLE)  # one read for a burst of commits


def admin_file(data_dir: Path) -> Path:
    return data_dir / ADMIN_FILE


def _write_private(path: Path, text: str) -> Path:
    """Write ``text`` to a new file beside ``path`` readable by the owner only; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return staged


async def bootstrap(store: store_mod.EventStore, table: tokens.Table, data_dir: Path) -> None:
    """Issue the first admin token when the log has none active (see the module docstring)."""
    path = admin_file(data_dir)
    for _ in range(3):
        if table.active_admin(time.time()):
            return
        secret = secrets.new()
        event = tokens.issue(table, BOOTSTRAP_NAME, "admin", events.Scope(), None, secrets.digest(secret))
        current = table.by_name.get(BOOTSTRAP_NAME)
        expected: records.ExpectedVersion = current.version if current is not None else "no_stream"
        staged = await asyncio.to_thread(_write_private, path, secret + "\n")
        try:
            result = await store.append(f"token-{BOOTSTRAP_NAME}", expected, [records.NewEvent(
                ids.new(), events.type_name(event), events.to_data(event),
                {"actor": SYSTEM_ACTOR, "reason": "bootstrap: no admin token"})])
        except errors.WrongExpectedVersion:
            staged.unlink(missing_ok=True)
            await catch_up(store, table)  # another process issued one meanwhile
            continue
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        os.replace(staged, path)
        tokens.apply(table, event, result.positions[0], result.last_version, _now(), SYSTEM_ACTOR)
        log.warning("no admin token was configured: issued token %r, its secret is in %s (mode 0600)",
                    BOOTSTRAP_NAME, path.resolve())
        return


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def context(app: web.Application) -> AsyncIterator[None]:
    """The token table for this app: loaded, bootstrapped if need be, then followed."""
    settings = app[keys.SETTINGS]
    store = app[keys.STORE]
    table = tokens.Table()
    if settings.admin_token:
        table.operator = tokens.operator_token(settings.admin_token)
    await catch_up(store, table)
    if table.operator is None:
        await bootstrap(store, table, settings.data_dir)
    app[keys.TOKENS] = table
    async with tasks.running("tokens", lambda: follow(store, table), app[keys.COMPONENTS]):
        yield
