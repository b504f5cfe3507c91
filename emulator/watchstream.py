"""``GET ...?watch=true``: a watch served as the apiserver serves it, one JSON event per line.

What a client may rely on (what client-go's reflector and kubernetes-asyncio's ``watch.Watch``
expect):

- no ``resourceVersion`` (or ``"0"``): synthetic ``ADDED`` events for every matching object, then
  every later change;
- ``resourceVersion=N``: every change after N, in resourceVersion order; when N is older than the
  cluster's history the stream carries one ``ERROR`` event whose object is a ``Status`` with code
  410, reason ``Expired`` (as the apiserver's watch cache answers), and ends;
- ``allowWatchBookmarks=true``: a ``BOOKMARK`` event (kind, apiVersion, ``metadata.resourceVersion``
  only) after ``Cluster.bookmark_interval`` seconds without events; every change up to that
  resourceVersion has been sent, so a client may resume from it;
- ``timeoutSeconds``: the server ends the stream cleanly after that long (1800 s otherwise);
- label and field selectors as for lists, ``DELETED`` / ``ADDED`` when an object leaves or enters them.

A dropped watch (:meth:`Cluster.drop_watches`, a ``Fault(watch=True, drop_after=...)``, a cluster
going down) closes the connection without the final chunk, as a dying apiserver or load balancer
would; the client sees a truncated response and must resume from the last resourceVersion it saw.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from emulator import codec, routing, watches
from emulator.cluster import Cluster
from emulator.selectors import make_filter
from emulator.status import ApiError, bad_request, status_body

DEFAULT_TIMEOUT = 1800.0
LIVENESS = 15.0  # how often an idle stream checks that its client is still connected


def _line(kind: str, obj: dict[str, Any]) -> bytes:
    return codec.encode({"type": kind, "object": obj}) + b"\n"


def _timeout(query: MultiMapping[str]) -> float:
    text = query.get("timeoutSeconds")
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = int(text)
    except ValueError as exc:
        raise bad_request(f"invalid timeoutSeconds: {text}") from exc
    return float(value) if value > 0 else DEFAULT_TIMEOUT


def _cut(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def open_watch(
    cluster: Cluster, target: routing.Target, query: MultiMapping[str]
) -> tuple[watches.Watcher, list[tuple[str, dict[str, Any]]], ApiError | None]:
    """Subscribe and read the backlog in one event-loop step, so no change falls between them."""
    rt = target.rt
    assert rt is not None
    field_selector = query.get("fieldSelector")
    if target.what == routing.ITEM:  # the deprecated watch on one object: a name field selector
        by_name = f"metadata.name={target.name}"
        field_selector = f"{field_selector},{by_name}" if field_selector else by_name
    watcher = watches.Watcher(
        rt, target.namespace, make_filter(query.get("labelSelector"), field_selector, rt)
    )
    text = query.get("resourceVersion") or "0"
    try:
        since = int(text)
    except ValueError as exc:
        raise bad_request(f"resourceVersion: Invalid value: {text!r}: must be an integer") from exc
    backlog: list[tuple[str, dict[str, Any]]] = []
    expired: ApiError | None = None
    if since == 0:
        backlog = [(watches.ADDED, obj) for obj in cluster.select(rt, target.namespace, watcher.predicate)]
    else:
        try:
            for change in cluster.hub.since(since):
                event = watcher.translate(change)
                if event is not None:
                    backlog.append(event)
        except watches.Expired as exc:
            expired = ApiError(410, "Expired", str(exc))
    if expired is None:
        cluster.hub.subscribe(watcher)
    return watcher, backlog, expired


async def serve(
    request: web.Request,
    cluster: Cluster,
    target: routing.Target,
    query: MultiMapping[str],
    drop_after: float | None = None,
) -> web.StreamResponse:
    """Stream a watch until it times out, its client leaves, or it is dropped."""
    rt = target.rt
    assert rt is not None
    timeout = _timeout(query)
    bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
    watcher, backlog, expired = open_watch(cluster, target, query)
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    loop = asyncio.get_running_loop()
    try:
        await response.prepare(request)
        if expired is not None:
            await response.write(_line("ERROR", status_body(410, expired.reason, expired.message)))
            await response.write_eof()
            return response
        if backlog:
            await response.write(b"".join(_line(kind, obj) for kind, obj in backlog))
        start = loop.time()
        deadline = start + timeout
        drop_at = start + drop_after if drop_after is not None else math.inf
        next_bookmark = start + cluster.bookmark_interval if bookmarks else math.inf
        while True:
            now = loop.time()
            if now >= drop_at:
                _cut(request)
                return response
            if now >= deadline:
                break
            if now >= next_bookmark:
                if watcher.queue.empty():
                    mark = {
                        "kind": rt.kind,
                        "apiVersion": rt.api_version,
                        "metadata": {"resourceVersion": cluster.resource_version},
                    }
                    await response.write(_line("BOOKMARK", mark))
                next_bookmark = loop.time() + cluster.bookmark_interval
                continue
            try:
                async with asyncio.timeout_at(min(deadline, drop_at, next_bookmark, now + LIVENESS)):
                    item = await watcher.queue.get()
            except TimeoutError:
                if _gone(request):
                    return response
                continue
            chunk: list[bytes] = []
            while item is not None:
                chunk.append(_line(*item))
                if watcher.queue.empty():
                    break
                item = watcher.queue.get_nowait()
            if chunk:
                await response.write(b"".join(chunk))
            if item is None:  # dropped: no final chunk, like a connection that died
                _cut(request)
                return response
        await response.write_eof()
    except ConnectionError:
        _cut(request)  # the client left; nothing to answer
    finally:
        cluster.hub.unsubscribe(watcher)
    return response
