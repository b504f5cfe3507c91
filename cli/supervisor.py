"""``ledger serve`` by default: the API, the projector and the applier as supervised processes.

Why: on one event loop the three share one core, so a burst of applies, a rebuild or a slow fold
takes CPU from the request path (single-event appends as ``make run`` served them reached 0.37x the
no-op handler, against 0.47x with the projector and the applier off). Each role in a process of its
own gets a core of its own where the machine has one.

Decisions:

- **One command, one data directory, one owner of the database.** This process (the supervisor)
  starts or adopts the embedded PostgreSQL and watches it (ledger/pgwatch.py), or uses
  ``--database-url``; it migrates once, then starts the children with the database's URL. It binds
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
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Final

import uvloop
from aiohttp import web

from api import health, keys, lifecycle, metrics, peers, server
from cli import listen, signals
from cli import spec as spec_mod
from ledger import components
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


def children(secret: str, api_sock: socket.socket,
             status: dict[str, socket.socket]) -> Callable[[web.Application], AsyncIterator[None]]:
    """The children as a cleanup context, after the database's (they need its URL)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[keys.SETTINGS].replace(database_url=app[keys.DSN])
        encoded = spec_mod.encode_settings(settings)
        urls = {role: listen.url(sock) for role, sock in status.items()}
        specs = [spec_mod.Spec("api", encoded, api_sock.fileno(), secret, peers=urls)]
        specs += [spec_mod.Spec(role, encoded, status[role].fileno(), secret)
                  for role in ("projector", "applier") if role in status]
        supervisor = Supervisor(app[keys.COMPONENTS], specs)
        supervisor.start()
        try:
            yield
        finally:
            await supervisor.stop()

    return context


def make_app(settings: settings_mod.Settings, api_sock: socket.socket) -> tuple[web.Application, socket.socket]:
    """The supervisor's app (database, children, status port) and the status socket it serves on."""
    secret = secrets.token_urlsafe(32)
    status = {SUPERVISOR: listen.bind("127.0.0.1", 0)}
    for role in ("projector", "applier"):
        if getattr(settings, role):
            status[role] = listen.bind("127.0.0.1", 0)
    app = web.Application(middlewares=[peers.guard(secret)])
    app[keys.SETTINGS] = settings
    app[keys.COMPONENTS] = components.Registry()
    lifecycle.load_credentials(app)
    app.cleanup_ctx.extend([lifecycle.database, children(secret, api_sock, status)])
    app.add_routes(health.routes)
    metrics.install(app)
    return app, status[SUPERVISOR]


async def _serve(app: web.Application, sock: socket.socket) -> None:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        await signals.until_stopped()
    finally:
        await runner.cleanup()


def run(settings: settings_mod.Settings, api_sock: socket.socket) -> int:
    """Serve until SIGINT or SIGTERM; 1 when the service stopped itself (``keys.FATAL`` says why)."""
    server.raise_fd_limit()
    app, status_sock = make_app(settings, api_sock)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(app, status_sock))
    for message in app.get(keys.FATAL, []):
        print(f"ledger serve: {message}", file=sys.stderr, flush=True)
        return 1
    return 0
