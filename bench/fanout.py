"""The applier: fan-out of one revision to 1,000 emulated clusters, and submit-to-applied latency.

Setup: an embedded PostgreSQL, ``ledger serve`` as a subprocess (API, projector and applier, the
default settings: 32 targets at once), and the Kubernetes API emulator in *another* process
(``python -m emulator --auto-create``), so the emulator's CPU is not the service's.

1. Fan-out: 1,000 targets, one deployment of three objects (Namespace, ConfigMap, Deployment)
   selecting all of them. Seconds from the POST of the revision until the 1,000th ApplySucceeded
   is in the log; once cold (first contact: client, discovery, namespace created) and once warm
   (the next revision). Each target costs the applier three LISTs (prune scopes), three
   server-side applies and one outcome event; cold, also three GETs (the ownership check of
   objects not yet on the target, handlers/ownership.py).
   Raw baseline, same run: kubernetes-asyncio alone (no ledger) server-side applying the same
   three objects to 1,000 other emulated clusters with the same concurrency (32), cold and warm.
2. Latency: one idle cluster, 200 revisions one after another; milliseconds from the POST until
   its ApplySucceeded is visible to a reader (LISTEN + query), p50 and p99.
   Raw baseline: the same three server-side applies with a warm kubernetes-asyncio client.

Run: ``.venv/bin/python -m bench.fanout [--clusters 1000] [--revisions 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.dynamic import DynamicClient

from bench import harness
from handlers import claims, transport
from ledger import pgembed, writer


def manifests(n: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "bench"},
         "data": {"revision": str(n)}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "bench"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "web", "image": f"nginx:1.{n}"}]}}}},
    ]


async def post(session: aiohttp.ClientSession, url: str, stream: str, type_: str, data: dict[str, Any]) -> None:
    body = {"events": [{"id": str(uuid.uuid4()), "type": type_, "data": data}]}
    async with session.post(f"{url}/v1/streams/{stream}/events", json=body) as resp:
        if resp.status != 201:
            raise RuntimeError(f"{stream}: {resp.status} {await resp.text()}")


class Outcomes:
    """Waits for ApplySucceeded events, woken by the log's NOTIFY instead of polling."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.wake = asyncio.Event()

    async def start(self) -> None:
        await self.conn.add_listener(writer.NOTIFY_CHANNEL, lambda *_: self.wake.set())

    async def count(self, deployment: str, revision: int) -> int:
        return int(await self.conn.fetchval(
            "SELECT count(*) FROM events WHERE stream = $1 AND type = 'ApplySucceeded'"
            " AND (data->>'revision')::int = $2", f"rollout-{deployment}", revision))

    async def until(self, deployment: str, revision: int, n: int) -> None:
        while True:
            self.wake.clear()
            if await self.count(deployment, revision) >= n:
                return
            try:
                await asyncio.wait_for(self.wake.wait(), 1.0)
            except TimeoutError:
                pass


async def register(session: aiohttp.ClientSession, url: str, emulator: str, names: list[str],
                   labels: dict[str, str]) -> None:
    sem = asyncio.Semaphore(64)

    async def one(name: str) -> None:
        async with sem:
            await post(session, url, f"target-{name}", "TargetRegistered",
                       {"target": name, "labels": labels, "credentials": name})

    await asyncio.gather(*(one(n) for n in names))


async def claimed(conn: asyncpg.Connection, names: list[str]) -> None:
    wanted = len({claims.key(n) for n in names})
    while True:
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid"
            " AND objsubid = 2 AND granted", claims.TARGET_CLASS)
        if held >= wanted:
            return
        await asyncio.sleep(0.05)


