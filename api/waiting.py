"""``GET /v1/deployments/{name}?wait=healthy&timeout=…``: answer once a revision's rollout is over.

For HTTP clients that cannot follow the live feed (a CI job with curl): the request is held until
every target of the revision is healthy, one is degraded or failed, the revision is superseded or
the deployment removed, or ``timeout`` passes; then it is answered with the deployment as a plain
GET gives it (every target's state, with the reason of a degraded or failed one) and a ``wait``
object saying how the wait ended (``result``: healthy, degraded, failed, superseded, removed or
timeout). The verdict is projections/waiting.py's, the one ``ledger wait`` applies too.

Decisions:

- **No polling.** Between two reads of the deployment the request waits on the projector's progress
  in this process (``keys.PROGRESS``, woken by the log's notifications), for a position past the
  one the last read reflected (its ``as_of``); it holds no database connection while waiting.
- **Bounded.** ``timeout`` (``90s``, ``10m``, plain seconds; default 60 s or the maximum if lower)
  may not exceed ``settings.wait_timeout_max`` (default 300 s): more is 422 naming ``timeout``, so
  nobody is surprised by a shorter wait than asked. A wait that times out is still 200: the body
  says ``timeout`` and shows where each target is.
- **Which revision.** ``?revision=N`` (default: the current one when the request arrives); a revision
  the deployment does not have yet is 404. The read waits for the writes acknowledged before the
  request first (api/reads.py), so ``POST …/revisions`` then ``GET …?wait=healthy`` waits for the
  revision just submitted.
- **Shutdown.** A stopping service answers its waiting requests 503 with ``Retry-After`` at once
  (``on_shutdown``), rather than holding them until the shutdown timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from api import bodies, keys, problems, reads
from projections import queries, waiting

DEFAULT_TIMEOUT: Final = 60.0
STOPPING = web.AppKey("waits_stopping", asyncio.Event)


def install(app: web.Application) -> None:
    """What waits need of the application: the event a shutdown sets, and the hook that sets it."""
    app[STOPPING] = asyncio.Event()
    app.on_shutdown.append(stop_waits)


async def stop_waits(app: web.Application) -> None:
    """``on_shutdown``: every wait in progress answers 503 now."""
    app[STOPPING].set()


def _timeout(request: web.Request) -> float:
    most = request.app[keys.SETTINGS].wait_timeout_max
    raw = request.query.get("timeout", "").strip()
    if not raw:
        return min(DEFAULT_TIMEOUT, most)
    try:
        value = waiting.seconds(raw)
    except ValueError as exc:
        raise problems.invalid("timeout", str(exc)) from exc
    if value > most:
        raise problems.invalid("timeout", f"at most {most:g} s (this service's wait_timeout_max), got {raw!r}")
    return value


async def _read(request: web.Request, name: str) -> dict[str, Any]:
    async with reads.connection(request) as conn:
        found = await queries.deployment(conn, name)
    if found is None:
        raise problems.Problem(404, "Not found", f"deployment {name} has no revisions (or none projected yet)")
    return found


async def _progress(request: web.Request, position: int, timeout: float) -> None:
    """Until the read models pass ``position``, the timeout passes, or the service stops (503)."""
    halt = request.app[STOPPING]
    advanced = asyncio.ensure_future(request.app[keys.PROGRESS].reached(position, timeout))
    stopped = asyncio.ensure_future(halt.wait())
    try:
        await asyncio.wait((advanced, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (advanced, stopped):
            task.cancel()
        await asyncio.gather(advanced, stopped, return_exceptions=True)
    if halt.is_set():
        retry = str(request.app[keys.SETTINGS].retry_after)
        raise problems.Problem(503, "Service stopping", "the service is stopping; wait again on another "
                               "instance or after it restarts", headers={"Retry-After": retry})


async def respond(request: web.Request, name: str, revision: int | None) -> web.Response:
    mode = request.query.get("wait", "").strip()
    if mode != "healthy":
        raise problems.invalid("wait", f"expected healthy, got {mode!r}")
    timeout = _timeout(request)
    await reads.wait_for_position(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found = await _read(request, name)
    if revision is None:
        revision = found["current_revision"]
    elif revision > found["current_revision"]:
        raise problems.Problem(404, "Not found", f"deployment {name} has no revision {revision} (its current "
                               f"revision is {found['current_revision']})", field="revision")
    while True:
        result: waiting.Outcome | waiting.Result = waiting.verdict(found, revision)
        remaining = deadline - loop.time()
        if result != "waiting":
            break
        if remaining <= 0:
            result = "timeout"
            break
        await _progress(request, found["as_of"] + 1, remaining)
        found = await _read(request, name)
    body = {**found, "wait": {"result": result, "revision": revision, "timeout_seconds": timeout}}
    return bodies.json_response(body, headers={"ETag": f'"{found["version"]}"'})
