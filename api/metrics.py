"""``GET /metrics``: Prometheus text exposition of the append path, the log's head, and the health
of every supervised component (restarts per task, up or not, the projector's position and stall).

Values are read at scrape time from the store's plain counters by a custom collector, so the hot
path does no metric bookkeeping beyond incrementing integers, and each app has its own registry
(no process-global state shared between apps or tests).
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from api import keys, lanes, live, peers, server
from ledger import components
from ledger import store as store_mod
from projections import runner

routes = web.RouteTableDef()
REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
CONTENT_TYPE = "text/plain; version=0.0.4"


class StoreCollector(Collector):
    def __init__(self, app: web.Application) -> None:
        self._app = app

    def _store(self) -> store_mod.EventStore | None:
        return self._app.get(keys.STORE)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        store = self._store()
        if store is None:
            return
        stats = store.writer.stats
        counters = [
            ("ledger_append_batches", "Append transactions committed", stats.batches),
            ("ledger_append_requests", "Append requests answered by the writer", stats.requests),
            ("ledger_append_rejected", "Append requests refused (version or id conflict, invalid)", stats.rejected),
            ("ledger_events_appended", "Events stored", stats.events),
            ("ledger_append_fast_path", "Batches written in one round trip", stats.fast_path),
            ("ledger_append_checked_path", "Batches written under the lock after reading the head",
             stats.checked_path),
            ("ledger_append_resent", "Pipelined batches sent again after the batch behind overtook them at the lock",
             stats.resent),
            ("ledger_append_failed_batches", "Batches that failed as a whole (database unavailable)",
             stats.failed_batches),
            ("ledger_append_batch_seconds", "Time spent committing batches", stats.batch_seconds),
        ]
        for name, doc, value in counters:
            family = CounterMetricFamily(name, doc)
            family.add_metric([], value)
            yield family
        head = GaugeMetricFamily("ledger_head_position", "Highest position this process has been notified of")
        head.add_metric([], store.notifier.head)
        yield head
        listening = GaugeMetricFamily("ledger_notifier_connected", "1 while the LISTEN connection is up")
        listening.add_metric([], 1.0 if store.notifier.connected.is_set() else 0.0)
        yield listening


class ComponentsCollector(Collector):
    """Supervision: restarts per task, which components are up, the projector's position and stall."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        registry = self._app.get(keys.COMPONENTS)
        if registry is None:
            return
        restarts = CounterMetricFamily("ledger_task_restarts",
                                       "Unexpected crashes of a supervised task, each followed by a restart",
                                       labels=["task"])
        for name, count in sorted(registry.restarts.items()):
            restarts.add_metric([name], count)
        yield restarts
        up = GaugeMetricFamily("ledger_component_up", "1 while a component is up, 0 while it is restarting, "
                               "stalled or down", labels=["component", "status"])
        for component in registry.all():
            up.add_metric([component.name, component.status.value],
                          1.0 if component.status is components.Status.UP else 0.0)
        yield up
        progress = self._app.get(keys.PROGRESS)
        if progress is not None:
            position = GaugeMetricFamily("ledger_projector_position", "Last position folded into the read models")
            position.add_metric([], progress.position)
            yield position
        projector = registry.get(runner.NAME)
        if projector is not None:
            stalled = projector.status is components.Status.STALLED
            gauge = GaugeMetricFamily("ledger_projector_stalled",
                                      "1 while the projector cannot fold the event at ledger_projector_stalled_at")
            gauge.add_metric([], 1.0 if stalled else 0.0)
            yield gauge
            at = GaugeMetricFamily("ledger_projector_stalled_at", "Position of the event the projector cannot fold "
                                   "(0 when not stalled)")
            where = projector.detail.get("position", projector.detail.get("from_position", 0))
            at.add_metric([], float(where) if stalled else 0.0)
            yield at



class CredentialsCollector(Collector):
    """The operator's credentials file: what is loaded, and reloads that failed (the last good
    catalogue stays in use, so only this and the log tell an operator about a typo)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        watched = self._app.get(keys.CREDENTIALS)
        if watched is None:
            return
        loaded = GaugeMetricFamily("ledger_credentials_loaded", "Credentials in the catalogue in use")
        loaded.add_metric([], len(watched.catalogue))
        yield loaded
        reloads = CounterMetricFamily("ledger_credentials_reloads", "Reloads of the credentials file that changed it")
        reloads.add_metric([], watched.reloads)
        yield reloads
        failed = CounterMetricFamily("ledger_credentials_reload_errors",
                                     "Reloads refused because the file was malformed (last good one kept)")
        failed.add_metric([], watched.errors)
        yield failed


class IsolationCollector(Collector):
    """Load isolation (docs/operations.md "Limits"): the expensive lane, per-client refusals, SSE
    subscribers' buffers, and client connections against their cap."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        lane = self._app.get(lanes.LANE)
        if lane is not None:
            yield _gauge("ledger_expensive_busy", "Expensive requests holding a turn now", lane.busy)
            yield _counter("ledger_expensive_refused", "Expensive requests answered 503 for want of a turn",
                           lane.refused)
            yield _counter("ledger_client_limited", "Requests answered 429 past a per-client limit", lane.limited)
        if live.SUBSCRIBERS in self._app:
            yield _gauge("ledger_sse_subscribers", "Open SSE streams", len(self._app[live.SUBSCRIBERS]))
            yield _gauge("ledger_sse_buffered_bytes", "Bytes held for SSE subscribers (queued frames and "
                         "transport buffers)", live.buffered(self._app))
        gate = self._app.get(server.GATE)
        if gate is not None:
            yield _gauge("ledger_connections_open", "Client connections open", gate.open)
            yield _gauge("ledger_connections_limit", "Client connections allowed at once", gate.limit)
            yield _counter("ledger_connections_refused", "Connections answered 503 at accept (over the limit)",
                           gate.refused)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def install(app: web.Application) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(app))
    registry.register(IsolationCollector(app))
    registry.register(ComponentsCollector(app))
    registry.register(CredentialsCollector(app))
    app[REGISTRY] = registry
    app.add_routes(routes)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = await peers.merged_metrics(request.app, generate_latest(request.app[REGISTRY]))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