async def measure_service(url: str, dsn: str, emulator: str, clusters: int, revisions: int, *,
                          pid: int, emulator_pid: int) -> dict[str, Any]:
    names = [f"edge-{n:04d}" for n in range(clusters)]
    conn = await asyncpg.connect(dsn)
    waiter = Outcomes(conn)
    await waiter.start()
    result: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, headers=harness.HEADERS, connector=aiohttp.TCPConnector(limit=64)) as session:
        await register(session, url, emulator, names, {"fleet": "bench"})
        await register(session, url, emulator, ["solo"], {"lat": "solo"})
        await asyncio.wait_for(claimed(conn, [*names, "solo"]), 120)
        for label, revision in (("cold", 1), ("warm", 2)):
            cpu, emulator_cpu = harness.cpu_seconds(pid), harness.cpu_seconds(emulator_pid)
            started = time.perf_counter()
            await post(session, url, "deployment-fanout", "RevisionSubmitted",
                       {"deployment": "fanout", "revision": revision, "manifests": manifests(revision),
                        "selector": "fleet=bench"})
            await asyncio.wait_for(waiter.until("fanout", revision, clusters), 600)
            result[f"fanout_{label}_s"] = time.perf_counter() - started
            result[f"fanout_{label}_cpu"] = harness.cpu_seconds(pid) - cpu
            result[f"fanout_{label}_emulator_cpu"] = harness.cpu_seconds(emulator_pid) - emulator_cpu
            print(f"  fan-out {label}: {result[f'fanout_{label}_s']:.2f} s (service CPU "
                  f"{result[f'fanout_{label}_cpu']:.2f} s, emulator CPU {result[f'fanout_{label}_emulator_cpu']:.2f} s)",
                  flush=True)
        latencies = []
        for revision in range(1, revisions + 1):
            started = time.perf_counter()
            await post(session, url, "deployment-latency", "RevisionSubmitted",
                       {"deployment": "latency", "revision": revision, "manifests": manifests(revision),
                        "selector": "lat=solo"})
            await asyncio.wait_for(waiter.until("latency", revision, 1), 60)
            latencies.append((time.perf_counter() - started) * 1000)
        result["latency_ms"] = latencies
    await conn.close()
    return result


async def _resource(dyn: DynamicClient, body: dict[str, Any]) -> Any:
    """Discovery lookup by prefix and group, as handlers/clients.py does."""
    group, _, version = body["apiVersion"].rpartition("/")
    where = {"prefix": "apis", "group": group} if group else {"prefix": "api"}
    return await dyn.resources.get(**where, api_version=version, kind=body["kind"])


async def raw_fanout(emulator: str, clusters: int, concurrency: int, cache: Path) -> tuple[float, float]:
    """kubernetes-asyncio alone: the same three applies to ``clusters`` clusters, cold then warm."""
    sem = asyncio.Semaphore(concurrency)
    made: dict[str, tuple[transport.ApiClient, DynamicClient]] = {}

    async def one(name: str, revision: int) -> None:
        async with sem:
            if name not in made:
                api = transport.ApiClient(Configuration(host=f"{emulator}/clusters/{name}"))
                made[name] = (api, await DynamicClient(api, cache_file=str(cache / f"{name}.json"),
                                                       discoverer=transport.Discoverer))
            dyn = made[name][1]
            for body in manifests(revision):
                resource = await _resource(dyn, body)
                result = await dyn.server_side_apply(resource, body=body, field_manager="raw", force_conflicts=True)
                assert result.kind != "Status", result
            discoverer = dyn.resources
            assert isinstance(discoverer, transport.Discoverer)
            found = discoverer.pending()
            if found is not None:
                await asyncio.to_thread(transport.write, *found)

    timings = []
    for revision in (1, 2):
        started = time.perf_counter()
        await asyncio.gather(*(one(f"raw-{n:04d}", revision) for n in range(clusters)))
        timings.append(time.perf_counter() - started)
    for api, _ in made.values():
        await api.close()
    return timings[0], timings[1]


