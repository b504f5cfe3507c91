"""Lanes: cheap requests never queue behind expensive ones, and no one client holds the expensive lane.

Why: a replay (``/v1/state?at=``) folds up to the whole log, a verify recomputes every hash, a feed
page or a live catch-up reads up to a thousand events. Served from the same pool as appends,
digests and single reads, a hundred of them took every connection and the cheap requests got 503.

Decisions:

- **Two lanes.** The cheap lane is every handler not decorated with ``expensive`` (``EXPENSIVE``
  lists them; a test holds the two to each other): the store's pool
  (``db_pool_size``) and the batching writer. The expensive lane is a semaphore of
  ``expensive_concurrency`` turns, a lane worker per turn with a database connection of its own,
  and a PostgreSQL pool of its own with a connection per turn for what runs here (feed pages), so
  an expensive request that has its turn always finds a connection, and never takes one from the
  cheap lane. Live catch-up reads (api/live.py) read through the same pool, on ``CATCH_UP_READS``
  permits with a connection each.
- **Wait briefly, then 503.** An expensive request beyond the lane's limit waits up to
  ``expensive_wait`` seconds for a turn, then gets 503 + ``Retry-After`` (problem+json). It never
  holds anything of the cheap lane while it waits. When a request ahead of it found the database
  unavailable meanwhile, it gets 503 as soon as it has its turn, so an outage still answers within
  ``db_timeout`` and waiting in the lane does not add another one.
- **Per client, 429.** One token (its name; the client address for a request without one) runs at
  most ``client_expensive_limit`` expensive requests and holds at most ``client_stream_limit`` SSE
  streams at once; past that it gets 429 + ``Retry-After`` at once, so one client cannot fill the
  lane for the others. A request counts from the moment it waits for its turn.
- **Replays and verifies in lane workers.** The replay fold of ``/v1/state?at=`` with its answer's
  encoding, and the hash chain of ``/v1/verify`` (and the audit page's), run in worker processes
  at idle CPU priority, started on demand, at most one per turn, gone after
  ``expensive_idle_exit`` s idle (api/workers.py, api/laneworker.py, api/lanejobs.py): on two
  cores a fold in this process took the event loop's CPU and the interpreter's lock (append p99
  26.6 ms unloaded, 345.6 ms under 100 replay and 10 verify loops, 1,000,000 events), and its
  memory stayed in the process (260-345 MB). A handler calls ``run`` on its turn.
- **Concurrent verifies share one run.** ``coalesced`` routes count against their client's limit
  at once; ``shared`` runs a job once for every request that asks for it while it runs (the first
  asker's run takes a turn, the others wait for its answer without one), as the digest of one head
  is one computation.
- **What stays here, off the loop on one thread.** Feed pages and SSE catch-up reads run in this
  process, a page at a time in a worker thread, so the event loop keeps serving meanwhile (the
  audit page's folds run in a lane worker, as ``/v1/state``'s do). They hold the interpreter's
  lock while they run, so ``share_the_interpreter``
  gives the process's default executor ``OFF_LOOP_THREADS`` thread (the loop then waits for the
  lock behind one thread, not behind one per turn of the lane) and sets the lock's switch interval
  to ``SWITCH_INTERVAL`` (1 ms: each time the loop wakes it waits up to that long).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, TypeVar

import asyncpg
from aiohttp import web

from api import auth, keys, lanejobs, problems
from api import workers as workers_mod
from ledger import db, errors, heap
from projections import undecodable

R = TypeVar("R", bound=web.StreamResponse)

# Seconds the lane stays idle before the memory its requests freed is handed back (give_back_memory).
TRIM_AFTER: Final = 1.0
OFF_LOOP_THREADS: Final = 1
SWITCH_INTERVAL: Final = 0.001


def share_the_interpreter(loop: asyncio.AbstractEventLoop) -> None:
    """Make CPU-bound work off the loop take turns with it briefly (see the module's docstring)."""
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(OFF_LOOP_THREADS, thread_name_prefix="off-loop"))
    sys.setswitchinterval(SWITCH_INTERVAL)

# SSE catch-up reads at once per process (api/live.py); each holds its permit only for one page's
# read and encoding, and has a connection of the lane's pool reserved for it.
CATCH_UP_READS: Final = 4

# The routes on the expensive lane (``expensive``), and those that hold a stream slot (``stream``).
EXPENSIVE: Final = frozenset({("GET", "/v1/state"), ("GET", "/v1/verify"), ("GET", "/v1/feed"),
                              ("GET", "/audit")})
STREAMS: Final = frozenset({("GET", "/v1/feed/live")})


