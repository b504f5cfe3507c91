"""The service's memory per process (issue 16): bench/isolation.py's catch-up (phase 0) and its
stalled SSE subscribers (phase 3) alone, without the phases that take minutes.

Prints, per process of a default (multi-process) ``ledger serve``, MB RSS and PSS (PSS divides a
page shared by several processes among them; RSS counts it in each): just started, after the
projector has folded a log of ``--events`` events (bench/seed.py's mix) and the applier's catch-up
is written, with ``--subscribers`` non-reading subscribers on ``/v1/feed/live?after=0`` at the peak
(and seconds until all were cut off), and 3 s after they left. The load average goes beside them.

``--database-url``: a database already seeded (it is copied as a template into a fresh database
per run, so the service starts from an empty read model each time), else an embedded one seeded
here. Run: ``.venv/bin/python -m bench.memory --events 200000``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import yaml

from bench import append, harness, isolation, seed


async def _copy(url: str) -> str:
    """A fresh database cloned from ``url``'s (nobody may be connected to it meanwhile)."""
    base, _, query = url.partition("?")
    prefix, source = base.rsplit("/", 1)
    name = f"mem_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(f"{prefix}/template1" + (f"?{query}" if query else ""))
    try:
        await conn.execute(f'CREATE DATABASE {name} TEMPLATE "{source}"')
    finally:
        await conn.close()
    return f"{prefix}/{name}" + (f"?{query}" if query else "")


def run(args: argparse.Namespace, dsn: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-memory-"))
    credentials = work / "credentials.yaml"
    credentials.write_text(yaml.safe_dump({"credentials": {
        append.CREDENTIAL: {"server": "https://127.0.0.1:6443", "anonymous": True}}}))
    proc, url = harness.start_service(dsn, work / "data", log=work / "service.log", LEDGER_CREDENTIALS=str(credentials),
                                      **{"LEDGER_CLIENT_STREAM_LIMIT": "100000", **dict(args.env)})
    try:
        started = isolation.processes_mb(proc.pid)
        print(f"just started: {isolation.per_process(started)}  load {isolation.load_average()}", flush=True)

        async def go() -> None:
            async with aiohttp.ClientSession(headers=isolation.HEADERS) as session:
                head = int(await isolation.metric(session, url, "ledger_head_position"))
                took = await isolation.caught_up(session, url, head, 900)
                await isolation.settled(session, url, 5, 300)
                folded = isolation.processes_mb(proc.pid)
                print(f"folded {head:,} events ({took:.0f} s): {isolation.per_process(folded)}"
                      f"  summed {_sum(folded)}  load {isolation.load_average()}", flush=True)
                if args.subscribers:
                    found = await isolation.sse(session, url, proc.pid, args.subscribers, args.sse_seconds)
                    print(f"{args.subscribers} stalled subscribers, peak: {isolation.per_process(found['peak_each'])}"
                          f"  summed {found['peak'][0]:.0f} ({found['peak'][1]:.0f}); all cut off after "
                          f"{found['cut']} s; after: {found['after'][0]:.0f} ({found['after'][1]:.0f})"
                          f"  live reader ms {[round(ms) for ms in found['first_ms']]}  load {isolation.load_average()}",
                          flush=True)
        asyncio.run(go())
    finally:
        harness.stop(proc)


def _sum(found: dict[str, tuple[float, float]]) -> str:
    return f"{sum(r for r, _ in found.values()):.0f} ({sum(p for _, p in found.values()):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--sse-seconds", type=float, default=60)
    parser.add_argument("--env", action="append", default=[], type=lambda text: tuple(text.split("=", 1)),
                        metavar="NAME=VALUE", help="a setting for the service (repeatable)")
    parser.add_argument("--database-url", help="a seeded database to copy (else one is seeded here)")
    args = parser.parse_args()
    if args.database_url:
        run(args, asyncio.run(_copy(args.database_url)))
        return
    with harness.Postgres() as dsn:
        asyncio.run(seed.fill(dsn, args.events))
        run(args, dsn)


if __name__ == "__main__":
    main()