async def raw_latency(emulator: str, revisions: int, cache: Path) -> list[float]:
    api = transport.ApiClient(Configuration(host=f"{emulator}/clusters/raw-solo"))
    dyn = await DynamicClient(api, cache_file=str(cache / "raw-solo.json"), discoverer=transport.Discoverer)
    latencies = []
    try:
        for revision in range(1, revisions + 1):
            started = time.perf_counter()
            for body in manifests(revision):
                resource = await _resource(dyn, body)
                await dyn.server_side_apply(resource, body=body, field_manager="raw", force_conflicts=True)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        await api.close()
    return latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def write_credentials(path: Path, emulator: str, names: list[str]) -> Path:
    """The operator's credentials file: one anonymous credential per emulated cluster."""
    entries = {name: {"server": f"{emulator}/clusters/{name}", "anonymous": True} for name in names}
    path.write_text(yaml.safe_dump({"credentials": entries}))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--revisions", type=int, default=200)
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-fanout-"))
    port = pgembed.free_port()
    emulator = f"http://127.0.0.1:{port}"
    emu = subprocess.Popen([sys.executable, "-m", "emulator", "--auto-create", "--port", str(port)],
                           cwd=harness.ROOT, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        harness.wait_http(f"{emulator}/_emulator/clusters", emu)
        with harness.Postgres() as dsn:
            credentials = write_credentials(work / "credentials.yaml", emulator,
                                            [*(f"edge-{n:04d}" for n in range(args.clusters)), "solo"])
            proc, url = harness.start_service(dsn, work / "data", LEDGER_PROCESSES="single", LEDGER_APPLIER="true",
                                              LEDGER_CREDENTIALS=str(credentials))
            try:
                print(f"service {url}, emulator {emulator} (separate process)", flush=True)
                service = asyncio.run(measure_service(url, dsn, emulator, args.clusters, args.revisions,
                                                      pid=proc.pid, emulator_pid=emu.pid))
                rss = harness.peak_rss_mb(proc.pid)
            finally:
                harness.stop(proc)
        (work / "raw").mkdir()
        raw_cold, raw_warm = asyncio.run(raw_fanout(emulator, args.clusters, 32, work / "raw"))
        raw_lat = asyncio.run(raw_latency(emulator, args.revisions, work / "raw"))
    finally:
        emu.terminate()
        emu.wait(10)
    lat = service["latency_ms"]
    rows = [
        (f"fan-out to {args.clusters} clusters, cold (s)", service["fanout_cold_s"], raw_cold),
        (f"fan-out to {args.clusters} clusters, warm (s)", service["fanout_warm_s"], raw_warm),
        ("submit-to-applied p50 (ms)", pct(lat, 50), pct(raw_lat, 50)),
        ("submit-to-applied p99 (ms)", pct(lat, 99), pct(raw_lat, 99)),
    ]
    table = ["| measure | ledger | raw kubernetes-asyncio | ratio |", "|---|---:|---:|---:|"]
    for name, ours, raw in rows:
        table.append(f"| {name} | {ours:.2f} | {raw:.2f} | {ours / raw:.1f}x |")
    body = "\n".join([
        f"Machine: {harness.machine()}.",
        "",
        f"`python -m bench.fanout --clusters {args.clusters} --revisions {args.revisions}`: `ledger serve`"
        " (API, projector, applier; default `applier_concurrency` 32) as a subprocess on an embedded"
        " PostgreSQL; the Kubernetes API emulator in a separate process (`python -m emulator"
        " --auto-create`), so its CPU is not the service's. One revision of three objects (Namespace,"
        " ConfigMap, Deployment): fan-out is the time from the POST until the last ApplySucceeded is"
        " in the log (cold: first contact, clients and discovery made; warm: the next revision);"
        " latency is POST to ApplySucceeded visible to a reader on one idle cluster, over"
        f" {args.revisions} revisions in a row. Per target the applier makes three LISTs (prune"
        " scopes), three server-side applies and appends one outcome; the raw baseline, measured in"
        " the same run against the same emulator, is kubernetes-asyncio alone doing the three applies"
        " (same concurrency, and the same client stack: shared SSL contexts, discovery cache written"
        " once per cluster, see handlers/transport.py).",
        "",
        *table,
        "",
        f"CPU during the fan-out: service {service['fanout_cold_cpu']:.2f} s cold /"
        f" {service['fanout_warm_cpu']:.2f} s warm ({service['fanout_cold_cpu'] / args.clusters * 1000:.1f} /"
        f" {service['fanout_warm_cpu'] / args.clusters * 1000:.1f} ms per cluster), emulator"
        f" {service['fanout_cold_emulator_cpu']:.2f} s / {service['fanout_warm_emulator_cpu']:.2f} s; the rest of"
        " the two cores went to PostgreSQL and the driver. Targets: fan-out at most 10 s on 2 cores;"
        " latency p50 50 ms, p99 250 ms. The machine is shared with other work: wall times vary by"
        " about ±30% between runs, CPU seconds much less.",
        "",
        f"Peak RSS of the service: {rss:.0f} MB. Median submit-to-applied {statistics.median(lat):.1f} ms;"
        " for reference, Argo CD reconciles every 120 s (plus jitter) by default.",
    ])
    print(body)
    if not args.no_record:
        harness.record("Applier: fan-out and submit-to-applied latency", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
