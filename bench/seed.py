"""A reusable seeder: fill a ledger database with a realistic history through EventStore.append.

The mix is what a fleet's log looks like after a while: targets registered (and now and then
relabelled), deployments submitting revisions with small manifests to the targets their selector
matches, and mostly apply outcomes, one per matched target and revision, about one in twelve an
ApplyFailed that is retried; an occasional pause, resume or rollback. Deterministic for a given
``seed``.

Appends go through the real store and batching writer (hash chain, NOTIFY and all). Every
deployment runs as its own sequence of appends and ``concurrency`` of them run at once, so the
writer groups them into large transactions the way it would under load.

Use from another benchmark::

    from bench import seed
    count = asyncio.run(seed.fill(database_url, 1_000_000))

or, for a log of another shape, append through the same set-up (migrated database, pool, store and
its running writer)::

    async with seed.opened(database_url) as es:
        await es.append(...)

or from the shell: ``.venv/bin/python -m bench.seed DATABASE_URL --events 100000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

from ledger import migrate, notifier, records, store

REGIONS = ("eu", "us", "ap", "sa")
TIERS = ("edge", "core")


def _id(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def manifests(deployment: str, revision: int) -> list[dict[str, Any]]:
    labels = {"app": deployment}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": deployment, "namespace": "apps", "labels": labels},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": deployment,
                                                        "image": f"registry.local/{deployment}:1.{revision}",
                                                        "ports": [{"containerPort": 8080}]}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": deployment, "namespace": "apps"},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"{deployment}-config", "namespace": "apps"},
         "data": {"LOG_LEVEL": "info", "REVISION": str(revision)}},
    ]


def _objects(deployment: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "apps", "name": deployment},
            {"apiVersion": "v1", "kind": "Service", "namespace": "apps", "name": deployment},
            {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "apps", "name": f"{deployment}-config"}]


class _Budget:
    def __init__(self, total: int, progress: Callable[[int], None] | None) -> None:
        self.left = total
        self.progress = progress

    def take(self, wanted: int) -> int:
        granted = min(wanted, self.left)
        self.left -= granted
        return granted

    def done(self, count: int) -> None:
        if self.progress is not None:
            self.progress(count)


class _Fleet:
    def __init__(self, rng: random.Random, targets: int) -> None:
        self.rng = rng
        self.labels = {f"edge-{i:04d}": {"region": REGIONS[i % len(REGIONS)], "tier": TIERS[int(i % 5 == 0)]}
                       for i in range(targets)}

    def matching(self, region: str) -> list[str]:
        return [name for name, labels in self.labels.items() if labels["region"] == region]


async def _targets(es: store.EventStore, fleet: _Fleet, budget: _Budget) -> None:
    rng = fleet.rng
    appends = []
    for name, labels in fleet.labels.items():
        if not budget.take(1):
            break
        appends.append(es.append(f"target-{name}", "no_stream", [records.NewEvent(
            _id(rng), "TargetRegistered",
            {"target": name, "labels": labels, "credentials": name},
            {"actor": "platform-bot", "reason": "onboarding"})]))
    await asyncio.gather(*appends)
    budget.done(len(appends))


def _round(fleet: _Fleet, name: str, revision: int, region: str, actor: str,
           rng: random.Random) -> list[tuple[str, list[records.NewEvent]]]:
    """The appends one revision causes: the submission, perhaps a pause, then the outcomes."""
    matched = fleet.matching(region)
    roll = rng.random()
    if roll < 0.03 and revision > 2:
        submitted = records.NewEvent(_id(rng), "RolledBack", {
            "deployment": name, "revision": revision, "to_revision": revision - 2,
            "message": "bad rollout", "matched_targets": matched}, {"actor": actor})
    else:
        submitted = records.NewEvent(_id(rng), "RevisionSubmitted", {
            "deployment": name, "revision": revision, "manifests": manifests(name, revision),
            "selector": f"region={region}", "message": f"release 1.{revision}",
            "matched_targets": matched}, {"actor": actor, "reason": f"ticket OPS-{rng.randrange(9999)}"})
    appends = [(f"deployment-{name}", [submitted])]
    if roll > 0.98:
        appends.append((f"deployment-{name}", [
            records.NewEvent(_id(rng), "DeploymentPaused", {"deployment": name, "reason": "freeze"}),
            records.NewEvent(_id(rng), "DeploymentResumed", {"deployment": name, "reason": "thaw"})]))
    outcomes = []
    for target in matched:
        attempt = 1
        if rng.random() < 1 / 12:
            outcomes.append(records.NewEvent(_id(rng), "ApplyFailed", {
                "deployment": name, "revision": revision, "target": target, "attempt": 1,
                "error": "Internal error occurred: etcdserver: request timed out",
                "retryable": True, "status": 500}))
            attempt = 2
        outcomes.append(records.NewEvent(_id(rng), "ApplySucceeded", {
            "deployment": name, "revision": revision, "target": target, "objects": _objects(name),
            "duration_ms": rng.randrange(40, 900), "attempt": attempt}))
    appends.append((f"rollout-{name}", outcomes))
    return appends


async def _deployment(es: store.EventStore, fleet: _Fleet, name: str, rng: random.Random,
                      budget: _Budget, pipeline: int) -> None:
    """Rounds of ``pipeline`` revisions queued at once: the writer keeps their order."""
    region = REGIONS[rng.randrange(len(REGIONS))]
    actor = rng.choice(("alice", "bob", "carol", "ci-pipeline"))
    revision = 0
    while budget.left > 0:
        pending = []
        for _ in range(pipeline):
            revision += 1
            for stream, batch in _round(fleet, name, revision, region, actor, rng):
                granted = budget.take(len(batch))
                if granted:
                    pending.append((granted, es.append(stream, "any", batch[:granted])))
        for granted, _ in pending:
            budget.done(granted)
        await asyncio.gather(*(append for _, append in pending))


@contextlib.asynccontextmanager
async def opened(database_url: str) -> AsyncIterator[store.EventStore]:
    """The event store of the (migrated) ledger at ``database_url`` with its batching writer running,
    stopped and closed on the way out."""
    conn = await asyncpg.connect(database_url)
    try:
        await migrate.migrate(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool is not None
    es = store.EventStore(pool, notifier.Notifier(database_url), timeout=60.0, max_batch_events=5000)
    writing = asyncio.create_task(es.writer.run())
    try:
        yield es
    finally:
        writing.cancel()
        await asyncio.gather(writing, return_exceptions=True)
        await pool.close()


async def fill(database_url: str, events: int, *, seed: int = 1, targets: int = 200,
               deployments: int = 32, pipeline: int = 8, progress: Callable[[int], None] | None = None) -> int:
    """Append ``events`` events (exactly) to the ledger at ``database_url``; returns the head position."""
    rng = random.Random(seed)
    fleet = _Fleet(rng, targets)
    budget = _Budget(events, progress)
    async with opened(database_url) as es:
        await _targets(es, fleet, budget)
        await asyncio.gather(*(
            _deployment(es, fleet, f"app-{i:03d}", random.Random(rng.getrandbits(64)), budget, pipeline)
            for i in range(deployments)))
        head, _, _ = await es.head()
        return head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("database_url")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    head = asyncio.run(fill(args.database_url, args.events, seed=args.seed))
    elapsed = time.perf_counter() - started
    print(f"seeded {args.events} events (head {head}) in {elapsed:.1f}s, {args.events / elapsed:,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
