"""Shared pieces of the applier tests: an emulator, events appended straight to the store, and
bounded waits for conditions (never wall-clock assertions)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest_asyncio

from emulator import Emulator
from ledger import events, records, store
from ledger import settings as settings_mod
from tests import credfiles, servers

FAST = {
    "applier": True,
    "backoff_base": 0.05,
    "backoff_cap": 0.3,
    "claim_interval": 0.1,
    "apply_timeout": 3.0,
    "resync_interval": 0.0,
}


def fast(settings: settings_mod.Settings, **changes: Any) -> settings_mod.Settings:
    return settings.replace(**{**FAST, **changes})


@pytest_asyncio.fixture
async def client(aiohttp_client: Any, app: Any, database_url: str) -> AsyncIterator[Any]:
    """The service under test, stopped before its database is dropped (the shared fixture stops it
    only with aiohttp_client, which pytest tears down after ``database_url``)."""
    test_client = await aiohttp_client(app)
    yield test_client
    await test_client.close()


@pytest_asyncio.fixture
async def emu(tmp_path: Path) -> AsyncIterator[Emulator]:
    """Three emulated clusters, each with a credential named like it in the test's credentials file."""
    emulator = Emulator(["eu-1", "eu-2", "us-1"])
    await emulator.start()
    credfiles.add_emulator(tmp_path, emulator)
    try:
        yield emulator
    finally:
        await emulator.stop()


async def append(es: store.EventStore, event: events.Event) -> int:
    category, field = events.CATEGORY[events.type_name(event)]
    stream = f"{category}-{getattr(event, field)}"
    result = await es.append(stream, "any", [records.NewEvent(
        id=uuid.uuid4(), type=events.type_name(event), data=events.to_data(event), metadata={"actor": "test"})])
    return result.positions[0]


async def register(es: store.EventStore, emu: Emulator, name: str, *, cluster: str | None = None,
                   updated: bool = False, **labels: str) -> int:
    kind = events.TargetUpdated if updated else events.TargetRegistered
    return await append(es, kind(target=name, labels=labels, credentials=cluster or name))


async def next_revision(es: store.EventStore, deployment: str) -> int:
    return await es.stream_version(f"deployment-{deployment}") + 1


async def submit(es: store.EventStore, deployment: str, manifests: list[dict[str, Any]], selector: str) -> int:
    """Submit a revision (the deployment stream must hold only revisions so far)."""
    revision = len(await _revisions(es, deployment)) + 1
    await append(es, events.RevisionSubmitted(deployment=deployment, revision=revision, manifests=manifests,
                                              selector=selector))
    return revision


async def _revisions(es: store.EventStore, deployment: str) -> list[int]:
    stream = f"deployment-{deployment}"
    if await es.stream_version(stream) == 0:
        return []
    found = await es.read_stream(stream, 1, 10_000)
    return [json.loads(e.data)["revision"] for e in found if e.type in ("RevisionSubmitted", "RolledBack")]


async def rollback(es: store.EventStore, deployment: str, to_revision: int) -> int:
    revision = len(await _revisions(es, deployment)) + 1
    await append(es, events.RolledBack(deployment=deployment, revision=revision, to_revision=to_revision))
    return revision


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        try:
            last = await check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what} (last: {last!r})")


async def outcomes(db: asyncpg.Connection, deployment: str | None = None) -> list[dict[str, Any]]:
    """Every outcome in log order, with defaults filled in: id, position, metadata and the data."""
    rows = await db.fetch(
        "SELECT id, position, type, data::text AS data, metadata::text AS metadata FROM events"
        " WHERE type IN ('ApplySucceeded', 'ApplyFailed') AND ($1::text IS NULL OR stream = 'rollout-' || $1)"
        " ORDER BY position", deployment)
    found = []
    for r in rows:
        event = events.decode(r["type"], r["data"])
        data = {name: msgspec.to_builtins(getattr(event, name)) for name in event.__struct_fields__}
        found.append({"id": r["id"], "position": r["position"], "type": r["type"], **data,
                      "metadata": json.loads(r["metadata"])})
    return found


def succeeded(found: list[dict[str, Any]], revision: int, targets: set[str]) -> bool:
    done = {o["target"] for o in found if o["type"] == "ApplySucceeded" and o["revision"] == revision}
    return targets <= done


def live(cluster: Any, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    """An object that must exist on an emulated cluster."""
    found: dict[str, Any] | None = cluster.get(api_version, kind, namespace, name)
    assert found is not None, f"{kind} {namespace}/{name} is not on cluster {cluster.name}"
    return found


def configmap(name: str, namespace: str = "apps", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": data}


def namespace(name: str = "apps") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def deployment_object(name: str, image: str = "nginx:1.27", namespace: str = "apps") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "main", "image": image}]}},
        },
    }


class ApplierProcess(servers.ServiceProcess):
    """``ledger applier`` as a subprocess (its /readyz answers once it is caught up and claiming)."""

    async def start(self, *, url: str | None = None, ssl_context: Any = None) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "applier"], cwd=servers.ROOT, env=self.env,
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        await eventually(self.status, timeout=60, what=f"applier process ready ({self.log})")

    async def status(self) -> dict[str, Any] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"applier exited: {self.log.read_text()[-3000:]}")
        try:
            async with aiohttp.ClientSession() as session, session.get(self.url + "/readyz") as resp:
                body: dict[str, Any] = await resp.json()
                return body if resp.status == 200 else None
        except aiohttp.ClientError:
            return None


def process_env(**extra: str) -> dict[str, str]:
    """Environment for a service or applier subprocess with test-sized timings."""
    env = {f"LEDGER_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in FAST.items()}
    return {**env, "LEDGER_PROJECTOR": "false", **extra}
