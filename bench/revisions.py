"""What a revision submission costs the API process on a large fleet (projections/targetindex.py).

Seeds ``--targets`` registered targets (through the event store, not the API, so the API's CPU is
the commands' alone), starts ``ledger serve`` as it runs by default (supervisor, API and projector
processes; the applier off, so nothing is applied to clusters that do not exist), waits for the
projector, then submits ``--revisions`` revisions one after another, ``--changes`` target events
appended before each (a fleet that changes meanwhile). Prints the first submission's wall time,
the median and p90 of the rest, the API process's CPU seconds per revision (/proc/<pid>/stat) and
its RSS and PSS after (/proc/<pid>/smaps_rollup), with the load average beside the wall times.

``--checkout DIR`` serves another checkout's code with this interpreter (an A/B of a change: the
same script, dependencies and machine, only the service's code differs)::

    git archive main | tar -x -C /tmp/base
    .venv/bin/python -m bench.revisions --checkout /tmp/base
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from bench import harness, seed
from ledger import pgembed, records, store


def _smaps_mb(pid: int) -> tuple[float, float]:
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            found[key] = int(rest.split()[0]) / 1024
    return found["Rss"], found["Pss"]


def _api_pid(pid: int) -> int:
    for member in harness.tree(pid):
        argv = Path(f"/proc/{member}/cmdline").read_bytes().split(b"\0")
        if b"cli.roles" in argv and argv[argv.index(b"cli.roles") + 1] == b"api":
            return member
    return pid


async def _register(es: store.EventStore, start: int, count: int, *, updated: bool = False) -> None:
    async def one(i: int) -> None:
        await es.append(f"target-t-{i}", "any", [records.NewEvent(
            uuid.uuid4(), "TargetUpdated" if updated else "TargetRegistered",
            {"target": f"t-{i}", "labels": {"region": f"r{i % 8}", "tier": "edge" if i % 3 else "core",
                                             "stamp": str(time.monotonic_ns()) if updated else "0"},
             "credentials": "bench"})])

    for first in range(start, start + count, 500):
        await asyncio.gather(*(one(i) for i in range(first, min(first + 500, start + count))))


async def _projected(session: aiohttp.ClientSession, url: str, head: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        async with session.get(f"{url}/v1/targets?selector=region%3Dnone&min_position={head}") as answer:
            if answer.status == 200:
                return
        await asyncio.sleep(0.5)
    raise RuntimeError("the projector did not catch up")


async def _run(args: argparse.Namespace, dsn: str, url: str, pid: int) -> None:
    api = _api_pid(pid)
    async with seed.opened(dsn) as es, aiohttp.ClientSession(headers=harness.HEADERS) as session:
        head = (await es.head())[0]
        await _projected(session, url, head, 600)
        walls: list[float] = []
        cpu = 0.0
        for n in range(args.revisions + 1):
            await _register(es, (n * 7919) % args.targets, args.changes, updated=True)
            before = harness.cpu_seconds(api)
            started = time.perf_counter()
            async with session.post(f"{url}/v1/deployments/web/revisions", json={
                    "manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "web", "namespace": "apps"}, "data": {"n": str(n)}}],
                    "selector": "region=r1,tier=edge", "message": f"revision {n + 1}"}) as answer:
                body = await answer.json()
                assert answer.status == 201, body
            walls.append(time.perf_counter() - started)
            if not n:
                first_rss = _smaps_mb(api)[0]
            if n:
                cpu += harness.cpu_seconds(api) - before
        rss, pss = _smaps_mb(api)
    rest = sorted(walls[1:])
    print(f"targets {args.targets:,}, {args.changes} target events before each revision, "
          f"matched {len(body['matched_targets']):,}; load average {os.getloadavg()[0]:.2f}")
    print(f"first revision {walls[0] * 1000:.0f} ms; next {args.revisions}: median "
          f"{statistics.median(rest) * 1000:.1f} ms, p90 {rest[int(len(rest) * 0.9) - 1] * 1000:.1f} ms")
    print(f"API process: {cpu / args.revisions * 1000:.1f} ms CPU per revision; RSS {first_rss:.0f} MB after the "
          f"first revision, {rss:.0f} MB (PSS {pss:.0f} MB) after the last")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=40_000)
    parser.add_argument("--revisions", type=int, default=20)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--checkout", type=Path, default=harness.ROOT, help="the code to serve")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-revisions-"))
    credentials = work / "credentials.yaml"
    credentials.write_text('credentials:\n  bench:\n    server: "https://127.0.0.1:6443"\n    anonymous: true\n')
    with harness.Postgres() as dsn:
        async def fill() -> None:
            async with seed.opened(dsn) as es:
                await _register(es, 0, args.targets)
        asyncio.run(fill())
        port = pgembed.free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")},
               "LEDGER_DATABASE_URL": dsn, "LEDGER_HTTP_PORT": str(port), "LEDGER_DATA_DIR": str(work / "data"),
               "LEDGER_LOG_LEVEL": "WARNING", "LEDGER_ADMIN_TOKEN": harness.TOKEN, "LEDGER_APPLIER": "false",
               "LEDGER_CREDENTIALS": str(credentials)}
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve"], cwd=args.checkout, env=env,
                                stdin=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            harness.wait_http(url + "/readyz", proc)
            asyncio.run(_run(args, dsn, url, proc.pid))
        finally:
            harness.stop(proc)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
