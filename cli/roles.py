"""One process of a multi-process ``ledger serve``: the API, the projector or the applier.

Started by the supervisor (cli/supervisor.py) as ``python -m cli.roles <role>`` (the role on the
command line only so that ``ps`` shows which process is which), never by hand. What it is
to do arrives as one JSON line on stdin (``Spec``): its role, the service's settings (already read
and checked once by ``ledger serve``, with the database URL the supervisor chose), the descriptor of
the listening socket it inherited, and, for the API, where its peers answer. Stdin then stays open:
end of file means the supervisor is gone (even killed with SIGKILL), and the process stops itself
as on SIGTERM, so no child outlives its supervisor.

The API process serves the application exactly as a single-process ``ledger serve`` does, with the
projector and the applier off in it and the peers installed (api/peers.py). The projector and the
applier processes run the same cleanup contexts as the single process does for their part, and
answer ``/healthz``, ``/readyz`` and ``/metrics`` on their status socket (loopback, the run's secret).
Each imports what its role runs, when it knows its role: the web UI's templates stay out of the
projector and the applier, the Kubernetes client out of the API and the projector
(tests/test_imports.py). Each keeps glibc's mmap threshold fixed (ledger/heap.py), so the large
blocks of a fold or a snapshot go back to the system when freed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
from typing import TYPE_CHECKING

from cli import options, signals
from cli import spec as spec_mod
from ledger import heap
from ledger import settings as settings_mod

if TYPE_CHECKING:
    from aiohttp import web


def status_app(settings: settings_mod.Settings, role: spec_mod.Role, secret: str) -> web.Application:
    """The projector's or the applier's process: its part of the service, and its status port."""
    from aiohttp import web

    from api import health, keys, lifecycle, metrics, peers
    from ledger import components

    app = web.Application(middlewares=[peers.guard(secret)])
    app[keys.SETTINGS] = settings
    app[keys.COMPONENTS] = components.Registry()
    lifecycle.load_credentials(app)
    app.cleanup_ctx.extend([lifecycle.database, lifecycle.event_store])
    if role == "projector":
        app.cleanup_ctx.append(lifecycle.projection)
    else:
        app.cleanup_ctx.extend([lifecycle.credentials, lifecycle.applier])
    app.add_routes(health.routes)
    metrics.install(app)
    return app


def prepare(spec: spec_mod.Spec, settings: settings_mod.Settings) -> web.Application:
    """The application of ``spec.role``'s process, with the modules that role runs (and no others)."""
    if spec.role == "api":
        from api import app as app_mod
        from api import peers

        app = app_mod.make_app(settings.replace(projector=False, applier=False))
        peers.install(app, spec.peers, spec.secret)
        return app
    return status_app(settings.replace(projector=spec.role == "projector", applier=spec.role == "applier"),
                      spec.role, spec.secret)


def _stop_when_orphaned() -> None:
    """SIGTERM to this process once stdin reaches end of file (the supervisor is gone)."""
    def watch() -> None:
        # os.read, not sys.stdin: a daemon thread blocked in a buffered reader aborts the
        # interpreter's shutdown (it cannot take the reader's lock).
        while os.read(0, 4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


async def _serve_status(app: web.Application, sock: socket.socket) -> None:
    from aiohttp import web

    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        await signals.until_stopped()
    finally:
        await runner.cleanup()


def main() -> int:
    spec, settings = spec_mod.read(sys.stdin.buffer.readline())
    heap.cap_mmap_threshold()
    options.configure_logging(settings)
    _stop_when_orphaned()
    sock = socket.socket(fileno=spec.fd)
    app = prepare(spec, settings)
    if spec.role == "api":
        from cli import serve

        return serve.run(app, settings, serve.tls_context(settings), sock=sock)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve_status(app, sock))
    return 0


if __name__ == "__main__":
    sys.exit(main())
