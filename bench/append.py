"""Append throughput over HTTP, each beside its raw baseline measured in the same run.

1. Single-event requests, 64 keep-alive connections (wrk): the ledger vs an aiohttp no-op JSON
   POST handler driven by the same wrk script; and the ledger with access control (every request
   authenticated by its bearer token, api/auth.py) vs the same service without it
   (bench/open_service.py), same script, same run: authentication may cost at most 5%. Both
   services run throughout; the comparison is made of many short pairs (one measurement each,
   back to back, the order alternating), and judged by the median of the per-pair ratios, since on
   a shared machine the rate drifts more from minute to minute than the cost being measured.
2. Batches of 500 events per request: the ledger over HTTP vs raw asyncpg
   ``INSERT … SELECT unnest(…)`` of the same rows (ids of the same kind, time-ordered version 7)
   into a copy of the events table.

The requests are client writes, decided by the rules like any other (projections/rules.py): each
registers a target on a stream of its own (a batch: one registration and its updates), naming an
anonymous credential of a credentials file the benchmark writes; the ledger's own ``rollout-*``
streams are closed to clients.

Run: ``make bench`` or ``.venv/bin/python -m bench.append [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import yaml

from bench import harness
from ledger import hashing, ids, pgembed, secrets

CREDENTIAL = "bench"


def registration(name: str) -> dict:
    return {"type": "TargetRegistered", "data": {"target": name, "labels": {"bench": "yes"},
                                                 "credentials": CREDENTIAL}}


def update(name: str, n: int) -> dict:
    return {"type": "TargetUpdated", "data": {"target": name, "labels": {"bench": "yes", "n": str(n)},
                                              "credentials": CREDENTIAL}}


# Every request registers a target of its own: a client write that the rules always allow, decided
# on a fresh stream's state. Names carry the run's start second, so runs against one database never
# collide (wrk runs one thread; each run lasts seconds).
SINGLE_LUA = """
counter = 0
prefix = "b" .. os.time()
request = function()
  counter = counter + 1
  local name = prefix .. "-" .. counter
  local body = '{"events":[{"type":"TargetRegistered","data":{"target":"' .. name ..
    '","labels":{"bench":"yes"},"credentials":"%s"}}]}'
  return wrk.format("POST", "/v1/streams/target-" .. name .. "/events",
                    {["Content-Type"]="application/json", ["Authorization"]="Bearer TOKEN"}, body)
end
"""

# A batch is one target's registration and its updates, on a stream of its own per request.
BATCH_LUA = """
counter = 0
prefix = "t" .. os.time()
body = %s
request = function()
  counter = counter + 1
  local name = prefix .. "-" .. counter
  return wrk.format("POST", "/v1/streams/target-" .. name .. "/events",
                    {["Content-Type"]="application/json", ["Authorization"]="Bearer TOKEN"},
                    body:gsub("TARGET", name))
