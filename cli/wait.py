"""``ledger wait NAME [--revision N] [--timeout 10m]`` and ``ledger deploy … --wait``: CI waits until
a revision runs everywhere it should.

Exit 0 when every target of the revision is healthy; 1 when one is degraded or failed, or the
revision was superseded or the deployment removed (the per-target table is printed either way, and
one line on stderr says which target and why); 2 when ``--timeout`` passes first.

Decisions:

- **Follows the live feed, never polls.** The deployment is read once (its ``as_of`` is the log
  position the read reflects), then ``/v1/feed/live`` is followed from exactly there, filtered to
  the deployment, rollout and target streams. When an event of this deployment (or of a target,
  which can change what it matches) arrives, the deployment is read again at that position
  (``?min_position=``), and the events that came meanwhile are taken in the same read, so a burst
  of outcomes costs one read. A feed that ends (a restart, a slow-consumer cut) is resumed with
  ``Last-Event-ID``.
- **The server's fold, the shared verdict.** The per-target states are the service's own
  (projections/fleet.py, as GET /v1/deployments/{name} serves them); whether they add up to
  healthy, degraded, failed, superseded or removed is projections/waiting.py's rule, the one
  ``GET /v1/deployments/{name}?wait=healthy`` applies too. Nothing is folded twice.
- **Which revision.** ``deploy --wait``: the revision just submitted (read at the write's
  position). ``wait``: ``--revision N``, else the current one; a revision the deployment does not
  have is exit 4. A later revision made current while waiting ends the wait (exit 1, superseded).
- **Output.** ``--output json|yaml`` prints the deployment document with a ``wait`` object
  (``result``, ``revision``, ``timeout_seconds``), the same shape as the HTTP wait answers with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from cli import aio, exits, http, options, output, parsers
from projections import waiting

if TYPE_CHECKING:
    import aiohttp

DEFAULT_TIMEOUT: Final = "10m"
FEED_CATEGORIES: Final = "deployment,rollout,target"
RECONNECT_DELAY: Final = 0.5
# A live feed sends a heartbeat every sse_heartbeat (15 s by default): silence for longer than this
# means the connection is dead, and it is resumed.
SILENCE: Final = 60.0
_CODES: Final[dict[str, exits.Code]] = {"healthy": exits.Code.OK, "timeout": exits.Code.TIMED_OUT}


def duration(text: str) -> float:
    """An argparse type: ``10m``, ``90s``, ``1h`` or plain seconds."""
    try:
        return waiting.seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_timeout_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=duration, default=DEFAULT_TIMEOUT, metavar="DURATION",
                        help="give up (exit 2) after this long: 90s, 10m, 1h or seconds")


def register(sub: parsers.Subparsers) -> None:
    cmd = parsers.command(
        sub, "wait", summary="wait until a revision is healthy on every target (for CI)",
        description="Follow the live feed until every target of the revision is healthy (exit 0), one is\n"
                    "degraded or failed, or the revision is superseded or removed (exit 1, with the table),\n"
                    "or the timeout passes (exit 2).",
        example_lines=["ledger wait web", "ledger wait web --revision 7 --timeout 15m",
                       "ledger wait web --output json | jq .wait.result"])
    cmd.add_argument("name", type=options.name, help="deployment name")
    cmd.add_argument("--revision", type=int, default=None,
                     help="the revision to wait for (default: the current one)")
    add_timeout_flag(cmd)
    options.add_client_flags(cmd)
    output.add_flags(cmd)
    cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.revision is not None and args.revision < 1:
        raise exits.Failure(exits.Code.USAGE, "--revision must be 1 or more")
    return follow(args, args.name, args.revision, min_position=None)


def follow(args: argparse.Namespace, name: str, revision: int | None, *, min_position: int | None) -> int:
    """Wait for ``revision`` of ``name`` (None: the current one), print where it ended, and return
    the exit code; the first read waits for ``min_position`` (a write's position)."""
    client = options.client_from(args)
    path = f"/v1/deployments/{name}"
    body = client.read(path, min_position=min_position)
    if revision is None:
        revision = int(body["current_revision"])
    elif revision > body["current_revision"]:
        raise exits.Failure(exits.Code.NOT_FOUND, f"deployment {name} has no revision {revision} "
                            f"(its current revision is {body['current_revision']})")
    result, body = asyncio.run(_follow(client, name, revision, body, args.timeout))
    output.show(args, {**body, "wait": {"result": result, "revision": revision, "timeout_seconds": args.timeout}},
                lambda b: table(b, revision))
    code = _CODES.get(result, exits.Code.FAILED)
    if code != exits.Code.OK:
        raise exits.Failure(code, _why(name, revision, result, body, args.timeout))
    if not any(r["desired_revision"] == revision for r in body["rollouts"]):
        print(f"ledger: {name} revision {revision} matches no target: nothing to wait for", file=sys.stderr)
    return code


async def _follow(client: http.Client, name: str, revision: int, body: dict[str, Any],
                  timeout: float) -> tuple[waiting.Outcome, dict[str, Any]]:
    import aiohttp

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    changed: asyncio.Queue[int] = asyncio.Queue()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=SILENCE),
                                    headers=client.default_headers)
    async with session:
        listener = asyncio.create_task(_listen(session, client, name, int(body["as_of"]), changed))
        try:
            while True:
                result = waiting.verdict(body, revision)
                if result != "waiting":
                    return result, body
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return "timeout", body
                position = await _next_change(changed, listener, remaining)
                if position is not None:
                    body = await asyncio.to_thread(client.read, f"/v1/deployments/{name}", min_position=position)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)


