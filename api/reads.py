"""What every read-model endpoint shares: ``?min_position=`` waits and a database connection.

A client that wrote at position N and reads with ``?min_position=N`` sees its own write: the
handler waits (without polling: it wakes on the projector's progress) until the projection has
folded N, for at most ``settings.read_wait_timeout`` seconds, then answers 504.
``?min_position=head`` waits for whatever the log held when the request arrived: what the CLI sends,
so one command always sees the writes of the commands before it.
"""

from __future__ import annotations

import contextlib

import asyncpg
from aiohttp import web

from api import keys, params, problems
from ledger import streams


async def wait_for_position(request: web.Request) -> None:
    if request.query.get("min_position") == "head":
        wanted = (await request.app[keys.STORE].head())[0]
    else:
        wanted = params.integer(request, "min_position", 0)
    if wanted == 0:
        return
    tracker = request.app[keys.PROGRESS]
    timeout = request.app[keys.SETTINGS].read_wait_timeout
    if not await tracker.reached(wanted, timeout):
        raise problems.Problem(
            504, "Read models behind",
            f"min_position: the read models are at position {tracker.position} and did not reach "
            f"{wanted} within {timeout:g} s; retry later or read without min_position",
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
