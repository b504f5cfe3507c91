"""The listening socket of a command that serves HTTP, bound before anything else starts.

So that a port in use (or a host that is not this machine's) is one line and exit 1 at once,
before an embedded PostgreSQL is started only to be stopped again; the bound socket is then
handed to aiohttp.
"""

from __future__ import annotations

import errno
import os
import socket

from cli import exits

BACKLOG = 128


def bind(host: str, port: int) -> socket.socket:
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
        return socket.create_server(address, family=family, backlog=BACKLOG)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno and not isinstance(exc, socket.gaierror) else exc.strerror
        hint = " (is another service on it? choose another with --http-port)" if exc.errno == errno.EADDRINUSE else ""
        raise exits.Failure(exits.Code.FAILED, f"cannot listen on {host}:{port}: {reason or exc}{hint}") from exc


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
