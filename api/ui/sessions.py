"""Web UI sessions: a browser signs in once with a token and is then known by an opaque cookie.

Decisions:

- **The token never goes into the cookie.** The cookie holds a random session id (256 bits); the
  server maps it to the token's digest (what the token table is keyed by), never to the secret.
  Every request looks the token up again, so a session ends the moment its token is revoked or
  expires, and acts with that token's role and scope (api/auth.py).
- **In memory, per process.** Sessions are few and short-lived; a restart signs browsers out, and
  several processes behind a load balancer need sticky sessions (docs/ui.md). At most ``LIMIT``
  sessions are kept (the oldest go first); one idle for ``IDLE`` seconds ends.
- **Cookie:** ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends
  it), ``Path=/``, and ``Secure`` when the request came over TLS.
- **CSRF:** each session has a random CSRF token; every state-changing form carries it, and a
  form posted with the session cookie but without the session's token is refused (403). A request
  authenticated by an ``Authorization`` header needs none: no browser sends that header by itself.
  Forms are refused, too, when the browser says they come from another origin (``Origin``).
- Session ids and CSRF tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import collections
import secrets as stdlib_secrets
import time
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from api import keys, problems
from ledger import secrets
from projections import tokens

COOKIE: Final = "ledger_session"
CSRF_FIELD: Final = "csrf"
IDLE: Final = 12 * 3600.0
LIMIT: Final = 10_000


@dataclass(slots=True)
class Session:
    digest: bytes
    csrf: str
    seen: float


class Store:
    def __init__(self, idle: float = IDLE, limit: int = LIMIT) -> None:
        self.idle = idle
        self.limit = limit
        self._by_id: collections.OrderedDict[str, Session] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._by_id)

    def open(self, digest: bytes, now: float) -> tuple[str, Session]:
        while len(self._by_id) >= self.limit:
            self._by_id.popitem(last=False)
        sid = stdlib_secrets.token_urlsafe(32)
        session = Session(digest, stdlib_secrets.token_urlsafe(32), now)
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None, now: float) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        if now - session.seen > self.idle:
            del self._by_id[sid]
            return None
        session.seen = now
        self._by_id.move_to_end(sid)
        return session

    def close(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)


STORE: Final = web.AppKey("ui_sessions", Store)


def token_for(table: tokens.Table, digest: bytes, now: float) -> tokens.Token | None:
    """The active token with ``digest`` (revoked, expired or unknown: None)."""
    found = table.by_digest.get(digest)
    if found is None and table.operator is not None and secrets.same(table.operator.digest, digest):
        found = table.operator
    if found is None or found.revoked or found.expired(now):
        return None
    return found


def current(request: web.Request) -> Session | None:
    return request.app[STORE].get(request.cookies.get(COOKIE), time.time())


def lookup(request: web.Request) -> tokens.Token | None:
    """api/auth.py's ``SESSIONS`` hook: the token the request's session stands for."""
    session = current(request)
    if session is None:
        return None
    return token_for(request.app[keys.TOKENS], session.digest, time.time())


def sign_in(request: web.Request, response: web.StreamResponse, token: tokens.Token) -> None:
    store = request.app[STORE]
    store.close(request.cookies.get(COOKIE))
    sid, _ = store.open(token.digest, time.time())
    response.set_cookie(COOKIE, sid, path="/", httponly=True, samesite="Strict", secure=request.secure)


def sign_out(request: web.Request, response: web.StreamResponse) -> None:
    request.app[STORE].close(request.cookies.get(COOKIE))
    response.del_cookie(COOKIE, path="/")


def csrf_token(request: web.Request) -> str | None:
    """The CSRF token forms of this page must carry (None: not signed in by a session)."""
    session = current(request)
    return session.csrf if session is not None else None


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
    session = current(request)
    if session is None:
        return  # nothing a forged form could use (a page's action has redirected to sign-in by now)
    sent = form.get(CSRF_FIELD, "")
    if not sent or not stdlib_secrets.compare_digest(session.csrf.encode(), sent.encode()):
        raise problems.Problem(403, "Forbidden", "the form's CSRF token is missing or stale; reload the page "
                               "and try again", field=CSRF_FIELD, missing="csrf")
