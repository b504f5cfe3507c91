"""``GET /v1/feed/live``: the log as Server-Sent Events, from a cursor to the live head and on.

One SSE event per ledger event: ``id:`` the position, ``event:`` the type, ``data:`` the CloudEvent
JSON (api/cloudevents.py). The stream starts after ``Last-Event-ID`` (what a reconnecting
EventSource sends), else after ``?after=``, else at the live head. ``types=`` and ``category=``
filter as on /v1/feed. A comment line is sent when nothing was written for settings.sse_heartbeat
seconds, so proxies and clients can tell a quiet stream from a dead one.

How a reader gets from its cursor to live without a gap or a duplicate: it reads pages from the
store, bounded by the shared tail's position (ledger/fanout.py), until its cursor is inside the
tail's ring; from then on it is served from the ring. Readers behind the head use their own paged
reads; idle readers hold no database connection and do not poll.

Slow consumers (decided): nothing is buffered per reader beyond one chunk of about
``chunk_bytes``. A reader is cut off when (a) it falls more than the ring's capacity behind the
live head, or (b) one write cannot be handed to the socket within ``write_timeout`` seconds, or
(c) while catching up, one page takes it longer than that. Catching up holds one of
``catching_up`` permits per process for the read and write of each page, which bounds the pages
in memory whatever the number of readers; (c) keeps a slow reader from holding a permit long. It then gets a final ``event: overflow``
whose data names the last position sent, and the connection ends; it reconnects with that
``Last-Event-ID`` and catches up through paged reads. If even that message cannot be written (the
client stopped reading altogether), the connection is aborted.

At shutdown every stream ends with a comment (``on_shutdown``), so the server does not wait out
its shutdown timeout on open streams.

Database outages (decided): a request that arrives while PostgreSQL is unreachable is answered
like every other route, 503 + Retry-After as problem+json, before the stream starts (one round
trip checks; a browser's EventSource does not retry an HTTP error by itself, so a page reconnects
on its own after Retry-After). An outage after the stream started never turns into an error
event: a reader catching up through paged reads gets a clean end of the stream and reconnects
with its Last-Event-ID; a reader served from the shared tail stays connected, receives
heartbeats, and gets the events written after the database is back (the tail waits the outage
out).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable
from typing import Final

import msgspec
from aiohttp import web

from api import cloudevents, feed, keys, params
from ledger import errors, fanout, records, streams, tasks

routes = web.RouteTableDef()


@dataclasses.dataclass(frozen=True)
class Config:
    capacity: int = fanout.CAPACITY
    write_timeout: float = 10.0
    page: int = 1000
    catching_up: int = 16
    chunk_bytes: int = 32 * 1024
    retry_ms: int = 2000
    final_write_timeout: float = 1.0


CONFIG: Final = web.AppKey("live_config", Config)
TAIL: Final = web.AppKey("live_tail", fanout.Tail)
CATCH_UP: Final = web.AppKey("live_catch_up", asyncio.Semaphore)
_HEARTBEAT: Final = b": heartbeat\n\n"
_SHUTDOWN: Final = b": server shutting down, reconnect with Last-Event-ID\n\n"


async def tail_context(app: web.Application) -> AsyncIterator[None]:
    """The process's one shared tail, for as long as the app runs (after the event store)."""
    config = app.get(CONFIG) or Config()
    tail = fanout.Tail(app[keys.STORE], capacity=config.capacity)
    app[TAIL] = tail
    app[CATCH_UP] = asyncio.Semaphore(config.catching_up)
    async with tasks.running("live-tail", tail.run, app[keys.COMPONENTS]):
        yield


async def close_streams(app: web.Application) -> None:
    """``on_shutdown``: end every open stream now rather than at the shutdown timeout."""
    tail = app.get(TAIL)
    if tail is not None:
        tail.close()


def frame(event: records.RecordedEvent, source: str) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.position, event.type.encode(), cloudevents.encode(event, source))


