"""Projection rebuild and audit replay, each beside its baseline from the same run.

1. Seed N events (bench/seed.py: 200 targets, 32 deployments, revisions fanning out to ~50 targets
   each, mostly apply outcomes) into an embedded PostgreSQL in a temp dir.
2. Baseline: a raw server-side cursor read (asyncpg, chunks of 5,000) of the same rows and the same
   columns the projector reads, run before and after the rebuild; the faster run is the baseline,
   so the ratio reported is the conservative one.
3. ``ledger rebuild`` as a subprocess: drop the read models, fold all N events, write the rows,
   checkpoints and snapshots. Reported: events/s, its ratio to the raw read, and the process's peak
   RSS (getrusage of the waited-for child).
4. ``ledger serve`` (projector on, applier off) answers ``GET /v1/state?at=P`` for random positions P:
   median, p90 and max latency, beside the time an in-process fold from 0 to the head takes (what
   every replay would cost without snapshots).

Run: ``.venv/bin/python -m bench.rebuild`` (1,000,000 events) or ``--quick`` (50,000 events, fewer
samples, nothing recorded). Figures go to docs/benchmarks.md unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import asyncpg

from bench import harness, seed
from projections import fleet, replay, snapshots

CHUNK = 5000


async def raw_read(url: str) -> tuple[int, float]:
    """Every event's projector columns through a server-side cursor; (rows, seconds)."""
    conn = await asyncpg.connect(url)
    count = 0
    try:
        started = time.perf_counter()
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            cursor = await conn.cursor(replay.EVENTS, 0, 2**62)
            while True:
                rows = await cursor.fetch(CHUNK)
                count += len(rows)
                if len(rows) < CHUNK:
                    break
        return count, time.perf_counter() - started
    finally:
        await conn.close()


async def snapshot_sizes(url: str) -> tuple[int, int, int]:
    """(snapshots, bytes of the latest, bytes of all) after the rebuild."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*), (SELECT length(data) FROM fleet_snapshots ORDER BY position DESC LIMIT 1),"
            " sum(length(data)) FROM fleet_snapshots")
        return int(row[0]), int(row[1] or 0), int(row[2] or 0)
    finally:
        await conn.close()


async def fold_from_zero(url: str, position: int) -> float:
    """Seconds to fold events 1..position in this process with no snapshot: the no-snapshot replay."""
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            await replay.fold_until(conn, fleet.empty(), position)
        return time.perf_counter() - started
    finally:
        await conn.close()


def rebuild(url: str) -> tuple[float, float, float]:
    """``ledger rebuild`` in a child process: (seconds it reports for the rebuild itself, wall
    seconds of the whole process including start-up and migrations, peak RSS MiB)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cli.main", "rebuild", "--database-url", url], check=True,
                          cwd=harness.ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    match = re.search(r"events in ([\d.]+) s", done.stdout)
    assert match, done.stdout
    return float(match.group(1)), wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def state_latencies(base: str, head: int, samples: int, rng: random.Random) -> list[float]:
    times = []
    for position in [head, *(rng.randint(1, head) for _ in range(samples - 1))]:
        started = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(f"{base}/v1/state?at={position}", headers=harness.HEADERS), timeout=120) as resp:
            assert resp.status == 200
            resp.read()
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=30, help="/v1/state requests")
    parser.add_argument("--quick", action="store_true", help="50,000 events, 8 samples, nothing recorded")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    events, samples = (50_000, 8) if args.quick else (args.events, args.samples)
    rng = random.Random(7)

    with harness.Postgres() as url:
        started = time.perf_counter()
        head = asyncio.run(seed.fill(url, events))
        print(f"seeded {head:,} events in {time.perf_counter() - started:.0f} s", flush=True)
        asyncio.run(raw_read(url))  # warm the cache for everyone alike
        raw_before = asyncio.run(raw_read(url))
        seconds, wall, peak_mb = rebuild(url)
        raw_after = asyncio.run(raw_read(url))
        raw_seconds = min(raw_before[1], raw_after[1])
        raw_rate, rate = head / raw_seconds, head / seconds
        print(f"raw cursor read: {raw_rate:,.0f} events/s; rebuild: {rate:,.0f} events/s "
              f"({rate / raw_rate:.2f}x; {wall:.1f} s with process start-up), peak RSS {peak_mb:.0f} MiB",
              flush=True)
        count, latest, total = asyncio.run(snapshot_sizes(url))
        print(f"{count} snapshots, latest {latest / 2**20:.2f} MiB, all {total / 2**20:.1f} MiB", flush=True)
        no_snapshot = asyncio.run(fold_from_zero(url, head))
        print(f"fold from 0 to the head without snapshots: {no_snapshot:.2f} s", flush=True)

        proc, base = harness.start_service(url, Path(tempfile.mkdtemp()), LEDGER_PROCESSES="single", LEDGER_APPLIER="false")
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{base}/v1/deployments?min_position={head}", headers=harness.HEADERS), timeout=120):
                pass
            times = state_latencies(base, head, samples, rng)
        finally:
            harness.stop(proc)
        ordered = sorted(times)
        median, p90, worst = statistics.median(times), ordered[int(0.9 * (len(ordered) - 1))], ordered[-1]
        print(f"/v1/state?at= over {samples} positions: median {median * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
              f"max {worst * 1000:.0f} ms", flush=True)

    if args.quick or args.no_record:
        return 0
    harness.record("Projection rebuild and audit replay", f"""
`.venv/bin/python -m bench.rebuild --events {events}` on {harness.machine()}.
Log: bench/seed.py mix (200 targets, 32 deployments, each revision fanning out to ~50 targets;
mostly apply outcomes). Rebuild is `ledger rebuild` as its own process: drop the read models, fold
every event, write rows, checkpoints and a snapshot every {snapshots.EVERY:,} events. The machine
is shared with other work, so the raw read varies by ±25% between runs; the faster of two raw reads
(before and after the rebuild) is the baseline, which makes the ratio the conservative one.

| measure | figure | baseline (same run) | ratio | target |
|---|---|---|---|---|
| rebuild of {head:,} events | {rate:,.0f} events/s ({seconds:.1f} s; {wall:.1f} s with process start-up) | raw server-side cursor read of the same rows and columns: {raw_rate:,.0f} events/s | {rate / raw_rate:.2f}x | ≥ 0.3x |
| peak RSS of the rebuild process | {peak_mb:.0f} MiB | | | ≤ 300 MiB |
| snapshots after the rebuild | {count}, latest {latest / 2**20:.2f} MiB, all {total / 2**20:.1f} MiB | | | |
| `GET /v1/state?at=` at {samples} random positions (HTTP, whole fleet) | median {median * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, max {worst * 1000:.0f} ms | fold from 0 to the head without snapshots: {no_snapshot * 1000:,.0f} ms | {median / no_snapshot:.2f}x | ≤ 1 s |
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
