"""The emulator process: many clusters behind one aiohttp server.

:class:`Emulator` owns the clusters, the shared discovery documents and the
aiohttp application.  Each cluster's API base URL is
``http://HOST:PORT/clusters/<name>``, usable directly as a kubernetes-asyncio
``Configuration.host``.  Use it in-process::

    async with serve(clusters=["a", "b"]) as emu:
        url = emu.cluster_url("a")

or with explicit ``await emu.start()`` / ``await emu.stop()``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

from aiohttp import web

from emulator.admin import admin_routes
from emulator.api import make_handler
from emulator.catalog import DEFAULT_CATALOG, Catalog
from emulator.cluster import Cluster
from emulator.discovery import Discovery

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$")
MAX_BODY = 3 * 1024 * 1024  # the real API server's request size limit


class Emulator:
    """A set of emulated Kubernetes API servers served over real HTTP.

    ``auto_create=True`` creates a cluster on its first request (handy for
    benchmarks with thousands of clusters); otherwise unknown clusters are 404.
    """

    def __init__(
        self,
        clusters: Iterable[str] = (),
        *,
        auto_create: bool = False,
        catalog: Catalog = DEFAULT_CATALOG,
        request_log_limit: int = 10_000,
        cluster_settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.auto_create = auto_create
        self.cluster_settings = dict(cluster_settings or {})
        self.catalog = catalog
        self.discovery = Discovery(catalog)
        self.request_log_limit = request_log_limit
        self._clusters: dict[str, Cluster] = {}
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._stopping: asyncio.Event | None = None
        for name in clusters:
            self.add_cluster(name)

    # -------------------------------------------------------------- clusters

    def add_cluster(self, name: str) -> Cluster:
        """Create a cluster (or return the existing one with that name)."""
        existing = self._clusters.get(name)
        if existing is not None:
            return existing
        if not _CLUSTER_NAME.match(name):
            raise ValueError(f"invalid cluster name {name!r}: use letters, digits, '-', '_' and '.'")
        cluster = Cluster(name, self.catalog, request_log_limit=self.request_log_limit)
        if self.cluster_settings:
            cluster.configure(self.cluster_settings)
        self._clusters[name] = cluster
        return cluster

    def remove_cluster(self, name: str) -> bool:
        cluster = self._clusters.pop(name, None)
        if cluster is None:
            return False
        cluster.controllers.cancel_all()
        cluster.drop_watches()
        return True

    def cluster(self, name: str) -> Cluster:
        """The cluster called ``name``; KeyError if there is none."""
        try:
            return self._clusters[name]
        except KeyError:
            raise KeyError(f"no emulated cluster named {name!r}") from None

    def cluster_names(self) -> list[str]:
        return list(self._clusters)

    @property
    def clusters(self) -> dict[str, Cluster]:
        return dict(self._clusters)

    def __contains__(self, name: object) -> bool:
        return name in self._clusters

    def lookup(self, name: str) -> Cluster | None:
        """The cluster a request addresses, auto-creating it if enabled."""
        cluster = self._clusters.get(name)
        if cluster is None and self.auto_create and _CLUSTER_NAME.match(name):
            cluster = self.add_cluster(name)
        return cluster

    # ---------------------------------------------------------------- serving

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._base_url is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._base_url

    def cluster_url(self, name: str) -> str:
        """The API server URL of one cluster (the cluster need not exist yet)."""
        return f"{self.base_url}/clusters/{name}"

    def kubeconfig(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """A kubeconfig document with one context per cluster (context = cluster name)."""
        selected = list(names) if names is not None else self.cluster_names()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": n, "cluster": {"server": self.cluster_url(n)}} for n in selected],
            "users": [{"name": "emulator", "user": {"token": "emulator"}}],
            "contexts": [{"name": n, "context": {"cluster": n, "user": "emulator"}} for n in selected],
            "current-context": selected[0] if selected else "",
            "preferences": {},
        }

    def make_app(self) -> web.Application:
        """The aiohttp application (API + admin routes), for custom hosting."""
        app = web.Application(client_max_size=MAX_BODY)
        app.add_routes(admin_routes(self))
        app.router.add_route("*", "/clusters/{cluster}{tail:(?:/.*)?}", make_handler(self))
        return app

    async def pause(self, seconds: float) -> bool:
        """Sleep for an injected delay; False if the emulator stopped meanwhile."""
        if self._stopping is None:
            self._stopping = asyncio.Event()
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving; returns the base URL (``port=0`` picks a free port)."""
        if self._runner is not None:
            return self.base_url
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._base_url = f"http://{shown}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        """Stop serving; delayed requests in flight and open watches are dropped. State is kept."""
        if self._stopping is not None:
            self._stopping.set()
        for cluster in self._clusters.values():
            cluster.drop_watches()  # open watch streams end at once instead of holding up shutdown
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._base_url = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clusters: Iterable[str] = (),
    auto_create: bool = False,
    cluster_settings: Mapping[str, Any] | None = None,
) -> AsyncIterator[Emulator]:
    """Run an :class:`Emulator` for the duration of an ``async with`` block.

    ``cluster_settings`` are every new cluster's defaults (see :meth:`Cluster.settings`), e.g.
    ``{"rollout_delay": 1.0}``.
    """
    emulator = Emulator(clusters, auto_create=auto_create, cluster_settings=cluster_settings)
    await emulator.start(host, port)
    try:
        yield emulator
    finally:
        await emulator.stop()
