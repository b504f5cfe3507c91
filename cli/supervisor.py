"""``ledger serve`` by default: the API, the projector and the applier as supervised processes.

Why: on one event loop the three share one core, so a burst of applies, a rebuild or a slow fold
takes CPU from the request path (single-event appends as ``make run`` served them reached 0.37x the
no-op handler, against 0.47x with the projector and the applier off). Each role in a process of its
own gets a core of its own where the machine has one.

Decisions:

- **One command, one data directory, one owner of the database.** This process (the supervisor)
  starts or adopts the embedded PostgreSQL and watches it (ledger/pgwatch.py), or uses
  ``--database-url``; it migrates once (``ledger db migrate`` as a child: a failure stops it with
  that message), then starts the children with the database's URL. It binds
  the API's port before anything starts (a port in use stops it at once) and every status port
  (api/peers.py) too, and hands each child its socket: a child that is restarted serves on the same
  port, and connections that arrive meanwhile wait in the backlog instead of being refused.
- **Children are ``python -m cli.roles <role>``** (a fresh interpreter, not a fork of a process with an
  event loop and open connections), told what to do on stdin (cli/spec.py), in a session of their
  own so that a terminal's Ctrl-C reaches the supervisor alone and the stop is orderly.
- **A child that dies is restarted** with capped exponential backoff (``FIRST_DELAY`` doubling to
  ``MAX_DELAY``, starting over once a child has run longer than the cap), logged with its exit
  status, counted (``ledger_task_restarts_total{task="<role>-process"}``) and shown in /readyz as
  ``<role>-process`` restarting, with that status, until it runs again; the API process also sees
  the child's status port not answering meanwhile.
- **A small process.** It is one of four resident interpreters, so it imports only what it runs:
  no aiohttp, no database driver, no API, no Kubernetes client (about 30 MB of RSS instead of 55;
  tests/test_imports.py holds it to that). Its status port is the standard library's HTTP server
  (cli/status.py); the children import what their role needs (cli/roles.py).
- **SIGINT or SIGTERM stops everything**: every child gets SIGTERM and stops cleanly (the applier
  releases its claims, the API finishes its requests); one still running after ``STOP_GRACE`` s is
  killed; then the embedded PostgreSQL is stopped. A supervisor that is killed outright leaves no
  orphan either: each child stops itself when its stdin reaches end of file (cli/roles.py). The
  embedded PostgreSQL then keeps running and the next ``ledger serve`` adopts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Final

import uvloop

from cli import exits, listen, signals, status
from cli import spec as spec_mod
from ledger import components, credfile, pgembed, pgwatch
from ledger import settings as settings_mod

log = logging.getLogger(__name__)

FIRST_DELAY: Final = 0.1
MAX_DELAY: Final = 10.0
STOP_GRACE: Final = 20.0
SUPERVISOR: Final = "supervisor"


def exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


class Supervisor:
    """Keeps one process per spec running until ``stop``."""

    def __init__(self, registry: components.Registry, specs: list[spec_mod.Spec], *,
                 first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY,
                 grace: float = STOP_GRACE) -> None:
        self._registry = registry
        self._specs = specs
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._grace = grace
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.processes: dict[str, asyncio.subprocess.Process] = {}

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._keep(spec), name=f"{spec.role}-process") for spec in self._specs]

    async def _spawn(self, spec: spec_mod.Spec) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli.roles", spec.role, stdin=asyncio.subprocess.PIPE, pass_fds=(spec.fd,),
            start_new_session=True)
        assert proc.stdin is not None
        proc.stdin.write(spec_mod.line(spec))
        await proc.stdin.drain()
        return proc

    async def _keep(self, spec: spec_mod.Spec) -> None:
        loop = asyncio.get_running_loop()
        name = f"{spec.role}-process"
        delay = self._first_delay
        try:
            while not self._stopping.is_set():
                started = loop.time()
                pid: int | None = None
                try:
                    proc = await self._spawn(spec)
                except OSError as exc:
                    what = f"could not be started ({exc})"
                else:
                    pid = proc.pid
                    self.processes[spec.role] = proc
                    self._registry.up(name, pid=pid)
                    log.info("the %s process started (pid %d)", spec.role, pid)
                    if self._stopping.is_set():
                        proc.send_signal(signal.SIGTERM)
                    code = await proc.wait()
                    if self._stopping.is_set():
                        return
                    what = exit_text(code)
                if loop.time() - started > self._max_delay:
                    delay = self._first_delay
                self._registry.count_restart(name)
                self._registry.restarting(name, f"the {spec.role} process {what}; restarting it in {delay:.1f} s",
                                          **({"pid": pid} if pid is not None else {}))
                log.error("the %s process%s %s; restarting it in %.1f s", spec.role,
                          f" (pid {pid})" if pid is not None else "", what, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, self._max_delay)
        finally:
            self._registry.forget(name)

    async def stop(self) -> None:
        """SIGTERM to every child, SIGKILL to one still running after the grace; all waited for."""
        self._stopping.set()
        running = [proc for proc in self.processes.values() if proc.returncode is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self._grace)
            for proc in running:
                if proc.returncode is None:
                    log.error("the process %d did not stop within %.0f s of SIGTERM; killing it", proc.pid,
                              self._grace)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            if late:
                await asyncio.wait(late, timeout=5)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for proc in self.processes.values():
            if proc.stdin is not None:
                proc.stdin.close()


async def _migrate(dsn: str) -> str | None:
    """``ledger db migrate`` in a process of its own (the database driver stays out of this one);
    what went wrong, or None."""
    env = {**os.environ, "LEDGER_DATABASE_URL": dsn}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "db", "migrate", env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode == 0:
        applied = out.decode(errors="replace").strip()
        if not applied.endswith("(up to date)"):
            log.info("migrations %s", applied)
        return None
    said = err.decode(errors="replace").strip().removeprefix("ledger: ")
    return said or f"ledger db migrate {exit_text(proc.returncode or 0)}"


@contextlib.asynccontextmanager
async def database(settings: settings_mod.Settings, registry: components.Registry,
                   give_up: Callable[[str], None]) -> AsyncIterator[str]:
    """The database's URL: the configured one, or the embedded PostgreSQL's, started or adopted
    here, watched (ledger/pgwatch.py) and stopped at exit; migrated once before anything starts."""
    owned: pgembed.EmbeddedPostgres | None = None
    if settings.database_url:
        dsn = settings.database_url
    else:
        dsn, owned = await asyncio.to_thread(pgembed.start_or_join, settings.data_dir, stop_adopted=True)
        log.info("embedded PostgreSQL at %s (data in %s)", dsn, settings.data_dir.resolve() / "pg")
    try:
        failed = await _migrate(dsn)
        if failed is not None:
            raise exits.Failure(exits.Code.FAILED, failed)
        if owned is None:
            yield dsn
            return
        watch = pgwatch.Watch(owned, registry, give_up)

        def watched(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.critical("the embedded PostgreSQL's watch failed", exc_info=task.exception())
                give_up(f"the embedded PostgreSQL's watch failed: {task.exception()}")

        watching = asyncio.create_task(watch.run(), name=f"{pgwatch.NAME}-watch")
        watching.add_done_callback(watched)
        try:
            yield dsn
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
    finally:
        if owned is not None:
            await asyncio.to_thread(owned.stop)


async def _serve(settings: settings_mod.Settings, api_sock: socket.socket, fatal: list[str]) -> None:
    secret = secrets.token_urlsafe(32)
    status_socks = {SUPERVISOR: listen.bind("127.0.0.1", 0)}
    for role in ("projector", "applier"):
        if getattr(settings, role):
            status_socks[role] = listen.bind("127.0.0.1", 0)
    registry = components.Registry()

    def give_up(message: str) -> None:
        fatal.append(message)
        signal.raise_signal(signal.SIGTERM)

    stopped = asyncio.ensure_future(signals.until_stopped())
    status_port = status.StatusServer(status_socks[SUPERVISOR], registry, secret, asyncio.get_running_loop())
    status_port.start()
    try:
        async with database(settings, registry, give_up) as dsn:
            encoded = spec_mod.encode_settings(settings.replace(database_url=dsn))
            urls = {role: listen.url(sock) for role, sock in status_socks.items()}
            specs = [spec_mod.Spec("api", encoded, api_sock.fileno(), secret, peers=urls)]
            specs += [spec_mod.Spec(role, encoded, status_socks[role].fileno(), secret)
                      for role in ("projector", "applier") if role in status_socks]
            supervisor = Supervisor(registry, specs)
            supervisor.start()
            try:
                await stopped
            finally:
                await supervisor.stop()
    finally:
        stopped.cancel()
        status_port.close()


def run(settings: settings_mod.Settings, api_sock: socket.socket) -> int:
    """Serve until SIGINT or SIGTERM; 1 when the service stopped itself (the message on stderr)."""
    credfile.Watched.from_settings(settings)  # a malformed credentials file stops start-up here
    fatal: list[str] = []
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(settings, api_sock, fatal))
    for message in fatal:
        print(f"ledger serve: {message}", file=sys.stderr, flush=True)
        return 1
    return 0