@dataclasses.dataclass
class Lane:
    """The expensive lane of one process: its turns, its pool, and who holds what."""

    limit: int
    wait: float
    client_limit: int
    stream_limit: int
    retry_after: int
    pool: asyncpg.Pool
    timeout: float
    turns: asyncio.Semaphore = dataclasses.field(init=False)
    busy: int = 0
    refused: int = 0
    outage_at: float = -1.0
    limited: int = 0
    expensive: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    streams: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    workers: workers_mod.Workers = dataclasses.field(kw_only=True)
    # Jobs run by a worker, by kind; verifies answered from another request's run.
    runs: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    coalesced: int = 0
    flights: dict[tuple[object, ...], asyncio.Task[bytes]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.turns = asyncio.Semaphore(self.limit)
        self._idle_since = 0.0
        self._trim: asyncio.TimerHandle | None = None

    def _schedule_trim(self) -> None:
        """An expensive request or a stream has ended: trim once the lane has been idle a while."""
        if self.busy:
            return
        loop = asyncio.get_running_loop()
        self._idle_since = loop.time()
        if self._trim is None:
            self._trim = loop.call_later(TRIM_AFTER, self._trim_when_idle)

    def _trim_when_idle(self) -> None:
        """Once the lane has been idle for ``TRIM_AFTER`` s, give the heap's free pages back."""
        loop = asyncio.get_running_loop()
        self._trim = None
        if self.busy:
            return  # the next request to finish schedules it again
        left = self._idle_since + TRIM_AFTER - loop.time()
        if left > 0:
            self._trim = loop.call_later(left, self._trim_when_idle)
        else:
            loop.run_in_executor(None, give_back_memory)

    def connection(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        return db.pooled(self.pool, timeout=self.timeout)

    def _too_many(self, client: str, what: str, limit: int) -> problems.Problem:
        self.limited += 1
        return problems.Problem(
            429, "Too many requests",
            f"{client} already has {limit} {what} open, the most one client may; retry after "
            f"{self.retry_after} s", headers={"Retry-After": str(self.retry_after)}, limit=limit)

    @contextlib.asynccontextmanager
    async def stream(self, client: str) -> AsyncIterator[None]:
        if self.streams[client] >= self.stream_limit:
            raise self._too_many(client, "live streams", self.stream_limit)
        self.streams[client] += 1
        try:
            yield
        finally:
            _drop(self.streams, client)
            self._schedule_trim()

    @contextlib.asynccontextmanager
    async def turn(self, client: str) -> AsyncIterator[None]:
        async with self.counted(client), self.slot():
            yield

    @contextlib.asynccontextmanager
    async def counted(self, client: str) -> AsyncIterator[None]:
        """One of ``client``'s expensive requests (429 past its limit)."""
        if self.expensive[client] >= self.client_limit:
            raise self._too_many(client, "expensive requests", self.client_limit)
        self.expensive[client] += 1
        try:
            yield
        finally:
            _drop(self.expensive, client)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """A turn of the lane: wait up to ``wait`` s for it, else 503."""
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        try:
            async with asyncio.timeout(self.wait):
                await self.turns.acquire()
        except TimeoutError:
            self.refused += 1
            raise problems.Problem(
                503, "Service busy",
                f"all {self.limit} turns for expensive requests (replay, verify, feed) are taken; "
                f"retry after {self.retry_after} s",
                headers={"Retry-After": str(self.retry_after)}) from None
        self.busy += 1
        try:
            if self.outage_at >= arrived:
                # A request ahead of this one found the database unavailable while this one
                # waited: answer 503 now rather than wait out the database timeout once more.
                raise errors.StoreUnavailable("the database did not answer a request ahead of this one")
            yield
        except errors.StoreUnavailable:
            self.outage_at = loop.time()
            raise
        finally:
            self.busy -= 1
            self.turns.release()
            self._schedule_trim()

    async def run(self, job: lanejobs.Job) -> bytes:
        """``job`` run by a lane worker (the caller holds a turn): its answer's body."""
        self.runs[type(job).__name__.lower()] += 1
        return answered(await self.workers.run(job))

    async def shared(self, job: lanejobs.Job) -> bytes:
        """``job``'s answer, computed once for every request that asks for it while it runs.

        The first asker's run takes a turn (and waits for it as any expensive request); those that
        ask for the same job meanwhile wait for that run's answer without a turn of their own. The
        run is a task of its own, so an asker that leaves takes nobody's answer with it."""
        key = lanejobs.key(job)
        flight = self.flights.get(key)
        if flight is None:
            flight = asyncio.get_running_loop().create_task(self._fly(job))
            self.flights[key] = flight
            flight.add_done_callback(functools.partial(self._landed, key))
        else:
            self.coalesced += 1
        return await asyncio.shield(flight)

    async def _fly(self, job: lanejobs.Job) -> bytes:
        async with self.slot():
            return await self.run(job)

    def _landed(self, key: tuple[object, ...], flight: asyncio.Task[bytes]) -> None:
        if self.flights.get(key) is flight:
            del self.flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: each asker gets it from its own await


def answered(answer: lanejobs.Answer) -> bytes:
    """A worker's answer as the route answers it: the body, or the exception the route raised."""
    match answer.status:
        case "ok":
            return answer.body
        case "invalid":
            raise problems.invalid(answer.field, answer.detail)
        case "unavailable":
            raise errors.StoreUnavailable(answer.detail or "no answer from the database") from _cause(answer.detail)
        case "undecodable":
            raise undecodable.stopped(errors.Undecodable(answer.reader, answer.position, answer.stream, answer.type,
                                                         answer.detail))
    raise RuntimeError(f"the lane worker failed: {answer.detail}")


_CAUSES: Final[dict[str, type[Exception]]] = {}


def _cause(name: str) -> Exception | None:
    """The driver's error in the worker, by the name of its class: the one thing of it a 503 tells
    (api/problems.py), so the answer reads as it did when the route read in-process."""
    if not name.isidentifier():
        return None
    if name not in _CAUSES:
        _CAUSES[name] = type(name, (Exception,), {})
    return _CAUSES[name]()


def give_back_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    Why: a replay builds the whole fleet as it stood, and its answer; freed when the request is done,
    their memory stays in the process (the heap's free lists) until something trims it. Run when the
    lane has been idle for ``TRIM_AFTER`` s after an expensive request or an SSE stream ended (a
    subscriber's buffers go too; a trim holds the allocator's lock: never under the lane's load),
    in the worker thread (ctypes releases the interpreter's lock for the call)."""
    heap.trim()


def _drop(counter: collections.Counter[str], client: str) -> None:
    counter[client] -= 1
    if counter[client] <= 0:
        del counter[client]


LANE: Final = web.AppKey("expensive_lane", Lane)


def client_of(request: web.Request) -> str:
    """Who a per-client limit counts: the token's name, else the client's address."""
    name = auth.actor(request)
    if name is not None:
        return f"token {name!r}"
    return f"client {request.remote or 'unknown'}"


def connection(request: web.Request) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection of the expensive lane's pool (for a handler that has its turn)."""
    return request.app[LANE].connection()


def pool(app: web.Application) -> asyncpg.Pool:
    return app[LANE].pool


async def context(app: web.Application) -> AsyncIterator[None]:
    """The expensive lane's pool, for as long as the app runs (after the event store)."""
    settings = app[keys.SETTINGS]
    lane_pool = await db.create_pool(app[keys.DSN], max_size=settings.expensive_concurrency + CATCH_UP_READS,
                                     timeout=settings.db_timeout)
    lane_workers = workers_mod.Workers(app[keys.DSN], timeout=settings.db_timeout,
                                       idle_exit=settings.expensive_idle_exit, retry_after=settings.retry_after,
                                       log_format=settings.log_format, log_level=settings.log_level)
    app[LANE] = Lane(limit=settings.expensive_concurrency, wait=settings.expensive_wait,
                     client_limit=settings.client_expensive_limit, stream_limit=settings.client_stream_limit,
                     retry_after=settings.retry_after, pool=lane_pool, timeout=settings.db_timeout,
                     workers=lane_workers)
    yield
    await lane_workers.stop()
    try:
        await asyncio.wait_for(lane_pool.close(), 5)
    except TimeoutError:
        lane_pool.terminate()


_KINDS: Final[dict[object, str]] = {}


def expensive(handler: Callable[[web.Request], Awaitable[R]]) -> Callable[[web.Request], Awaitable[R]]:
    """The handler runs on a turn of the expensive lane (after access control: the limit counts
    the token). A decorator, not a middleware, so cheap requests pay nothing for the lanes."""

    @functools.wraps(handler)
    async def on_a_turn(request: web.Request) -> R:
        async with request.app[LANE].turn(client_of(request)):
            return await handler(request)

    _KINDS[on_a_turn] = "expensive"
    return on_a_turn


def coalesced(handler: Callable[[web.Request], Awaitable[R]]) -> Callable[[web.Request], Awaitable[R]]:
    """Like ``expensive``, for a handler whose work is one ``shared`` job: the request counts
    against its client's limit at once, and takes a turn only if no request runs the same job."""

    @functools.wraps(handler)
    async def counted(request: web.Request) -> R:
        async with request.app[LANE].counted(client_of(request)):
            return await handler(request)

    _KINDS[counted] = "expensive"
    return counted


async def run(request: web.Request, job: lanejobs.Job) -> bytes:
    """``job``'s answer body from a lane worker (the handler holds a turn: ``expensive``)."""
    return await request.app[LANE].run(job)


async def shared(request: web.Request, job: lanejobs.Job) -> bytes:
    """``job``'s answer body, shared with the requests for the same job meanwhile (``coalesced``)."""
    return await request.app[LANE].shared(job)


def stream(handler: Callable[[web.Request], Awaitable[R]]) -> Callable[[web.Request], Awaitable[R]]:
    """The handler holds one of its client's SSE stream slots while it runs."""

    @functools.wraps(handler)
    async def in_a_slot(request: web.Request) -> R:
        async with request.app[LANE].stream(client_of(request)):
            return await handler(request)

    _KINDS[in_a_slot] = "stream"
    return in_a_slot


def kind_of(handler: object) -> str:
    """``expensive``, ``stream`` or ``cheap``: how a route's handler is served."""
    return _KINDS.get(handler, "cheap")
