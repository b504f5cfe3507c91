"""``GET /v1/feed/live``: the log as Server-Sent Events, from a cursor to the live head and on.

One SSE event per ledger event: ``id:`` the position, ``event:`` the type, ``data:`` the CloudEvent
JSON (api/cloudevents.py). The stream starts after ``Last-Event-ID`` (what a reconnecting
EventSource sends), else after ``?after=``, else at the live head. A cursor beyond the head of the
log answers 422 naming ``Last-Event-ID`` or ``after`` (api/reads.py ``beyond_head``, as for
``min_position``): the stream would otherwise wait silently for positions that may never come. ``types=`` and ``category=``
filter as on /v1/feed. A comment line is sent when nothing was written for settings.sse_heartbeat
seconds, so proxies and clients can tell a quiet stream from a dead one.

How a reader gets from its cursor to live without a gap or a duplicate: it reads pages from the
store, bounded by the shared tail's position (ledger/fanout.py), until its cursor is inside the
tail's ring; from then on it is served from the ring. Readers behind the head use their own paged
reads; idle readers hold no database connection and do not poll.

Slow consumers (decided): every subscriber has a small bounded send buffer. Its socket's
``SO_SNDBUF`` is set to ``sse_send_buffer`` and its transport pauses above that much; the service
queues at most ``sse_queue_bytes`` of frames for it (a catch-up page is encoded only up to that
many bytes, the rest is read again later; a live batch is written in chunks of ``chunk_bytes``).
Every write waits for the transport to drain below ``sse_send_buffer`` (aiohttp by itself waits only
once 64 KiB have been written since its last wait, so a stalled subscriber held that much more). So
a subscriber costs the service about ``sse_queue_bytes`` + ``sse_send_buffer`` + one chunk at most,
whatever it does, and ``buffered(app)`` says how much all of them hold now. A reader is cut off
when (a) it falls more than the ring's capacity behind the live head, or (b) one write cannot be
handed to the socket within ``sse_write_timeout`` seconds. So a client that stops reading is let go
within about ``sse_write_timeout`` seconds of its buffers filling.
Catching up holds one of ``catching_up`` permits per process for the read of a page and its
encoding (not for the write), through the expensive lane's pool (api/lanes.py), so catch-ups never
take connections from appends and single reads and a stalled reader never holds a permit. The shared
tail never waits for anyone: readers pull from its ring. A cut reader gets a final
``event: overflow`` whose data names the last position sent, and the connection ends; it
reconnects with that ``Last-Event-ID`` and catches up through paged reads. If even that message
cannot be written (the client stopped reading altogether), the connection is aborted.

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
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator
from typing import Final

import msgspec
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from api import access, cloudevents, feed, keys, lanes, params, reads
from ledger import errors, fanout, records, streams, tasks
from ledger import settings as settings_mod

routes = web.RouteTableDef()


@dataclasses.dataclass(frozen=True)
class Config:
    capacity: int = fanout.CAPACITY
    write_timeout: float = 10.0
    page: int = 1000
    catching_up: int = lanes.CATCH_UP_READS
    chunk_bytes: int = 32 * 1024
    retry_ms: int = 2000
    final_write_timeout: float = 1.0
    queue_bytes: int = 64 * 1024
    send_buffer: int = 16 * 1024

    @classmethod
    def from_settings(cls, settings: settings_mod.Settings) -> Config:
        return cls(write_timeout=settings.sse_write_timeout, queue_bytes=settings.sse_queue_bytes,
                   send_buffer=settings.sse_send_buffer)


def config_of(app: web.Application) -> Config:
    """``CONFIG`` when a test set one, else the settings' values."""
    return app.get(CONFIG) or Config.from_settings(app[keys.SETTINGS])


