"""``GET /metrics``: Prometheus text exposition of every component this process runs: the append
path and the log's head, HTTP requests, the projector (position, lag, stall), the applier (queue,
applies in flight, outcomes, retries, apply latency, claims), targets by rollout state, SSE
subscribers, the database pools and errors, and the health of every supervised task.

This is the one module that defines metrics (names, types, help texts, labels). Components keep
plain numbers (counters, ``ledger.meters`` histograms) that a custom collector reads at scrape
time, so a hot path does no bookkeeping beyond incrementing an integer, and each app has its own
registry. A collector exports what the process runs and skips the rest, so a process that runs
only some roles (an applier alone) exposes just those. docs/operations.md lists every metric;
tests/test_metrics.py scrapes and checks that list against this endpoint.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from api import access, componentmetrics, keys, lanes, live, peers, server
from handlers import outcomes as outcomes_mod
from ledger import components, db, dbfaults, meters
from ledger import store as store_mod
from projections import fleet, runner

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
        yield from componentmetrics.families(registry)
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
            cut = CounterMetricFamily("ledger_sse_cut_off", "SSE subscribers cut off for being too slow "
                                      "(write_timeout: a write waited too long; behind: too far behind the head)",
                                      labels=["reason"])
            for reason, count in sorted(self._app.get(live.CUT_OFF, {}).items()):
                cut.add_metric([reason], count)
            yield cut
            yield _gauge("ledger_sse_buffered_bytes", "Bytes held for SSE subscribers (queued frames and "
                         "transport buffers)", live.buffered(self._app))
        gate = self._app.get(server.GATE)
        if gate is not None:
            yield _gauge("ledger_connections_open", "Client connections open", gate.open)
            yield _gauge("ledger_connections_limit", "Client connections allowed at once", gate.limit)
            yield _counter("ledger_connections_refused", "Connections answered 503 at accept (over the limit)",
                           gate.refused)


class ProjectorCollector(Collector):
    """How far the read models are behind the log, in positions and in seconds (whichever process
    runs the projector: this one follows its progress, api/lifecycle.py)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        store = self._app.get(keys.STORE)
        progress = self._app.get(keys.PROGRESS)
        if store is None or progress is None:
            return
        behind = max(0, store.notifier.head - progress.position)
        since = store.notifier.moves.since(progress.position) if behind else None
        yield _gauge("ledger_projector_lag_positions", "Events in the log not yet folded into the read models",
                     behind)
        yield _gauge("ledger_projector_lag_seconds", "How long the oldest event not yet folded into the read "
                     "models has been in the log (0 when caught up)",
                     max(0.0, time.monotonic() - since) if since is not None else 0.0)


