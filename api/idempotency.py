"""Idempotency keys and event ids, bound to the request that used them and scoped to its actor.

A write may carry an ``Idempotency-Key`` header (every write endpoint) or, on the generic endpoint,
event ids of the client's choosing. Either lets a client retry without recording twice. The rules,
decided here and applied in one place (``api.submission``):

- **A key is scoped to its actor and stream.** The event ids a key stands for derive from (actor,
  stream, key, index) in :func:`event_id`, so two callers using the same key never touch each
  other's events: each gets a result of their own. Who the actor is comes from :func:`actor`, the
  one place that says how a request is attributed.
- **A key is bound to its request.** Every event a keyed request (or one with client ids) records
  carries the request's :func:`fingerprint` in its metadata (``request_hash``): SHA-256 over the
  actor, the method, the path, the query and the body (JSON compared by value, so key order and
  whitespace do not matter). A request whose ids are stored already is a retry when the
  fingerprints match, answered with the first result and ``Idempotent-Replayed: true``; otherwise
  the key was reused for another request, which answers **422** naming ``Idempotency-Key`` (as the
  IETF draft "The Idempotency-Key HTTP Header Field" prescribes) and records nothing.
- **Client-chosen event ids** follow the log's contract: an id stored already for another request
  (other content, another actor, another stream) is a 409 event id conflict.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Final

import msgspec
from aiohttp import web

from api import auth, problems

NAMESPACE: Final = uuid.UUID("6f1c1d2e-3b7a-5c55-9a51-6c6564676572")
HEADER: Final = "Idempotency-Key"
MAX_LENGTH: Final = 255
_JSON: Final = ("application/json",)


def actor(request: web.Request) -> str | None:
    """Who a key belongs to: the actor recorded in metadata, the name of the request's token."""
    return auth.actor(request)


def key(request: web.Request) -> str | None:
    found = request.headers.get(HEADER)
    if found is not None and not (0 < len(found) <= MAX_LENGTH):
        raise problems.invalid(HEADER, f"must be 1 to {MAX_LENGTH} characters")
    return found


def event_id(actor_name: str | None, stream: str, key_value: str, index: int) -> uuid.UUID:
    """The id of event ``index`` of the request keyed ``key_value`` by ``actor_name`` on ``stream``."""
    return uuid.uuid5(NAMESPACE, msgspec.json.encode([actor_name, stream, key_value, index]).decode())


def _canonical_body(request: web.Request, body: bytes) -> bytes:
    if request.content_type in _JSON or request.content_type.endswith("+json"):
        try:
            return msgspec.json.encode(msgspec.json.decode(body), order="sorted")
        except msgspec.DecodeError:
            return body
    return body


async def fingerprint(request: web.Request) -> str:
    """SHA-256 of what the request asks for (see the module docstring); reads the cached body."""
    body = await request.read() if request.body_exists else b""
    head: list[Any] = [actor(request), request.method, request.path, sorted(request.query.items())]
    digest = hashlib.sha256(msgspec.json.encode(head))
    digest.update(b"\n")
    digest.update(_canonical_body(request, body))
    return digest.hexdigest()


def reused(key_value: str) -> problems.Problem:
    return problems.invalid(HEADER, f"key {key_value!r} was already used for a different request; "
                                    "a retry must repeat the request exactly, a new request needs a new key")
