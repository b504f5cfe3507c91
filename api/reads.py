"""What every read-model endpoint shares: the wait that makes reads see acknowledged writes, and a
database connection.

The read models are folded by the projector after the write is acknowledged, so a read that only
queried them could miss a write its client has just been told succeeded. By default a read waits
(without polling: it wakes on the projector's progress) until the projection has folded the head of
the log as this process knows it when the request arrives: every write this process acknowledged,
and every commit of another process whose NOTIFY has arrived (``EventStore.known_head``: memory, no
query). After ``settings.read_wait_timeout`` seconds it answers 504.

``?min_position=N`` waits for N as well (a position a write answered with, perhaps from another
process); N beyond the head of the log answers 422 at once. ``?min_position=head`` is the default
spelled out. ``?consistency=eventual`` opts out of the head: it answers from the read models as they
are, waiting only for an explicit ``min_position``.
"""

from __future__ import annotations

import contextlib

import asyncpg
from aiohttp import web

from api import bodies, keys, problems
from ledger import streams

CONSISTENCY = ("strong", "eventual")


async def _known_head(request: web.Request) -> int:
    store = request.app[keys.STORE]
    known = await store.synced_head()
    if known is None:  # not listening: commits may have gone unnoticed, so ask the log
        known = (await store.head())[0]
    return known


async def _ensure_committed(request: web.Request, wanted: int, known: int) -> None:
    """Refuse a ``min_position`` the log does not hold; one query, only when beyond ``known``."""
    if wanted <= known:
        return
    head = (await request.app[keys.STORE].head())[0]
    if wanted > head:
        raise problems.Problem(
            422, "Invalid request",
            f"min_position: {wanted} is beyond the head of the log ({head}); pass a position a write "
            f"answered with, or omit min_position",
            field="min_position", head=head, min_position=wanted,
            errors=[{"field": "min_position", "reason": f"beyond the head of the log ({head})"}])


async def wait_for_position(request: web.Request) -> None:
    consistency = request.query.get("consistency", "strong").strip().lower() or "strong"
    if consistency not in CONSISTENCY:
        raise problems.invalid("consistency", f"expected one of {', '.join(CONSISTENCY)}, got {consistency!r}")
    raw = request.query.get("min_position")
    explicit = 0 if raw == "head" else bodies.query_int(request, "min_position", 0, low=0)
    follows_head = consistency == "strong" or raw == "head"
    known = await _known_head(request) if follows_head or explicit else 0
    if explicit:
        await _ensure_committed(request, explicit, known)
    wanted = max(known if follows_head else 0, explicit)
    if wanted == 0:
        return
    tracker = request.app[keys.PROGRESS]
    if tracker.position >= wanted:
        return
    timeout = request.app[keys.SETTINGS].read_wait_timeout
    if not await tracker.reached(wanted, timeout):
        raise problems.Problem(
            504, "Read models behind",
            f"the read models are at position {tracker.position} and did not reach {wanted} within "
            f"{timeout:g} s; retry later, or read with ?consistency=eventual",
            field="min_position", position=tracker.position, min_position=wanted)


def connection(request: web.Request) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
    """A pooled connection; an unreachable database becomes 503 like everywhere else."""
    return request.app[keys.STORE].connection()


def flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise problems.invalid(name, f"expected true or false, got {raw!r}")


def name_param(request: web.Request, what: str) -> str:
    value = request.match_info["name"]
    try:
        return streams.validate_id(value, what)
    except streams.StreamNameError as exc:
        raise problems.invalid("name", str(exc)) from exc