CONFIG: Final = web.AppKey("live_config", Config)
TAIL: Final = web.AppKey("live_tail", fanout.Tail)
CATCH_UP: Final = web.AppKey("live_catch_up", asyncio.Semaphore)
# Events in a subscriber's first catch-up page; each full page doubles it up to ``Config.page``. A
# subscriber that does not read takes only about a queue's worth (``queue_bytes``) before it stalls,
# so 500 of them connecting at once no longer read (and decode) a thousand events each: the first
# live event reached a reader 141 ms after its append among them, and the API process grew 100 MB.
# 16 rather than 64: what a page's decoding passes through stays in the heap, and 500 subscribers
# that never read took the API process to 155 MB with 64, 120-121 MB with 16 (bench/memory.py,
# 200,000 events, two runs each; cut-off and the live reader's first event unchanged).
FIRST_PAGE: Final = 16
SUBSCRIBERS: Final = web.AppKey("live_subscribers", set["_Stream"])
# Subscribers cut off for being slow, by reason: a write that timed out, or too far behind the head.
CUT_REASONS: Final = ("write_timeout", "behind")
CUT_OFF: Final = web.AppKey("live_cut_off", dict[str, int])
_HEARTBEAT: Final = b": heartbeat\n\n"
_SHUTDOWN: Final = b": server shutting down, reconnect with Last-Event-ID\n\n"


async def tail_context(app: web.Application) -> AsyncIterator[None]:
    """The process's one shared tail, for as long as the app runs (after the event store)."""
    config = config_of(app)
    tail = fanout.Tail(app[keys.STORE], capacity=config.capacity)
    app[TAIL] = tail
    app[CATCH_UP] = asyncio.Semaphore(config.catching_up)
    app[SUBSCRIBERS] = set()
    app[CUT_OFF] = dict.fromkeys(CUT_REASONS, 0)
    async with tasks.running("live-tail", tail.run, app[keys.COMPONENTS]):
        yield


async def close_streams(app: web.Application) -> None:
    """``on_shutdown``: end every open stream now rather than at the shutdown timeout."""
    tail = app.get(TAIL)
    if tail is not None:
        tail.close()


def buffered(app: web.Application) -> int:
    """Bytes the service holds for its SSE subscribers now: frames queued for them and what their
    transports have not yet handed to the kernel."""
    total = 0
    for stream in app[SUBSCRIBERS]:
        total += stream.held
        transport = stream.request.transport
        if transport is not None:
            total += transport.get_write_buffer_size()
    return total


def frame(event: records.RecordedEvent, source: str) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.position, event.type.encode(), cloudevents.encode(event, source))


class _Cut(Exception):
    """The consumer is too slow to be served; ``why`` goes into the overflow message, ``reason``
    (one of ``CUT_REASONS``) into the metrics."""

    def __init__(self, why: str, reason: str) -> None:
        super().__init__(why)
        self.why = why
        self.reason = reason


