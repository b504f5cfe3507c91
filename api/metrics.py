"""``GET /metrics``: Prometheus text exposition of every component this process runs: the append
path and the log's head, HTTP requests, the projector (position, lag, stall), the applier (queue,
applies in flight, outcomes, retries, apply latency, claims), targets by rollout state, SSE
subscribers, the database pools and errors, and the health of every supervised task.

This is the one module that defines metrics (names, types, help texts, labels). Components keep
plain numbers (counters, ``ledger.meters`` histograms) that a custom collector reads at scrape
time, so a hot path does no bookkeeping beyond incrementing an integer, and each app has its own
registry. One collector walks a table (``SOURCES``: the app key of a component, and the families
read from it) and exports what the process runs, skipping the rest, so a process that runs only
some roles (an applier alone) exposes just those. docs/operations.md lists every metric;
tests/test_metrics.py scrapes and checks that list against this endpoint.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from api import access, componentmetrics, keys, lanes, live, peers, server
from handlers import outcomes as outcomes_mod
from ledger import components, db, dbfaults, meters
from ledger import store as store_mod
from projections import fleet, runner, targetindex, undecodable

routes = web.RouteTableDef()
REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
CONTENT_TYPE = "text/plain; version=0.0.4"


Families = Callable[[Any, web.Application], Iterator[Metric]]


def _store(store: store_mod.EventStore, app: web.Application) -> Iterator[Metric]:
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
        yield _counter(name, doc, value)
    yield _gauge("ledger_head_position", "Highest position this process has been notified of", store.notifier.head)
    yield _gauge("ledger_notifier_connected", "1 while the LISTEN connection is up",
                 1.0 if store.notifier.connected.is_set() else 0.0)


def _lane(lane: lanes.Lane, app: web.Application) -> Iterator[Metric]:
    """Load isolation (docs/operations.md "Limits"): the expensive lane and per-client refusals."""
    yield _gauge("ledger_expensive_busy", "Expensive requests holding a turn now", lane.busy)
    yield _counter("ledger_expensive_refused", "Expensive requests answered 503 for want of a turn", lane.refused)
    yield _counter("ledger_client_limited", "Requests answered 429 past a per-client limit", lane.limited)
    yield _counted("ledger_expensive_runs", "Jobs run by a lane worker process, by kind "
                   "(state: /v1/state; audit: the audit page's folds; verify: a chain recomputed)", "kind",
                   ("state", "audit", "verify"), lane.runs)
    yield _counter("ledger_expensive_coalesced", "Verifies answered from a run of the same range that "
                   "another request started", lane.coalesced)
    yield _gauge("ledger_lane_workers", "Lane worker processes running now", len(lane.workers.running))
    yield _counter("ledger_lane_workers_started", "Lane worker processes started", lane.workers.started)
    yield _counter("ledger_lane_workers_lost", "Lane worker processes that ended unasked or during a request",
                   lane.workers.lost)


def _subscribers(subscribers: set[Any], app: web.Application) -> Iterator[Metric]:
    """SSE subscribers and their buffers."""
    yield _gauge("ledger_sse_subscribers", "Open SSE streams", len(subscribers))
    cut_off = app.get(live.CUT_OFF, {})
    yield _counted("ledger_sse_cut_off", "SSE subscribers cut off for being too slow (write_timeout: a "
                   "write waited too long; behind: too far behind the head)", "reason", sorted(cut_off), cut_off)
    yield _gauge("ledger_sse_buffered_bytes", "Bytes held for SSE subscribers (queued frames and "
                 "transport buffers)", live.buffered(app))


def _connections(gate: server.Gate, app: web.Application) -> Iterator[Metric]:
    """Client connections against their cap."""
    yield _gauge("ledger_connections_open", "Client connections open", gate.open)
    yield _gauge("ledger_connections_limit", "Client connections allowed at once", gate.limit)
    yield _counter("ledger_connections_refused", "Connections answered 503 at accept (over the limit)",
                   gate.refused)


def _components(registry: components.Registry, app: web.Application) -> Iterator[Metric]:
    """Supervision: restarts per task, which components are up, the projector's position and stall."""
    yield from componentmetrics.families(registry)
    progress = app.get(keys.PROGRESS)
    if progress is not None:
        yield _gauge("ledger_projector_position", "Last position folded into the read models", progress.position)
    projector = registry.get(runner.NAME)
    if projector is not None:
        stalled = projector.status is components.Status.STALLED
        yield _gauge("ledger_projector_stalled",
                     "1 while the projector cannot fold the event at ledger_projector_stalled_at",
                     1.0 if stalled else 0.0)
        where = projector.detail.get("position", projector.detail.get("from_position", 0))
        yield _gauge("ledger_projector_stalled_at", "Position of the event the projector cannot fold "
                     "(0 when not stalled)", float(where) if stalled else 0.0)


