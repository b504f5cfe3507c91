"""Small builders for fleet tests: events with their metadata, folded in order."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ledger import events
from projections import fleet

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def manifest(name: str = "web", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "apps"},
            "data": data or {"k": "v"}}


class Log:
    """Folds events as a store would number them: dense positions, per-stream versions."""

    def __init__(self) -> None:
        self.fleet = fleet.empty()
        self.versions: dict[str, int] = {}
        self.position = 0

    def add(self, event: events.Event, actor: str | None = "alice") -> fleet.Fleet:
        category, id_field = events.CATEGORY[events.type_name(event)]
        stream = f"{category}-{getattr(event, id_field)}"
        self.versions[stream] = self.versions.get(stream, 0) + 1
        self.position += 1
        meta = fleet.Meta(self.position, stream, self.versions[stream],
                          T0 + dt.timedelta(seconds=self.position), actor)
        return fleet.apply(self.fleet, event, meta)  # type: ignore[arg-type]

    def target(self, name: str, **labels: str) -> fleet.Fleet:
        return self.add(events.TargetRegistered(target=name, labels=labels, server=f"https://{name}:6443"))

    def revision(self, deployment: str, selector: str, *, data: str = "v", message: str = "") -> fleet.Fleet:
        current = self.fleet.deployments.get(deployment)
        number = max(current.revisions, default=0) + 1 if current else 1
        matched = fleet.matching(self.fleet, selector)
        return self.add(events.RevisionSubmitted(
            deployment=deployment, revision=number, manifests=[manifest(deployment, k=data)],
            selector=selector, message=message, matched_targets=matched))
