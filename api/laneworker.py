"""A lane worker: a process that runs the expensive lane's jobs at the lowest CPU priority.

Started by the API process (api/workers.py) as ``python -m api.laneworker`` when the expensive lane
is used, never by hand; it exits at the end of its stdin (the API process closes it once the worker
has been idle ``expensive_idle_exit`` seconds, or is gone), so the memory a whole-fleet replay used
goes back to the system with it.

Why a process at idle priority: a replay fold or a chain's hash recomputation is seconds of CPU
holding the interpreter's lock; in the API process's worker thread it took the loop's turns (append
p99 26.6 ms unloaded, 345.6 ms under 100 replay and 10 verify loops). Here it runs under
``SCHED_IDLE`` (else nice 19), so the kernel runs the API's loop, the projector and the applier
first; and its PostgreSQL backend gets nice 19 where this process may set it (PostgreSQL has no
priority of its own; the database on this host, same user or root), so the backend's scans yield
to the cheap lane's queries too. The worker stays in the API process's session (no setsid): nice
and SCHED_IDLE weigh against the other processes of its scheduling autogroup, which is the session.

Stdout carries only the protocol's frames (api/lanejobs.py): it is moved to a descriptor of its
own at start, and descriptor 1 then points at stderr, so nothing printed corrupts a frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import urllib.parse
from typing import IO, Final

import asyncpg

from api import lanejobs
from ledger import db, dbfaults, errors, logs

log = logging.getLogger("ledger.laneworker")
APPLICATION: Final = "ledger-lane-worker"
_LOCAL_HOSTS: Final = frozenset({"", "localhost", "127.0.0.1", "::1"})
# How a connection that ended while the worker was idle fails its next statement.
_STALE: Final = frozenset({"connection", "shutdown"})


def lower_priority() -> None:
    """Every thread of this process (and those it starts afterwards) at the lowest CPU priority.

    Called once connected: starting up and connecting run at normal priority, so a busy machine
    delays a worker's start (bounded by ``db_timeout`` in api/workers.py) no more than any other
    process's. On Linux a thread's priority is its own: each thread there is set."""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for tid in threads:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, 19)
        if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
            with contextlib.suppress(OSError):
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))


def _on_this_host(dsn: str) -> bool:
    parsed = urllib.parse.urlsplit(dsn)
    hosts = [*urllib.parse.parse_qs(parsed.query).get("host", []), parsed.hostname or ""]
    return all(host.startswith("/") or host.startswith("127.") or host in _LOCAL_HOSTS for host in hosts)


async def deprioritise_backend(conn: asyncpg.Connection, dsn: str) -> tuple[int, str]:
    """Nice 19 for this connection's backend; its pid, and why not when it may not be done."""
    backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
    if not _on_this_host(dsn):
        return backend, "the database is on another host"
    try:
        os.setpriority(os.PRIO_PROCESS, backend, 19)
    except OSError as exc:
        return backend, f"{type(exc).__name__}: {exc.strerror}"
    return backend, ""


class Worker:
    def __init__(self, start: lanejobs.Start) -> None:
        self.start = start
        self.conn: asyncpg.Connection | None = None
        self.backend = 0
        self.reused = False

    async def connect(self) -> lanejobs.Answer:
        self.conn = await db.connect(self.start.dsn, timeout=self.start.timeout, command_timeout=self.start.timeout,
                                     server_settings={"application_name": APPLICATION})
        lower_priority()
        async with db.translated():
            self.backend, why_not = await deprioritise_backend(self.conn, self.start.dsn)
        return lanejobs.Answer("ready", pid=os.getpid(), backend=self.backend, detail=why_not)

    async def answer(self, job: lanejobs.Job) -> lanejobs.Answer:
        try:
            try:
                return await self._run(job)
            except errors.StoreUnavailable as exc:
                if not self.reused or dbfaults.kind(exc) not in _STALE:
                    raise
                # The connection ended while the worker was idle (a database restart, a terminated
                # backend): not an outage of now. Once more on a fresh connection.
                return await self._run(job)
        except errors.StoreUnavailable as exc:
            self._drop()
            cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else ""
            return lanejobs.Answer("unavailable", detail=cause)
        except Exception as exc:
            log.exception("lane worker job failed")
            return lanejobs.Answer("error", detail=type(exc).__name__)

    async def _run(self, job: lanejobs.Job) -> lanejobs.Answer:
        self.reused = self.conn is not None and not self.conn.is_closed()
        try:
            if not self.reused:
                await self.connect()
            assert self.conn is not None
            async with db.translated():
                answer = await lanejobs.run(self.conn, job)
        except errors.StoreUnavailable:
            self._drop()
            raise
        answer.backend = self.backend
        return answer

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.terminate()
            self.conn = None


async def serve(source: IO[bytes], sink: IO[bytes]) -> None:
    first = await asyncio.to_thread(lanejobs.read_request, source)
    if not isinstance(first, lanejobs.Start):
        return
    logs.configure(first.log_format, first.log_level)
    worker = Worker(first)
    try:
        ready = await worker.connect()
    except errors.StoreUnavailable as exc:
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else ""
        ready = lanejobs.Answer("unavailable", detail=cause)
    sink.write(lanejobs.frame(ready))
    sink.flush()
    while (job := await asyncio.to_thread(lanejobs.read_request, source)) is not None:
        if isinstance(job, lanejobs.Start):
            continue
        sink.write(lanejobs.frame(await worker.answer(job)))
        sink.flush()
    if worker.conn is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.conn.close(), 1)


def main() -> None:
    # Its lifetime is the API process's to decide (end of stdin); ^C in a terminal reaches the
    # whole process group, and the API process stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    logs.configure("auto", "WARNING")  # until the API process says how it logs (lanejobs.Start)
    # A stop at an undecodable event is logged and counted by the API process, with the service's
    # log format and metrics (api/lanes.py), not twice.
    logging.getLogger("projections.undecodable").disabled = True
    source = os.fdopen(0, "rb")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(source, sink))


if __name__ == "__main__":
    main()
