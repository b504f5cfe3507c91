"""Export throughput and the service's memory, each beside its raw baseline from the same run.

1. Seed N events (bench/seed.py) into an embedded PostgreSQL in a temp dir.
2. Baseline: a raw asyncpg server-side cursor read of the same rows and columns, timed before
   and after the other phases; the faster of the two is the baseline (the machine is shared, so
   the conservative ratio is reported).
3. The service (``ledger serve`` as a subprocess, projector and applier off so the figures are the
   feed's) is then read end to end: ``/v1/feed`` paging with limit 1000 following ``Link: next``,
   ``/v1/feed/live`` from position 0 through the seam, ``ledger export`` over HTTP (ndjson and
   CloudEvents) and ``ledger export --database-url``. Each gets events/s and its ratio to the raw
   read; the service's peak RSS (VmHWM) is read after each. ``ledger verify`` is timed too.
4. A fresh service gets S concurrent SSE subscribers at the head, then 1,000 more events are
   appended; every subscriber must see all of them. Reported: RSS per subscriber and peak RSS.

Run: ``.venv/bin/python -m bench.export`` (1,000,000 events, 1,000 subscribers) or ``--quick`` for a
smoke check. Figures go to docs/benchmarks.md unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import yaml

from bench import harness, seed
from ledger import pgembed, records

PAGE = 1000
_batch = msgspec.json.Decoder(list[msgspec.Raw])


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def raw_read(url: str) -> int:
    conn = await asyncpg.connect(url)
    count = 0
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            async for _ in conn.cursor(f"SELECT {records.COLUMNS} FROM events ORDER BY position",
                                       prefetch=PAGE):
                count += 1
    finally:
        await conn.close()
    return count


async def feed_paging(base: str) -> int:
    count, url = 0, f"{base}/v1/feed?after=0&limit={PAGE}"
    async with aiohttp.ClientSession(headers=harness.HEADERS) as session:
        while True:
            async with session.get(url) as resp:
                assert resp.status == 200, resp.status
                page = _batch.decode(await resp.read())
                following = resp.links["next"]["url"]
            count += len(page)
            if len(page) < PAGE:
                return count
            url = str(resp.url.join(following))  # type: ignore[arg-type]


async def live_read(base: str, total: int) -> int:
    """Read /v1/feed/live from 0 until position ``total`` arrives; returns the events seen."""
    count, carry = 0, b""
    marker = b"\nid: "
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout, headers=harness.HEADERS) as session, \
            session.get(f"{base}/v1/feed/live?after=0") as resp:
        async for chunk in resp.content.iter_any():
            data = carry + chunk
            count += data.count(marker)
            carry = data[-(len(marker) - 1):]
            if count >= total:
                return count
    return count


def run_export(args: list[str], out: Path) -> int:
    subprocess.run([sys.executable, "-m", "cli.main", "export", *args, "-o", str(out)], check=True,
                   cwd=harness.ROOT, stderr=subprocess.DEVNULL, env={**os.environ, "LEDGER_TOKEN": harness.TOKEN})
    with out.open("rb") as handle:
        return sum(1 for _ in handle)


async def timed(what: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = what()
    if asyncio.iscoroutine(result):
        result = await result
    return result, time.perf_counter() - started


async def subscribers(base: str, count: int, proc: subprocess.Popen[bytes]) -> dict[str, float]:
    """``count`` SSE streams at the head; then 1,000 events appended; all must arrive everywhere."""
    before = rss_mb(proc.pid, "VmRSS")
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=harness.HEADERS) as session:
        async with session.get(f"{base}/v1/digest") as resp:
            head = (await resp.json())["position"]
        streams = [await session.get(f"{base}/v1/feed/live?after={head}") for _ in range(count)]
        for s in streams:
            assert (await s.content.readline()).startswith(b"retry:")
        connected = rss_mb(proc.pid, "VmRSS")
        target, appended = head + 1000, 0
        while appended < 1000:
            # Each request: one target registered and updated 99 times (a batch the rules allow).
            name = f"subs-{appended}"
            body = msgspec.json.encode({"events": [
                {"type": "TargetUpdated" if i else "TargetRegistered",
                 "data": {"target": name, "labels": {"n": str(i)}, "credentials": "bench"}}
                for i in range(100)]})
            async with session.post(f"{base}/v1/streams/target-{name}/events", data=body,
                                    headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 201, await resp.text()
            appended += 100

        async def drain(s: aiohttp.ClientResponse) -> None:
            needle = f"id: {target}\n".encode()
            while not (await s.content.readline()) == needle:
                pass

        started = time.perf_counter()
        await asyncio.gather(*(drain(s) for s in streams))
        delivered = time.perf_counter() - started
        during = rss_mb(proc.pid, "VmRSS")
        for s in streams:
            s.close()
    return {"rss_before_mb": before, "rss_connected_mb": connected, "rss_delivered_mb": during,
            "per_subscriber_kb": (connected - before) * 1024 / count, "peak_mb": rss_mb(proc.pid),
            "delivery_s": delivered}


@contextlib.contextmanager
def service(url: str, workdir: Path) -> Any:
    credentials = workdir / "credentials.yaml"  # the one (anonymous) credential subscribers' targets name
    credentials.write_text(yaml.safe_dump({"credentials": {"bench": {"server": "https://127.0.0.1:6443",
                                                                     "anonymous": True}}}))
    proc, base = harness.start_service(url, workdir / "data", LEDGER_PROCESSES="single", LEDGER_PROJECTOR="false", LEDGER_APPLIER="false",
                                       LEDGER_CREDENTIALS=str(credentials))
    try:
        yield proc, base
    finally:
        harness.stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="export feed benchmark")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="20,000 events and 50 subscribers")
    parser.add_argument("--no-record", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.subscribers = 20_000, 50
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.subscribers + 256)), hard))

    workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-export-"))
    server = pgembed.EmbeddedPostgres(workdir / "pg", options={"synchronous_commit": "off"})
    n = args.events
    figures: dict[str, Any] = {}
    try:
        admin = server.start()
        url = admin.rsplit("/", 1)[0] + "/bench_" + uuid.uuid4().hex[:8]

        async def create() -> None:
            conn = await asyncpg.connect(admin)
            await conn.execute(f"CREATE DATABASE {url.rsplit('/', 1)[1]}")
            await conn.close()

        asyncio.run(create())
        print(f"seeding {n:,} events ...", flush=True)
        started = time.perf_counter()
        head = asyncio.run(seed.fill(url, n))
        figures["seed_s"] = time.perf_counter() - started
        assert head == n, head
        print(f"  seeded in {figures['seed_s']:.0f}s ({n / figures['seed_s']:,.0f} events/s via EventStore.append)")

        async def measure_all() -> None:
            count, seconds = await timed(lambda: raw_read(url))
            assert count == n
            figures["raw"] = n / seconds
            print(f"raw server-side cursor read: {figures['raw']:,.0f} events/s")

        asyncio.run(measure_all())
        with service(url, workdir) as (proc, base):
            async def through_service() -> None:
                count, seconds = await timed(lambda: feed_paging(base))
                assert count == n, count
                figures["paging"], figures["paging_rss"] = n / seconds, rss_mb(proc.pid)
                print(f"/v1/feed paging:      {figures['paging']:,.0f} events/s "
                      f"({figures['paging'] / figures['raw']:.2f}x raw), peak RSS {figures['paging_rss']:.0f} MB")
                count, seconds = await timed(lambda: live_read(base, n))
                assert count >= n, count
                figures["live"], figures["live_rss"] = n / seconds, rss_mb(proc.pid)
                print(f"/v1/feed/live:        {figures['live']:,.0f} events/s "
                      f"({figures['live'] / figures['raw']:.2f}x raw), peak RSS {figures['live_rss']:.0f} MB")

            asyncio.run(through_service())
            for label, extra in (("export_ndjson", ["--url", base]),
                                 ("export_cloudevents", ["--url", base, "--format", "cloudevents"]),
                                 ("export_db", ["--database-url", url])):
                started = time.perf_counter()
                count = run_export(extra, workdir / "out.ndjson")
                seconds = time.perf_counter() - started
                assert count == n, (label, count)
                figures[label], figures[label + "_rss"] = n / seconds, rss_mb(proc.pid)
                print(f"ledger export {' '.join(extra[2:]) or 'ndjson'} ({extra[0]}): "
                      f"{figures[label]:,.0f} events/s ({figures[label] / figures['raw']:.2f}x raw), "
                      f"service peak RSS {figures[label + '_rss']:.0f} MB")
            figures["peak_rss"] = rss_mb(proc.pid)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cli.main", "verify", "--database-url", url], check=True,
                       cwd=harness.ROOT, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        again = n / asyncio.run(timed(lambda: raw_read(url)))[1]
        print(f"raw server-side cursor read again: {again:,.0f} events/s; the faster of the two is the baseline")
        figures["raw"] = max(figures["raw"], again)
        figures["verify"] = n / seconds
        print(f"ledger verify --database-url: {figures['verify']:,.0f} events/s "
              f"({figures['verify'] / figures['raw']:.2f}x raw)")

        with service(url, workdir) as (proc, base):
            subs = asyncio.run(subscribers(base, args.subscribers, proc))
            figures["subs"] = subs
            print(f"{args.subscribers} SSE subscribers: RSS {subs['rss_before_mb']:.0f} MB idle -> "
                  f"{subs['rss_connected_mb']:.0f} MB connected ({subs['per_subscriber_kb']:.0f} KB each) -> "
                  f"{subs['rss_delivered_mb']:.0f} MB after 1,000 events reached all of them in "
                  f"{subs['delivery_s']:.2f}s; peak RSS {subs['peak_mb']:.0f} MB")
    finally:
        server.destroy()
        shutil.rmtree(workdir, ignore_errors=True)

    print("\n" + report(n, args.subscribers, figures))
    if not args.no_record and not args.quick:
        harness.record("Export feed (bench/export.py)", report(n, args.subscribers, figures))
        print("recorded in docs/benchmarks.md")
    return 0


def report(n: int, subscriber_count: int, f: dict[str, Any]) -> str:
    raw = f["raw"]

    def row(name: str, key: str) -> str:
        return f"| {name} | {f[key]:,.0f} | {f[key] / raw:.2f}x | {f[key + '_rss']:.0f} MB |"

    subs = f["subs"]
    return "\n".join([
        f"{n:,} events seeded through `EventStore.append` by bench/seed.py (a fleet's mix: 200 targets, "
        f"32 deployments, revisions with small manifests, ~92% ApplySucceeded/ApplyFailed) into an "
        f"embedded PostgreSQL 16 (`synchronous_commit=off`), then read end to end. Service: "
        f"`ledger serve` as a subprocess, projector and applier off. Machine: {harness.machine()}; "
        "client, service and PostgreSQL share it.",
        "",
        "| path | events/s | vs raw cursor read | service peak RSS (VmHWM) |",
        "|---|---:|---:|---:|",
        f"| raw asyncpg server-side cursor read (baseline) | {raw:,.0f} | 1.00x | |",
        row("`GET /v1/feed` paging, limit 1000, following `Link: next`", "paging"),
        row("`GET /v1/feed/live` from 0 through the seam (SSE)", "live"),
        row("`ledger export --url` (ndjson)", "export_ndjson"),
        row("`ledger export --url --format cloudevents`", "export_cloudevents"),
        row("`ledger export --database-url` (cursor, no service)", "export_db"),
        f"| `ledger verify --database-url` (recomputes every hash) | {f['verify']:,.0f} | "
        f"{f['verify'] / raw:.2f}x | |",
        "",
        f"Targets: paging and export at least 0.3x the raw read; the service under 200 MB. "
        f"Peak RSS over the whole run: {f['peak_rss']:.0f} MB.",
        "",
        f"{subscriber_count:,} concurrent `/v1/feed/live` subscribers on a fresh service: RSS "
        f"{subs['rss_before_mb']:.0f} MB before, {subs['rss_connected_mb']:.0f} MB with all connected "
        f"({subs['per_subscriber_kb']:.0f} KB per subscriber), {subs['rss_delivered_mb']:.0f} MB after "
        f"1,000 new events reached every one of them ({subs['delivery_s']:.2f}s); peak "
        f"{subs['peak_mb']:.0f} MB. One shared tail per process, no connection per subscriber.",
        "",
        f"Seeding itself ran at {n / f['seed_s']:,.0f} events/s.",
    ])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
