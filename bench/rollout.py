"""Progressive rollouts: a 4-wave rollout to 1,000 emulated clusters against the same revision
without a strategy, in the same run, and the ledger's own delay between waves.

Setup: an embedded PostgreSQL, ``ledger serve`` as a subprocess (API, projector, applier with its
rollout driver), the Kubernetes API emulator in another process (``python -m emulator --auto-create
--rollout-delay 1``: a Deployment becomes available 1 s after it is applied), 1,000 targets.

1. Without a strategy: seconds from the POST of a revision (Namespace, ConfigMap, Deployment) until
   every target's ``TargetHealthy`` for it is in the log.
2. With a strategy of 4 waves (1 target, 5%, 25%, the rest), zero soak: seconds from the POST until
   ``RolloutCompleted``. Target: at most 1.3x the first. A warm-up revision of each deployment comes
   first, so both are measured with warm clients.
3. The ledger's delay between a wave's last ``TargetHealthy`` and the next ``WaveStarted`` (recorded
   times in the log), over every wave boundary of ``--rollouts`` rollouts: p50 and p99. Target: p99
   at most 100 ms.

Run: ``.venv/bin/python -m bench.rollout [--clusters 1000] [--rollouts 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import harness
from bench.fanout import claimed, pct, register, write_credentials
from ledger import pgembed, writer

STRATEGY = {"waves": [{"name": "one", "size": 1}, {"name": "five", "size": "5%"},
                      {"name": "quarter", "size": "25%"}, {"name": "rest"}], "soak_seconds": 0}


def manifests(namespace: str, n: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
         "data": {"revision": str(n)}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "web", "image": f"nginx:1.{n}"}]}}}},
    ]


class Log:
    """Waits on the log, woken by its NOTIFY instead of polling."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.wake = asyncio.Event()

    async def start(self) -> None:
        await self.conn.add_listener(writer.NOTIFY_CHANNEL, lambda *_: self.wake.set())

    async def until(self, query: str, *args: Any, at_least: int = 1) -> None:
        while True:
            self.wake.clear()
            if int(await self.conn.fetchval(query, *args)) >= at_least:
                return
            try:
                await asyncio.wait_for(self.wake.wait(), 1.0)
            except TimeoutError:
                pass


HEALTHY = ("SELECT count(DISTINCT data->>'target') FROM events WHERE stream = $1 AND type = 'TargetHealthy'"
           " AND (data->>'revision')::int = $2")
COMPLETED = ("SELECT count(*) FROM events WHERE stream = $1 AND type = 'RolloutCompleted'"
             " AND (data->>'revision')::int = $2")


async def submit(session: aiohttp.ClientSession, url: str, name: str, n: int, strategy: bool) -> int:
    body: dict[str, Any] = {"manifests": manifests(f"bench-{name}", n), "selector": "fleet=bench"}
    if strategy:
        body["strategy"] = STRATEGY
    async with session.post(f"{url}/v1/deployments/{name}/revisions", json=body) as resp:
        if resp.status != 201:
            raise RuntimeError(f"{name}: {resp.status} {await resp.text()}")
        revision: int = (await resp.json())["revision"]
        return revision


async def wave_delays(conn: asyncpg.Connection, deployment: str, revision: int) -> list[float]:
    """Milliseconds from each wave's last TargetHealthy to the next wave's WaveStarted."""
    rows = await conn.fetch(
        "SELECT type, data::text, recorded_at FROM events WHERE stream = $1 AND type IN"
        " ('TargetHealthy', 'WaveStarted') AND (data->>'revision')::int = $2 ORDER BY position",
        f"rollout-{deployment}", revision)
    healthy: dict[str, Any] = {}
    starts: list[tuple[list[str], Any]] = []
    for type_, data, at in rows:
        parsed = json.loads(data)
        if type_ == "TargetHealthy":
            healthy.setdefault(parsed["target"], at)
        else:
            starts.append((parsed["targets"], at))
    delays = []
    for (members, _), (_, next_start) in itertools.pairwise(starts):
        last = max(healthy[t] for t in members)
        delays.append((next_start - last).total_seconds() * 1000)
    return delays


