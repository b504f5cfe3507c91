"""Web UI sessions: a browser signs in once with a token and is then known by an opaque cookie.

Decisions:

- **The token never goes into the cookie.** The cookie holds a random session id (256 bits); the
  server maps it to the token's digest (what the token table is keyed by), never to the secret.
  Every request looks the token up again, so a session ends the moment its token is revoked or
  expires, and acts with that token's role and scope (api/auth.py).
- **Kept in memory, and in the database so a restart keeps browsers signed in.** Requests are
  answered from memory (the auth check is synchronous); signing in and out writes through to
  ``ui_sessions`` (sql/014_ui_sessions.sql), which the process loads when it starts. Only a
  SHA-256 of the session id is stored, never the id (a copy of the table signs no one in) and never
  the token. A session ends after ``IDLE`` seconds unused: its row's end moves forward when a
  request finds less than half of that left (one write per session per ``IDLE / 2`` at most). Rows
  of ended sessions and of revoked or expired tokens are deleted at start. At most ``LIMIT``
  sessions are kept in memory (the oldest go first). Several API processes behind a load balancer
  see a session signed in elsewhere only after a restart: they need sticky sessions (docs/ui.md).
- **Cookie:** ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends
  it), ``Path=/``, and ``Secure`` when the request came over TLS.
- **CSRF:** each session has a CSRF token, derived from its id (SHA-256 of a label and the id: only
  who holds the cookie can know it, and nothing about it is stored); every state-changing form
  carries it, and a form posted with the session cookie but without the session's token is refused
  (403). A request authenticated by an ``Authorization`` header needs none: no browser sends that
  header by itself. Forms are refused, too, when the browser says they come from another origin
  (``Origin``).
- Session ids and CSRF tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import logging
import secrets as stdlib_secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from api import keys, problems
from ledger import errors, secrets
from projections import tokens

log = logging.getLogger(__name__)

COOKIE: Final = "ledger_session"
CSRF_FIELD: Final = "csrf"
IDLE: Final = 12 * 3600.0
LIMIT: Final = 10_000
_CSRF_LABEL: Final = b"ledger-ui-csrf\x00"


def id_hash(sid: str) -> bytes:
    """What is stored of a session id: its SHA-256."""
    return hashlib.sha256(sid.encode()).digest()


def csrf_of(sid: str) -> str:
    return hashlib.sha256(_CSRF_LABEL + sid.encode()).hexdigest()


@dataclass(slots=True)
class Session:
    digest: bytes
    seen: float
    until: float  # when the stored row ends unless moved forward


class Store:
    def __init__(self, idle: float = IDLE, limit: int = LIMIT) -> None:
        self.idle = idle
        self.limit = limit
        self._by_hash: collections.OrderedDict[bytes, Session] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._by_hash)

    def _put(self, key: bytes, session: Session) -> None:
        while len(self._by_hash) >= self.limit:
            self._by_hash.popitem(last=False)
        self._by_hash[key] = session

    def open(self, digest: bytes, now: float) -> tuple[str, Session]:
        sid = stdlib_secrets.token_urlsafe(32)
        session = Session(digest, now, now + self.idle)
        self._put(id_hash(sid), session)
        return sid, session

    def restore(self, rows: Iterable[tuple[bytes, bytes, float]], now: float) -> None:
        """Sessions loaded from the table: (id hash, token digest, end), oldest end first."""
        for key, digest, until in rows:
            self._put(key, Session(digest, now, until))

    def get(self, sid: str | None, now: float) -> Session | None:
        if not sid:
            return None
        key = id_hash(sid)
        session = self._by_hash.get(key)
        if session is None:
            return None
        if now - session.seen > self.idle or now > session.until:
            del self._by_hash[key]
            return None
        session.seen = now
        self._by_hash.move_to_end(key)
        return session

    def close(self, sid: str | None) -> None:
        if sid:
            self._by_hash.pop(id_hash(sid), None)


STORE: Final = web.AppKey("ui_sessions", Store)
# A session whose stored end should move forward, for the response hook to write.
_RENEW: Final = web.RequestKey("ui_session_renew", tuple)


def _when(moment: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(moment, dt.UTC)


async def context(app: web.Application) -> AsyncIterator[None]:
    """Load the stored sessions (after deleting ended ones and those of inactive tokens)."""
    store, timeout = app[keys.STORE], app[keys.SETTINGS].db_timeout
    now = time.time()
    table = app.get(keys.TOKENS)
    async with store.connection(timeout) as conn:
        async with conn.transaction():
            await conn.execute("DELETE FROM ui_sessions WHERE expires_at < $1", _when(now), timeout=timeout)
            rows = await conn.fetch("SELECT id_sha256, token_sha256, expires_at FROM ui_sessions"
                                    " ORDER BY expires_at", timeout=timeout)
            gone = [r[0] for r in rows if table is not None and token_for(table, r[1], now) is None]
            if gone:
                await conn.execute("DELETE FROM ui_sessions WHERE id_sha256 = ANY($1::bytea[])", gone,
                                   timeout=timeout)
    ended = set(gone)
    kept = [(r[0], r[1], r[2].timestamp()) for r in rows if r[0] not in ended]
    app[STORE].restore(kept[-app[STORE].limit:], now)
    if kept:
        log.info("signed-in web UI sessions restored: %d", len(kept))
    yield


async def _save(request: web.Request, key: bytes, session: Session) -> None:
    store, timeout = request.app[keys.STORE], request.app[keys.SETTINGS].db_timeout
    async with store.connection(timeout) as conn:
        await conn.execute(
            "INSERT INTO ui_sessions (id_sha256, token_sha256, expires_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (id_sha256) DO UPDATE SET expires_at = EXCLUDED.expires_at",
            key, session.digest, _when(session.until), timeout=timeout)


async def _delete(request: web.Request, key: bytes) -> None:
    store, timeout = request.app[keys.STORE], request.app[keys.SETTINGS].db_timeout
    async with store.connection(timeout) as conn:
        await conn.execute("DELETE FROM ui_sessions WHERE id_sha256 = $1", key, timeout=timeout)


async def renew(request: web.Request, _response: web.StreamResponse) -> None:
    """``on_response_prepare``: move a session's stored end forward when ``current`` asked for it.
    A database that cannot take it now is logged; the session works on, and the next request tries
    again."""
    pending = request.get(_RENEW)
    if pending is None:
        return
    key, session = pending
    wanted = session.seen + request.app[STORE].idle
    try:
        await _save(request, key, Session(session.digest, session.seen, wanted))
    except errors.StoreUnavailable as exc:
        log.warning("could not extend a web UI session in the database: %s", exc)
        return
    session.until = wanted


def token_for(table: tokens.Table, digest: bytes, now: float) -> tokens.Token | None:
    """The active token with ``digest`` (revoked, expired or unknown: None)."""
    found = table.by_digest.get(digest)
    if found is None and table.operator is not None and secrets.same(table.operator.digest, digest):
        found = table.operator
    if found is None or found.revoked or found.expired(now):
        return None
    return found


def current(request: web.Request) -> Session | None:
    sid = request.cookies.get(COOKIE)
    store = request.app[STORE]
    now = time.time()
    session = store.get(sid, now)
    if session is not None and sid and session.until - now < store.idle / 2:
        request[_RENEW] = (id_hash(sid), session)
    return session


def lookup(request: web.Request) -> tokens.Token | None:
    """api/auth.py's ``SESSIONS`` hook: the token the request's session stands for."""
    session = current(request)
    if session is None:
        return None
    return token_for(request.app[keys.TOKENS], session.digest, time.time())


async def _forget(request: web.Request) -> None:
    """End the request's session: in the table first (an outage fails the request rather than leave
    a row that a restart would bring back), then in memory."""
    sid = request.cookies.get(COOKIE)
    if sid:
        await _delete(request, id_hash(sid))
        request.app[STORE].close(sid)


async def sign_in(request: web.Request, response: web.StreamResponse, token: tokens.Token) -> None:
    store = request.app[STORE]
    await _forget(request)
    sid, session = store.open(token.digest, time.time())
    await _save(request, id_hash(sid), session)
    response.set_cookie(COOKIE, sid, path="/", httponly=True, samesite="Strict", secure=request.secure)


async def sign_out(request: web.Request, response: web.StreamResponse) -> None:
    await _forget(request)
    response.del_cookie(COOKIE, path="/")


def csrf_token(request: web.Request) -> str | None:
    """The CSRF token forms of this page must carry (None: not signed in by a session)."""
    sid = request.cookies.get(COOKIE)
    return csrf_of(sid) if sid and current(request) is not None else None


def same_origin(request: web.Request) -> None:
    """Refuse a form the browser says comes from another origin."""
    origin = request.headers.get("Origin")
    if origin is None or (origin == "null" and request.headers.get("Sec-Fetch-Site") == "same-origin"):
        return
    own = f"{request.scheme}://{request.host}"
    if origin != own:
        raise problems.Problem(403, "Forbidden", f"a form from another origin ({origin[:100]}) is refused",
                               missing="origin")


def check_form(request: web.Request, form: dict[str, str]) -> None:
    """CSRF protection for a state-changing form (see the module docstring)."""
    same_origin(request)
    if "Authorization" in request.headers:
        return  # authenticated by a header, which no browser sends by itself
    wanted = csrf_token(request)
    if wanted is None:
        return  # nothing a forged form could use (a page's action has redirected to sign-in by now)
    sent = form.get(CSRF_FIELD, "")
    if not sent or not stdlib_secrets.compare_digest(wanted.encode(), sent.encode()):
        raise problems.Problem(403, "Forbidden", "the form's CSRF token is missing or stale; reload the page "
                               "and try again", field=CSRF_FIELD, missing="csrf")