class ApplierCollector(Collector):
    """The applier of this process: its work queue, applies, outcomes, retries, latency and claims."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        applier = self._app.get(keys.APPLIER)
        if applier is None:
            return
        yield _gauge("ledger_applier_position", "Last log position the applier has folded", applier.state.position)
        yield _gauge("ledger_applier_queue_depth", "Targets with a pass waiting for an apply slot",
                     applier.queued)
        yield _gauge("ledger_applier_applies_in_flight", "Applies (or prunes) talking to a cluster now",
                     applier.in_flight)
        yield _gauge("ledger_applier_claims", "Targets this applier process has claimed",
                     len(applier.claims.owned))
        outcomes = CounterMetricFamily("ledger_applier_outcomes", "Outcomes recorded, by result (succeeded; "
                                       "retryable: failed, retried with backoff; failed: for good)",
                                       labels=["result"])
        for result in outcomes_mod.RESULTS:
            outcomes.add_metric([result], applier.outcomes.get(result, 0))
        yield outcomes
        yield _counter("ledger_applier_retries", "Applies started again after a failed attempt", applier.retries)
        yield _histogram("ledger_apply_duration_seconds", "Time one apply (or prune) of a deployment on a target "
                         "took, from its turn to the cluster's last answer", applier.latency)


class RolloutCollector(Collector):
    """Targets by rollout state per deployment, from the fleet this process folds (the projector's,
    else the applier's)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        projector = self._app.get(keys.PROJECTOR)
        applier = self._app.get(keys.APPLIER)
        if projector is not None:
            folded = projector.state
        elif applier is not None:
            folded = applier.state.fleet
        else:
            return
        family = GaugeMetricFamily("ledger_rollout_targets", "Targets of a deployment's current revision, by "
                                   "rollout state", labels=["deployment", "state"])
        for name, deployment in sorted(folded.deployments.items()):
            if deployment.removed:
                continue
            counts = dict.fromkeys(STATES, 0)
            for rollout in deployment.rollouts.values():
                counts[rollout.state] = counts.get(rollout.state, 0) + 1
            for state, count in counts.items():
                family.add_metric([name, state], count)
        yield family


class DatabaseCollector(Collector):
    """Connections of the pools this process holds, and database errors by kind (process-wide)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        pools = []
        store = self._app.get(keys.STORE)
        if store is not None:
            pools.append(("default", store.pool))
        lane = self._app.get(lanes.LANE)
        if lane is not None:
            pools.append(("expensive", lane.pool))
        used = GaugeMetricFamily("ledger_db_pool_connections", "Connections of a PostgreSQL pool, in use or idle",
                                 labels=["pool", "state"])
        limit = GaugeMetricFamily("ledger_db_pool_max_connections", "Connections a PostgreSQL pool may open",
                                  labels=["pool"])
        for name, pool in pools:
            idle = pool.get_idle_size()
            used.add_metric([name, "in_use"], pool.get_size() - idle)
            used.add_metric([name, "idle"], idle)
            limit.add_metric([name], pool.get_max_size())
        yield used
        yield limit
        errors = CounterMetricFamily("ledger_db_errors", "Failed database calls by kind (timeout, connection, "
                                     "shutdown, resources: unavailable; integrity, data, conflict, other)",
                                     labels=["kind"])
        for kind in dbfaults.KINDS:
            errors.add_metric([kind], db.ERRORS.get(kind, 0))
        yield errors


class HttpCollector(Collector):
    """Requests answered, by route template, method and status (api/access.py counts them)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        log = self._app.get(access.LOG)
        if log is None:
            return
        family = CounterMetricFamily("ledger_http_requests", "HTTP requests answered, by route template, "
                                     "method and status", labels=["route", "method", "status"])
        for (route, method, status), count in sorted(log.requests.items()):
            family.add_metric([route, method, str(status)], count)
        yield family


STATES: tuple[str, ...] = typing.get_args(fleet.RolloutState)


def _histogram(name: str, doc: str, histogram: meters.Histogram) -> HistogramMetricFamily:
    buckets = [("+Inf" if le == float("inf") else repr(le), count) for le, count in histogram.cumulative()]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=histogram.sum)


class HealthCollector(Collector):
    """The applier's health following (handlers/follow.py): follows, watches, what they cost."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        applier = self._app.get(keys.APPLIER)
        if applier is None:
            return
        found = applier.health.status()
        yield _gauge("ledger_health_following", "Applies whose objects are followed now", found["following"])
        yield _gauge("ledger_health_watches", "Shared watches (cluster, kind, namespace)", found["watches"])
        yield _gauge("ledger_health_watches_connected", "Shared watches with an open connection", found["connected"])
        yield _gauge("ledger_health_watches_failing", "Shared watches whose last attempt failed", found["failing"])
        yield _counter("ledger_health_recorded", "TargetHealthy and TargetDegraded recorded by this process",
                       found["recorded"])
        yield _counter("ledger_health_lists", "Lists made by the shared watches (start and 410 Gone)",
                       found["lists"])
        yield _counter("ledger_health_resumes", "Watches resumed from their resourceVersion", found["resumes"])


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
    for collector in (ProjectorCollector, ApplierCollector, RolloutCollector, DatabaseCollector, HttpCollector,
                      HealthCollector):
        registry.register(collector(app))
    app[REGISTRY] = registry
    app.add_routes(routes)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = await peers.merged_metrics(request.app, generate_latest(request.app[REGISTRY]))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