class _Cut(Exception):
    """The consumer is too slow to be served; ``why`` goes into the overflow message."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _cursor(request: web.Request) -> int | None:
    header = params.optional(request, "Last-Event-ID")
    return header if header is not None else params.optional(request, "after")


class _Stream:
    def __init__(self, request: web.Request, response: web.StreamResponse, config: Config,
                 types: list[str] | None, categories: list[str] | None) -> None:
        self.request = request
        self.response = response
        self.config = config
        self.types = types
        self.categories = categories
        self._types = frozenset(types or ())
        self._categories = frozenset(categories or ())
        settings = request.app[keys.SETTINGS]
        self.source = settings.source_uri
        self.heartbeat = settings.sse_heartbeat
        self.sent = 0
        self._loop = asyncio.get_running_loop()
        self._written_at = self._loop.time()

    def wanted(self, event: records.RecordedEvent) -> bool:
        return ((not self._types or event.type in self._types)
                and (not self._categories or streams.category_of(event.stream) in self._categories))

    def gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def send(self, frames: Iterable[tuple[int, bytes]]) -> None:
        """Write (position, frame)s in chunks of about ``chunk_bytes``, so a slow socket buffers
        little; ``sent`` follows every chunk handed to the connection."""
        chunk: list[bytes] = []
        size = last = 0
        for position, data in frames:
            chunk.append(data)
            size += len(data)
            last = position
            if size >= self.config.chunk_bytes:
                await self.write(b"".join(chunk))
                self.sent = last
                chunk, size = [], 0
        if chunk:
            await self.write(b"".join(chunk))
            self.sent = last

    async def write(self, data: bytes) -> None:
        try:
            async with asyncio.timeout(self.config.write_timeout):
                await self.response.write(data)
        except TimeoutError as exc:
            raise _Cut(f"a write waited more than {self.config.write_timeout:g}s for the client") from exc
        self._written_at = self._loop.time()

    async def catch_up(self, tail: fanout.Tail, store_reads: int) -> int:
        """Paged reads from ``store_reads`` until the ring covers the cursor; returns the cursor."""
        scan = store_reads
        store = self.request.app[keys.STORE]
        size = self.config.page
        await tail.ready()
        gate = self.request.app[CATCH_UP]
        while not tail.closed and not tail.covers(scan):
            async with gate:
                bound = tail.position
                page = await store.read_all(scan, size, types=self.types,
                                            categories=self.categories, until=bound)
                try:
                    async with asyncio.timeout(self.config.write_timeout):
                        await self.send((e.position, frame(e, self.source)) for e in page)
                except TimeoutError as exc:
                    raise _Cut(f"a page of {len(page)} events took the client more than "
                               f"{self.config.write_timeout:g}s") from exc
            scan = page[-1].position if len(page) == size else bound
        return scan

    async def follow(self, tail: fanout.Tail, scan: int) -> None:
        """Serve from the shared ring until shutdown, disconnect or a cut."""
        while not tail.closed:
            token = tail.token()
            try:
                entries = tail.since(scan, self.config.page)
            except fanout.Behind as exc:
                raise _Cut(f"fell more than {self.config.capacity} events behind the live head") from exc
            if entries:
                scan = entries[-1].event.position
                await self.send((e.event.position, self._encoded(e))
                                for e in entries if self.wanted(e.event))
            if self.gone():
                return
            quiet = self._loop.time() - self._written_at
            if quiet >= self.heartbeat:
                await self.write(_HEARTBEAT)
                continue
            if entries:
                continue
            try:
                async with asyncio.timeout(self.heartbeat - quiet):
                    await token.wait()
            except TimeoutError:
                pass

    def _encoded(self, entry: fanout.Entry) -> bytes:
        if entry.encoded is None:
            entry.encoded = frame(entry.event, self.source)
        return entry.encoded

    async def overflow(self, why: str) -> None:
        body = msgspec.json.encode({"last_position": self.sent, "reason": why})
        try:
            async with asyncio.timeout(self.config.final_write_timeout):
                await self.response.write(b"event: overflow\ndata: %s\n\n" % body)
                await self.response.write_eof()
        except (TimeoutError, ConnectionError):
            transport = self.request.transport
            if transport is not None:
                transport.abort()


async def _available(request: web.Request, tail: fanout.Tail) -> None:
    """Before the stream starts: the database answers and the tail has its position, within
    ``db_timeout``; otherwise StoreUnavailable (503 + Retry-After, see the module docstring)."""
    timeout = request.app[keys.SETTINGS].db_timeout
    await request.app[keys.STORE].ping(timeout)
    try:
        async with asyncio.timeout(timeout):
            await tail.ready()
    except TimeoutError as exc:
        raise errors.StoreUnavailable("the live tail has not read the log's head yet") from exc


@routes.get("/v1/feed/live")
async def live(request: web.Request) -> web.StreamResponse:
    types, categories = feed.filters(request)
    cursor = _cursor(request)
    config = request.app.get(CONFIG) or Config()
    tail = request.app[TAIL]
    await _available(request, tail)
    if cursor is None:
        cursor = tail.position
    headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if request.method == "HEAD":
        # The headers a GET would start with, and no stream: a HEAD response has no body.
        return web.Response(headers=headers)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    stream = _Stream(request, response, config, types, categories)
    stream.sent = cursor
    tail.readers += 1
    try:
        await stream.write(b"retry: %d\n\n" % config.retry_ms)
        scan = await stream.catch_up(tail, cursor)
        await stream.follow(tail, scan)
        if tail.closed and not stream.gone():
            await stream.write(_SHUTDOWN)
    except _Cut as cut:
        await stream.overflow(cut.why)
    except (errors.StoreUnavailable, ConnectionError):
        pass
    finally:
        tail.readers -= 1
    return response