async def _next_change(changed: asyncio.Queue[int], listener: asyncio.Task[None], timeout: float) -> int | None:
    """The latest position among the changes that arrived, waiting up to ``timeout`` for the first;
    a listener that failed raises its error here."""
    if changed.empty():
        getter = asyncio.ensure_future(changed.get())
        done, _ = await asyncio.wait((getter, listener), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            await asyncio.gather(getter, return_exceptions=True)
            if listener in done:
                listener.result()
            return None
        changed.put_nowait(getter.result())
    position = 0
    while not changed.empty():
        position = max(position, changed.get_nowait())
    return position


def concerns(subject: str, name: str) -> bool:
    """Whether an event of stream ``subject`` can change the deployment's rollout."""
    return subject in (f"deployment-{name}", f"rollout-{name}") or subject.startswith("target-")


async def _listen(session: aiohttp.ClientSession, client: http.Client, name: str, after: int,
                  changed: asyncio.Queue[int]) -> None:
    """Follow the live feed from ``after`` for good, putting the position of every event that
    concerns the deployment into ``changed``; resumed from the last event seen when it ends."""
    import aiohttp

    url = f"{client.base_url}/v1/feed/live?category={FEED_CATEGORIES}"
    last = after
    while True:
        try:
            resp = await aio.open_get(session, url, "text/event-stream", client,
                                      headers={"Last-Event-ID": str(last)})
            async with resp:
                async for event in sse(resp.content):
                    if event.get("id", "").isdigit():
                        last = int(event["id"])
                    if event.get("event") == "overflow":
                        break
                    if "data" in event and concerns(_subject(event["data"]), name):
                        changed.put_nowait(last)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError):
            pass
        except http.ApiError as exc:
            if exc.code != exits.Code.UNREACHABLE:
                raise
        await asyncio.sleep(RECONNECT_DELAY)


def _subject(data: str) -> str:
    try:
        found = json.loads(data)
    except ValueError:
        return ""
    return str(found.get("subject", "")) if isinstance(found, dict) else ""


class Lines(Protocol):
    async def readline(self) -> bytes: ...


async def sse(content: Lines) -> AsyncIterator[dict[str, str]]:
    """Server-Sent Events as ``{field: value}`` (the WHATWG event-stream format: ``field: value``
    lines, a blank line ends an event, lines starting with ``:`` are comments)."""
    fields: dict[str, str] = {}
    while True:
        raw = await content.readline()
        if not raw:
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if fields:
                yield fields
            fields = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        fields[key] = fields[key] + "\n" + value if key == "data" and key in fields else value


def _reason(r: Mapping[str, Any]) -> str:
    if r["state"] in ("degraded", "failed") and r.get("reason"):
        return f"{r['reason']}: {r['message']}" if r.get("message") else str(r["reason"])
    return str(r.get("last_error") or "")


def table(body: Mapping[str, Any], revision: int) -> str:
    result = body["wait"]["result"]
    counts: dict[str, int] = {}
    for r in body["rollouts"]:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    tally = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no targets"
    head = f"{body['name']} revision {revision}: {result} ({tally})"
    rows = [(r["target"], r["desired_revision"], r["applied_revision"], r["state"], _reason(r)[:100])
            for r in body["rollouts"]]
    return head + ("\n\n" + http.table(rows, ["target", "desired", "applied", "state", "reason"]) if rows else "")


def _why(name: str, revision: int, result: waiting.Outcome, body: Mapping[str, Any], timeout: float) -> str:
    which = f"{name} revision {revision}"
    if result == "superseded":
        return f"{which} was superseded by revision {body['current_revision']}"
    if result == "removed":
        return f"{which}: the deployment was removed"
    named = ", ".join(f"{r['target']} ({r['state']}{': ' + _reason(r) if _reason(r) else ''})"
                      for r in waiting.culprits(body, result)[:5])
    if result == "timeout":
        return f"{which} not healthy within {timeout:g} s; still waiting for {named}"
    return f"{which} is {result} on {named}"
