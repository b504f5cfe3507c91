"""What every read-model endpoint shares: the wait that makes reads see acknowledged writes, and a
database connection.

The read models are folded by the projector after a write is acknowledged, so a read that only
queried them could miss a write its client has just been told succeeded. By default a read waits
(without polling: it wakes on the projector's progress) until the projection has folded the head of
the log as it stood when the request arrived, known without reading the log: this process's writer
knows its own commits, other processes' commits arrive as NOTIFY payloads, and one round trip on
the listening connection, shared by the reads that arrive together, makes sure none is still on
its way (``EventStore.synced_head``). After ``settings.read_wait_timeout`` seconds it answers 504.

``?min_position=N`` waits for N as well (a position a write answered with); N beyond the head
answers 422 at once, naming the head (:func:`beyond_head`, which the live feed's cursor shares). ``?min_position=head`` is the default spelled out.
``?consistency=eventual`` opts out: the read models as they are, waiting only for an explicit
``min_position``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import asyncpg
from aiohttp import web

from api import keys, params, problems
from ledger import streams

CONSISTENCY = ("strong", "eventual")


async def _head(request: web.Request) -> int:
    """At least every position acknowledged (by any process) before the request arrived."""
    store = request.app[keys.STORE]
    head = await store.synced_head()
    if head is None:  # not listening: commits may have gone unnoticed, so ask the log
        head = (await store.head())[0]
    return head


def beyond_head(field: str, value: int, head: int) -> problems.Problem:
    """422 naming ``field``: ``value`` is a position the log has not reached, so waiting for it
    could last forever (a cursor from another ledger, or from before a restore)."""
    named: dict[str, Any] = {field.lower().replace("-", "_"): value}  # min_position, after, last_event_id
    return problems.Problem(
        422, "Invalid request",
        f"{field}: {value} is beyond the head of the log ({head}); pass a position a write or the "
        f"feed answered with, or omit {field}",
        field=field, head=head, **named,
        errors=[{"field": field, "reason": f"beyond the head of the log ({head})"}])


async def within_head(request: web.Request, field: str, value: int) -> None:
    """``value`` (a cursor) is at most the head of the log as every process has acknowledged it,
    or 422 naming ``field``."""
    head = await _head(request)
    if value > head:
        raise beyond_head(field, value, head)


async def wait_for_position(request: web.Request) -> None:
    consistency = request.query.get("consistency", "strong").strip().lower() or "strong"
    if consistency not in CONSISTENCY:
        raise problems.invalid("consistency", f"expected one of {', '.join(CONSISTENCY)}, got {consistency!r}")
    raw = request.query.get("min_position")
    explicit = 0 if raw == "head" else params.integer(request, "min_position", 0)
    follows_head = consistency == "strong" or raw == "head"
    head = await _head(request) if follows_head or explicit else 0
    if explicit > head:
        raise beyond_head("min_position", explicit, head)
    wanted = max(head if follows_head else 0, explicit)
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