def _credentials(watched: Any, app: web.Application) -> Iterator[Metric]:
    """The operator's credentials file: what is loaded, and reloads that failed (the last good
    catalogue stays in use, so only this and the log tell an operator about a typo)."""
    yield _gauge("ledger_credentials_loaded", "Credentials in the catalogue in use", len(watched.catalogue))
    yield _counter("ledger_credentials_reloads", "Reloads of the credentials file that changed it", watched.reloads)
    yield _counter("ledger_credentials_reload_errors",
                   "Reloads refused because the file was malformed (last good one kept)", watched.errors)


def _projector_lag(progress: Any, app: web.Application) -> Iterator[Metric]:
    """How far the read models are behind the log, in positions and in seconds (whichever process
    runs the projector: this one follows its progress, api/lifecycle.py)."""
    store = app.get(keys.STORE)
    if store is None:
        return
    behind = max(0, store.notifier.head - progress.position)
    since = store.notifier.moves.since(progress.position) if behind else None
    yield _gauge("ledger_projector_lag_positions", "Events in the log not yet folded into the read models", behind)
    yield _gauge("ledger_projector_lag_seconds", "How long the oldest event not yet folded into the read "
                 "models has been in the log (0 when caught up)",
                 max(0.0, time.monotonic() - since) if since is not None else 0.0)


def _applier(applier: Any, app: web.Application) -> Iterator[Metric]:
    """The applier of this process: its work queue, applies, outcomes, retries, latency and claims."""
    yield _gauge("ledger_applier_position", "Last log position the applier has folded", applier.state.position)
    yield _gauge("ledger_applier_queue_depth", "Targets with a pass waiting for an apply slot", applier.queued)
    yield _gauge("ledger_applier_applies_in_flight", "Applies (or prunes) talking to a cluster now",
                 applier.in_flight)
    yield _gauge("ledger_applier_claims", "Targets this applier process has claimed", len(applier.claims.owned))
    yield _counted("ledger_applier_outcomes", "Outcomes recorded, by result (succeeded; retryable: failed, "
                   "retried with backoff; failed: for good)", "result", outcomes_mod.RESULTS, applier.outcomes)
    yield _counter("ledger_applier_retries", "Applies started again after a failed attempt", applier.retries)
    yield _histogram("ledger_apply_duration_seconds", "Time one apply (or prune) of a deployment on a target "
                     "took, from its turn to the cluster's last answer", applier.latency)


def _rollouts(_: None, app: web.Application) -> Iterator[Metric]:
    """Targets by rollout state per deployment, from the fleet this process folds (the projector's,
    else the applier's)."""
    projector = app.get(keys.PROJECTOR)
    applier = app.get(keys.APPLIER)
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


def _database(_: None, app: web.Application) -> Iterator[Metric]:
    """Connections of the pools this process holds, and database errors by kind (process-wide)."""
    pools = []
    store = app.get(keys.STORE)
    if store is not None:
        pools.append(("default", store.pool))
    lane = app.get(lanes.LANE)
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
    yield _counted("ledger_db_errors", "Failed database calls by kind (timeout, connection, shutdown, "
                   "resources: unavailable; integrity, data, conflict, other)", "kind", dbfaults.KINDS, db.ERRORS)