async def measure(url: str, dsn: str, clusters: int, rollouts: int) -> dict[str, Any]:
    names = [f"edge-{n:04d}" for n in range(clusters)]
    conn = await asyncpg.connect(dsn)
    log = Log(conn)
    await log.start()
    result: dict[str, Any] = {"plain_s": [], "waves_s": [], "delays_ms": []}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, headers=harness.HEADERS,
                                     connector=aiohttp.TCPConnector(limit=64)) as session:
        await register(session, url, "", names, {"fleet": "bench"})
        await asyncio.wait_for(claimed(conn, names), 120)
        for round_ in range(rollouts + 1):  # round 0 warms both deployments up
            for name, strategy in (("plain", False), ("waves", True)):
                started = time.perf_counter()
                revision = await submit(session, url, name, round_ + 1, strategy)
                if strategy:
                    await asyncio.wait_for(log.until(COMPLETED, "rollout-waves", revision), 900)
                else:
                    await asyncio.wait_for(log.until(HEALTHY, "rollout-plain", revision, at_least=clusters), 900)
                took = time.perf_counter() - started
                if round_ == 0:
                    print(f"  warm-up {name}: {took:.2f} s", flush=True)
                    continue
                result[f"{name}_s"].append(took)
                if strategy:
                    result["delays_ms"].extend(await wave_delays(conn, "waves", revision))
                print(f"  round {round_} {name}: {took:.2f} s", flush=True)
    await conn.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rollout", description=__doc__)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--rollouts", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-rollout-"))
    port = pgembed.free_port()
    emulator = f"http://127.0.0.1:{port}"
    emu = subprocess.Popen([sys.executable, "-m", "emulator", "--auto-create", "--rollout-delay", "1",
                            "--port", str(port)], cwd=harness.ROOT, stdout=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL)
    try:
        harness.wait_http(f"{emulator}/_emulator/clusters", emu)
        with harness.Postgres() as dsn:
            credentials = write_credentials(work / "credentials.yaml", emulator,
                                            [f"edge-{n:04d}" for n in range(args.clusters)])
            proc, url = harness.start_service(dsn, work / "data", LEDGER_APPLIER="true",
                                              LEDGER_CREDENTIALS=str(credentials))
            try:
                print(f"service {url}, emulator {emulator} (separate process)", flush=True)
                found = asyncio.run(measure(url, dsn, args.clusters, args.rollouts))
            finally:
                harness.stop(proc)
    finally:
        emu.terminate()
        emu.wait(10)
    plain, waves, delays = found["plain_s"], found["waves_s"], found["delays_ms"]
    plain_m, waves_m = sorted(plain)[len(plain) // 2], sorted(waves)[len(waves) // 2]
    body = "\n".join([
        f"Machine: {harness.machine()}.",
        "",
        f"`python -m bench.rollout --clusters {args.clusters} --rollouts {args.rollouts}`: `ledger serve`"
        " (API, projector, applier with the rollout driver) on an embedded PostgreSQL; the emulator in"
        " a separate process makes a Deployment available 1 s after it is applied. One revision"
        " (Namespace, ConfigMap, Deployment) to every cluster without a strategy (POST to the last"
        " TargetHealthy), and the same revision of another deployment with 4 waves (1 target, 5%, 25%,"
        " the rest; zero soak; POST to RolloutCompleted), alternately, after one warm-up round each;"
        " medians over the rounds. The wave delay is the ledger's own: from a wave's last"
        " TargetHealthy to the next WaveStarted, recorded times, over every wave boundary.",
        "",
        "| measure | value | target |",
        "|---|---:|---:|",
        f"| without a strategy (s, median of {len(plain)}) | {plain_m:.2f} | |",
        f"| 4 waves (s, median of {len(waves)}) | {waves_m:.2f} | |",
        f"| ratio | {waves_m / plain_m:.2f}x | at most 1.3x |",
        f"| wave delay p50 (ms, {len(delays)} boundaries) | {pct(delays, 50):.1f} | |",
        f"| wave delay p99 (ms) | {pct(delays, 99):.1f} | at most 100 |",
        "",
        "Each wave waits for its slowest member's health (1 s of emulated rollout after its apply),"
        " so four waves cost at least three extra health round trips beyond the single fan-out.",
    ])
    print(body)
    if not args.no_record:
        harness.record("Progressive rollouts: 4 waves against none", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
