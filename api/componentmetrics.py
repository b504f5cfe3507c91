"""Metric families of a component registry: restarts per supervised task, which components are up.

Why a module of its own: the supervisor of a multi-process ``ledger serve`` (cli/supervisor.py)
exposes these on its status port and loads neither aiohttp nor the rest of the API to do so (it
stays a small process); api/metrics.py yields the same families for every other process, so the
names, types and help texts are defined once, here.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ledger import components


def families(registry: components.Registry) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
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