def _undecodable(_: None, app: web.Application) -> Iterator[Metric]:
    """Stops at an event this version cannot decode, by reader (projections/undecodable.py; the
    projector's own stall is ``ledger_projector_stalled``)."""
    yield _counted("ledger_undecodable_events", "Times a reader stopped at an event that does not decode "
                   "(replay: a /v1/state or audit request; applier: a restart)", "reader", undecodable.READERS,
                   undecodable.STOPS)


def _http(log: access.Log, app: web.Application) -> Iterator[Metric]:
    """Requests answered, by route template, method and status (api/access.py counts them)."""
    family = CounterMetricFamily("ledger_http_requests", "HTTP requests answered, by route template, "
                                 "method and status", labels=["route", "method", "status"])
    for (route, method, status), count in sorted(log.requests.items()):
        family.add_metric([route, method, str(status)], count)
    yield family


def _health(applier: Any, app: web.Application) -> Iterator[Metric]:
    """The applier's health following (handlers/follow.py): follows, watches, what they cost."""
    found = applier.health.status()
    yield _gauge("ledger_health_following", "Applies whose objects are followed now", found["following"])
    yield _gauge("ledger_health_watches", "Shared watches (cluster, kind, namespace)", found["watches"])
    yield _gauge("ledger_health_watches_connected", "Shared watches with an open connection", found["connected"])
    yield _gauge("ledger_health_watches_failing", "Shared watches whose last attempt failed", found["failing"])
    yield _counter("ledger_health_recorded", "TargetHealthy and TargetDegraded recorded by this process",
                   found["recorded"])
    yield _counter("ledger_health_lists", "Lists made by the shared watches (start and 410 Gone)", found["lists"])
    yield _counter("ledger_health_resumes", "Watches resumed from their resourceVersion", found["resumes"])


def _targets(index: targetindex.Index, app: web.Application) -> Iterator[Metric]:
    yield _counter("ledger_target_index_builds", "Times the commands' target index was built whole "
                   "(first use, or the log changed under it)", index.seeds)
    yield _counter("ledger_target_index_rows", "Target rows the commands' target index read "
                   "(the read model's when built, the log's after)", index.rows_read)


# What the process must run for a row's families (the app key of that component; None: always),
# and the families, in the order they are exposed. A process exports what it runs.
SOURCES: Final[tuple[tuple[web.AppKey[Any] | None, Families], ...]] = (
    (keys.STORE, _store),
    (keys.TARGETS, _targets),
    (lanes.LANE, _lane),
    (live.SUBSCRIBERS, _subscribers),
    (server.GATE, _connections),
    (keys.COMPONENTS, _components),
    (keys.CREDENTIALS, _credentials),
    (keys.PROGRESS, _projector_lag),
    (keys.APPLIER, _applier),
    (None, _rollouts),
    (None, _database),
    (None, _undecodable),
    (access.LOG, _http),
    (keys.APPLIER, _health),
)


class AppCollector(Collector):
    """Every row of ``SOURCES`` whose component this app runs, read at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        for key, families in SOURCES:
            component = self._app.get(key) if key is not None else None
            if key is None or component is not None:
                yield from families(component, self._app)


STATES: tuple[str, ...] = typing.get_args(fleet.RolloutState)


def _histogram(name: str, doc: str, histogram: meters.Histogram) -> HistogramMetricFamily:
    buckets = [("+Inf" if le == float("inf") else repr(le), count) for le, count in histogram.cumulative()]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=histogram.sum)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def _counted(name: str, doc: str, label: str, keys: Iterable[str], counts: Mapping[str, float]) -> CounterMetricFamily:
    """A counter with one label: a sample for each of ``keys``, 0 for those ``counts`` lacks."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for key in keys:
        family.add_metric([key], counts.get(key, 0))
    return family


def install(app: web.Application) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AppCollector(app))
    app[REGISTRY] = registry
    app.add_routes(routes)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = await peers.merged_metrics(request.app, generate_latest(request.app[REGISTRY]))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