def _cursor(request: web.Request) -> tuple[str, int | None]:
    """The cursor and the name it came under (a 422 beyond the head names it)."""
    header = params.optional(request, "Last-Event-ID")
    if header is not None:
        return "Last-Event-ID", header
    return "after", params.optional(request, "after")


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
        self.held = 0
        self.writer: AbstractStreamWriter | None = None
        self._loop = asyncio.get_running_loop()
        self._written_at = self._loop.time()

    def wanted(self, event: records.RecordedEvent) -> bool:
        return ((not self._types or event.type in self._types)
                and (not self._categories or streams.category_of(event.stream) in self._categories))

    def gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    def limit_buffers(self) -> None:
        """The subscriber's small send buffer: the socket's and the transport's."""
        transport = self.request.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # not a TCP socket (a test's pipe): the transport's limit holds
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.send_buffer)
        transport.set_write_buffer_limits(high=self.config.send_buffer)

    async def send(self, frames: list[tuple[int, bytes]]) -> None:
        """Write (position, frame)s in chunks of about ``chunk_bytes``, so a slow socket buffers
        little; ``sent`` follows every chunk handed to the connection, ``held`` counts what is
        still queued."""
        self.held = sum(len(data) for _, data in frames)
        chunk: list[bytes] = []
        size = last = 0
        try:
            for position, data in frames:
                chunk.append(data)
                size += len(data)
                last = position
                if size >= self.config.chunk_bytes:
                    await self.write(b"".join(chunk), last)
                    self.held -= size
                    chunk, size = [], 0
            if chunk:
                await self.write(b"".join(chunk), last)
        finally:
            self.held = 0

    async def write(self, data: bytes, last: int | None = None) -> None:
        """Hand ``data`` (frames up to position ``last``) to the connection, then wait for the
        transport to drain below the send buffer; ``sent`` moves once it is handed over (the client
        gets it before anything written later, the overflow message included)."""
        try:
            async with asyncio.timeout(self.config.write_timeout):
                await self.response.write(data)
                if last is not None:
                    self.sent = last
                if self.writer is not None:
                    await self.writer.drain()
        except TimeoutError as exc:
            raise _Cut(f"a write waited more than {self.config.write_timeout:g}s for the client",
                       "write_timeout") from exc

        self._written_at = self._loop.time()

    async def catch_up(self, tail: fanout.Tail, store_reads: int) -> int:
        """Paged reads from ``store_reads`` until the ring covers the cursor; returns the cursor."""
        scan = store_reads
        store = self.request.app[keys.STORE]
        size = min(self.config.page, FIRST_PAGE)
        await tail.ready()
        gate = self.request.app[CATCH_UP]
        pool = lanes.pool(self.request.app)
        while not tail.closed and not tail.covers(scan):
            async with gate:
                bound = tail.position
                page = await store.read_all(scan, size, types=self.types, categories=self.categories,
                                            until=bound, pool=pool)
                queued = self._queue(page)
            # Pages shrink to about what the queue takes, so big events are not read many times over.
            if len(queued) < len(page):
                scan = queued[-1][0]
                size = max(16, 2 * len(queued))
            else:
                scan = page[-1].position if len(page) == size else bound
                size = min(self.config.page, 2 * size)
            del page
            await self.send(queued)
        return scan

    def _queue(self, page: list[records.RecordedEvent]) -> list[tuple[int, bytes]]:
        """The page's frames up to ``queue_bytes`` (at least one): the subscriber's bounded queue."""
        queued: list[tuple[int, bytes]] = []
        size = 0
        for event in page:
            data = frame(event, self.source)
            queued.append((event.position, data))
            size += len(data)
            if size >= self.config.queue_bytes:
                break
        return queued

    async def follow(self, tail: fanout.Tail, scan: int) -> None:
        """Serve from the shared ring until shutdown, disconnect or a cut."""
        while not tail.closed:
            token = tail.token()
            try:
                entries = tail.since(scan, self.config.page)
            except fanout.Behind as exc:
                raise _Cut(f"fell more than {self.config.capacity} events behind the live head",
                           "behind") from exc
            if entries:
                scan = entries[-1].event.position
                await self.send([(e.event.position, self._encoded(e))
                                 for e in entries if self.wanted(e.event)])
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
@lanes.stream
async def live(request: web.Request) -> web.StreamResponse:
    types, categories = feed.filters(request)
    field, cursor = _cursor(request)
    config = config_of(request.app)
    tail = request.app[TAIL]
    await _available(request, tail)
    if cursor is None:
        cursor = tail.position
    elif cursor > tail.position:
        await reads.within_head(request, field, cursor)
    headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
               access.HEADER: access.request_id(request) or ""}
    if request.method == "HEAD":
        # The headers a GET would start with, and no stream: a HEAD response has no body.
        return web.Response(headers=headers)
    response = web.StreamResponse(headers=headers)
    stream = _Stream(request, response, config, types, categories)
    stream.limit_buffers()
    stream.writer = await response.prepare(request)
    stream.sent = cursor
    tail.readers += 1
    subscribers = request.app[SUBSCRIBERS]
    subscribers.add(stream)
    try:
        await stream.write(b"retry: %d\n\n" % config.retry_ms)
        scan = await stream.catch_up(tail, cursor)
        await stream.follow(tail, scan)
        if tail.closed and not stream.gone():
            await stream.write(_SHUTDOWN)
    except _Cut as cut:
        cut_off = request.app[CUT_OFF]
        cut_off[cut.reason] = cut_off.get(cut.reason, 0) + 1
        await stream.overflow(cut.why)
    except (errors.StoreUnavailable, ConnectionError):
        pass
    finally:
        tail.readers -= 1
        subscribers.discard(stream)
    return response