end
"""


def write_credentials(path: Path) -> Path:
    """One anonymous credential that every benchmark target names (nothing is ever contacted)."""
    path.write_text(yaml.safe_dump({"credentials": {CREDENTIAL: {"server": "https://127.0.0.1:6443",
                                                                 "anonymous": True}}}))
    return path


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


async def checkpoint(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def raw_baseline(database_url: str, seconds: float, batch: int, workers: int) -> float:
    """Raw asyncpg INSERT … SELECT unnest(…) of the same rows, same batch size and concurrency."""
    conn = await asyncpg.connect(database_url)
    await conn.execute("DROP TABLE IF EXISTS raw_events; CREATE TABLE raw_events (LIKE events INCLUDING ALL)")
    await conn.close()
    pool = await asyncpg.create_pool(database_url, min_size=workers, max_size=workers)
    data = json.dumps(update("raw", 1)["data"])
    meta = json.dumps({"client": "bench"})
    deadline = time.monotonic() + seconds
    done = 0

    async def worker(w: int) -> None:
        nonlocal done
        position = w * 10**8
        while time.monotonic() < deadline:
            now = dt.datetime.now(dt.UTC)
            positions = list(range(position + 1, position + batch + 1))
            position += batch
            async with pool.acquire() as c:
                await c.execute(
                    "INSERT INTO raw_events (position, stream, version, id, type, data, metadata, recorded_at,"
                    " prev_hash, hash) SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::uuid[],"
                    " $5::text[], $6::jsonb[], $7::jsonb[], $8::timestamptz[], $9::text[], $10::text[])",
                    positions, [f"target-raw-{w}"] * batch, [p - w * 10**8 for p in positions], ids.generate(batch),
                    ["TargetUpdated"] * batch, [data] * batch, [meta] * batch, [now] * batch,
                    [hashing.GENESIS] * batch, [hashing.GENESIS] * batch,
                )
            done += batch

    start = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    elapsed = time.monotonic() - start
    await pool.close()
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds before each wrk run")
    parser.add_argument("--pairs", type=int, default=16, help="with/without access control measurement pairs")
    parser.add_argument("--pair-seconds", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-append-"))
    single_lua = work / "single.lua"
    token = secrets.new()
    single_lua.write_text(SINGLE_LUA.replace("%s", CREDENTIAL).replace("TOKEN", token))
    batch_body = json.dumps({"events": [registration("TARGET")] + [update("TARGET", i)
                                                                   for i in range(1, args.batch)]})
    credentials = str(write_credentials(work / "credentials.yaml"))
    batch_lua = work / "batch.lua"
    batch_lua.write_text((BATCH_LUA % lua_string(batch_body)).replace("TOKEN", token))

    def measure(url: str, script: Path, connections: int) -> dict[str, float]:
        # A short unmeasured run first, on both sides: fresh processes, cold caches and a fresh
        # database's first WAL segments are not what the steady rate is about.
        harness.wrk(url, script, connections=connections, seconds=args.warmup)
        return harness.wrk(url, script, connections=connections, seconds=args.seconds)

    def noop_run() -> dict[str, float]:
        port = pgembed.free_port()
        noop = subprocess.Popen([sys.executable, "-m", "bench.noop", str(port)], cwd=harness.ROOT)
        try:
            harness.wait_http(f"http://127.0.0.1:{port}/", noop)
            print(f"no-op aiohttp handler, {args.connections} connections, {args.seconds}s …", flush=True)
            return measure(f"http://127.0.0.1:{port}", single_lua, args.connections)
        finally:
            harness.stop(noop)

    rounds: list[dict[str, dict[str, float] | float]] = []
    pairs: list[dict[str, dict[str, float]]] = []
    with harness.Postgres() as database_url:
        service, url = harness.start_service(database_url, work / "data", LEDGER_PROCESSES="single", LEDGER_PROJECTOR="false",
                                             LEDGER_APPLIER="false", LEDGER_ADMIN_TOKEN=token,
                                             LEDGER_CREDENTIALS=credentials)
        opened, open_url = harness.start_service(database_url, work / "open", module=("bench.open_service",),
                                                 LEDGER_PROJECTOR="false", LEDGER_APPLIER="false",
                                                 LEDGER_CREDENTIALS=credentials)
        try:
            # Rounds interleave each measurement with its baseline, so the machine's drift (it is a
            # shared VM: ±30% between minutes) hits both sides of a ratio alike.
            for n in range(1, args.rounds + 1):
                print(f"round {n}/{args.rounds}", flush=True)
                base = noop_run()
                # Each measurement starts after a CHECKPOINT, so one does not pay for the previous
                # one's dirty pages (the rounds write millions of rows).
                asyncio.run(checkpoint(database_url))
                print(f"ledger single-event appends, {args.connections} connections, {args.seconds}s …", flush=True)
                single = measure(url, single_lua, args.connections)
                asyncio.run(checkpoint(database_url))
                print(f"ledger batches of {args.batch}, {args.batch_connections} connections, {args.seconds}s …",
                      flush=True)
                batched = measure(url, batch_lua, args.batch_connections)
                asyncio.run(checkpoint(database_url))
                print(f"raw asyncpg INSERT … unnest, batches of {args.batch} …", flush=True)
                asyncio.run(raw_baseline(database_url, args.warmup, args.batch, args.batch_connections))  # warm-up
                raw = asyncio.run(raw_baseline(database_url, args.seconds, args.batch, args.batch_connections))
                rounds.append({"noop": base, "single": single, "batched": batched, "raw": raw})
            for n in range(1, args.pairs + 1):
                print(f"pair {n}/{args.pairs}: single-event appends with and without access control, "
                      f"{args.pair_seconds}s each …", flush=True)
                pair: dict[str, dict[str, float]] = {}
                for side in (("auth", "open") if n % 2 else ("open", "auth")):
                    asyncio.run(checkpoint(database_url))
                    target, pid = (url, service.pid) if side == "auth" else (open_url, opened.pid)
                    harness.wrk(target, single_lua, connections=args.connections, seconds=1)
                    cpu = harness.cpu_seconds(pid)
                    pair[side] = harness.wrk(target, single_lua, connections=args.connections,
                                             seconds=args.pair_seconds)
                    served = pair[side]["requests_per_s"] * args.pair_seconds
                    pair[side]["cpu_us"] = (harness.cpu_seconds(pid) - cpu) / served * 1e6
                pairs.append(pair)
        finally:
            harness.stop(service)
            harness.stop(opened)

    def median(values: list[float]) -> float:
        return statistics.median(values)

    def series(key: str, field: str) -> list[float]:
        return [r[key][field] for r in rounds]  # type: ignore[index]

    def paired(side: str, field: str) -> list[float]:
        return [p[side][field] for p in pairs]

    single_rates, noop_rates = series("single", "requests_per_s"), series("noop", "requests_per_s")
    batch_rates = [v * args.batch for v in series("batched", "requests_per_s")]
    raw_rates = [float(r["raw"]) for r in rounds]  # type: ignore[arg-type]
    rows = [
        ("single-event append over HTTP (events/s)", single_rates, noop_rates, "aiohttp no-op JSON POST"),
        ("single-event append p50 (ms)", series("single", "p50_ms"), series("noop", "p50_ms"), "no-op p50"),
        ("single-event append p99 (ms)", series("single", "p99_ms"), series("noop", "p99_ms"), "no-op p99"),
        ("single-event append with access control (events/s), pairs", paired("auth", "requests_per_s"),
         paired("open", "requests_per_s"), "the same service without access control"),
        ("single-event append p99 with access control (ms), pairs", paired("auth", "p99_ms"),
         paired("open", "p99_ms"), "p99 without access control"),
        (f"batch-of-{args.batch} append over HTTP (events/s)", batch_rates, raw_rates,
         "raw asyncpg INSERT … unnest"),
    ]
    errors = (sum(series("single", "errors")) + sum(series("batched", "errors"))
              + sum(paired("auth", "errors")) + sum(paired("open", "errors")))
    lines = [
        f"Measured {dt.date.today().isoformat()} on {harness.machine()}; service, PostgreSQL and wrk share the machine.",
        f"wrk: {args.connections} keep-alive connections for single events, {args.batch_connections} for batches, "
        f"{args.seconds} s a measurement after {args.warmup} s of warm-up, {args.rounds} rounds each interleaving "
        "the ledger with its baselines; "
        "embedded PostgreSQL with default durability (fsync on), a CHECKPOINT before each measurement; "
        "projector and applier off; the no-op runs on the "
        f"same runtime as the service (uvloop, same GC settings). Non-2xx answers: {int(errors)}.",
        "",
        "| measure (median of rounds) | ledger | baseline | ratio of medians | per-round ratios | baseline is |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, ours, theirs, what in rows:
        per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(ours, theirs, strict=True))
        lines.append(f"| {name} | {median(ours):,.1f} | {median(theirs):,.1f} | "
                     f"{median(ours) / median(theirs):.2f}x | {per_round} | {what} |")
    pair_ratios = [a / b for a, b in zip(paired("auth", "requests_per_s"), paired("open", "requests_per_s"),
                                         strict=True)]
    cpu_ratios = [a / b for a, b in zip(paired("auth", "cpu_us"), paired("open", "cpu_us"), strict=True)]
    lines += ["", f"Access control: {args.pairs} pairs of {args.pair_seconds} s measurements (order alternating, "
              f"1 s warm-up each); median of the per-pair rate ratios {median(pair_ratios):.3f}, i.e. "
              f"authentication costs {(1 - median(pair_ratios)) * 100:.1f}% of the throughput (limit 5%; below "
              f"zero is the machine's drift). "
              f"The service's CPU per request (what a single-event append is bound by; less sensitive to "
              f"the machine's other load than rates): {median(paired('auth', 'cpu_us')):.0f} µs with, "
              f"{median(paired('open', 'cpu_us')):.0f} µs without; median per-pair ratio "
              f"{median(cpu_ratios):.3f} (per pair: {', '.join(f'{r:.2f}' for r in cpu_ratios)})."]
    lines += ["", "Targets: single-event rate at least 0.5x the no-op, p99 at most 25 ms; batches at least 0.5x raw; "
              "with access control at least 0.95x the rate without."]
    report = "\n".join(lines)
    print(report)
    if not args.no_record:
        harness.record("Append (bench/append.py)", report)


if __name__ == "__main__":
    main()
