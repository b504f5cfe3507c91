"""Load isolation (issue 16), all in one run against one ``ledger serve`` as it runs by default:
the API, the projector and the applier in processes of their own, the projector and the applier
on, the log seeded with ``--events`` events by bench/seed.py (a fleet's mix) before it starts.

0. Catch-up: seconds until the projector has folded the seeded log (the applier too).
1. Appends as ``make run`` serves them: wrk single-event appends (``--connections``) while the
   applier applies to ``--clusters`` emulated clusters (a revision every ``--churn`` s, the emulator
   in its own process). Beside it, same run, interleaved: the aiohttp no-op handler (bench/noop.py).
   Printed: events/s and p99 of both, the ratio (issue: at least 0.5x, p99 at most 25 ms).
2. Expensive lane: ``--replays`` concurrent ``/v1/state?at=<random>`` loops and ``--verifies``
   concurrent ``/v1/verify`` loops over the seeded log. Printed: p99 of single-event appends and of
   ``/v1/digest`` (one after the other, ``--rounds`` each) without the load and with it, 503s on the
   cheap lane (issue: none; p99 at most 50 ms) and the expensive answers by status.
3. Non-reading SSE subscribers: ``--subscribers`` raw connections on ``/v1/feed/live?after=0`` that
   never read, for up to ``--sse-seconds``. Printed: the service's memory (RSS summed over its
   processes, and PSS, which counts a shared page once) before, at its peak and after they left;
   seconds until every one was cut off (``ledger_sse_subscribers``); milliseconds from an append's
   request until a well-behaved live reader has the event, while they stall (issue: at most 200 MB,
   30 s, 100 ms).
4. Idle connections: ``--idle`` connections opened by helper processes (a process's descriptors
   are limited) and held; then ``/healthz``, appends and ``/readyz`` on a keep-alive connection
   opened before. Printed: answers by status, connections refused at the cap, and whether the
   service's log shows a database error (issue: answers, no database error).

The per-client limits are raised: the bench is one client (one token) playing many. The load
average is printed with the figures: the machine is shared.
Run: ``.venv/bin/python -m bench.isolation`` (``--quick``: small counts, a smoke test, no record;
``--only-lanes``: phase 2 alone, with the API process's CPU seconds and each process's memory after it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import re
import resource
import socket
import statistics
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
import yaml

from bench import append, harness, seed
from ledger import pgembed

TOKEN = harness.TOKEN
HEADERS = harness.HEADERS
HOLDERS = 4


def processes_mb(pid: int) -> dict[str, tuple[float, float]]:
    """RSS and PSS of each process of the service (``pid`` and every process under it), by role."""
    found: dict[str, tuple[float, float]] = {}
    for member in harness.tree(pid):
        try:
            text = Path(f"/proc/{member}/smaps_rollup").read_text()
            argv = Path(f"/proc/{member}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        role = argv[argv.index(b"cli.roles") + 1].decode() if b"cli.roles" in argv else \
            f"lane worker {member}" if b"api.laneworker" in argv else "supervisor" if member == pid else str(member)
        found[role] = (int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1)) / 1024,  # type: ignore[union-attr]
                       int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1)) / 1024)  # type: ignore[union-attr]
    return found


def memory_mb(pid: int) -> tuple[float, float]:
    """RSS and PSS of the service: ``pid`` and every process under it, summed."""
    found = processes_mb(pid).values()
    return sum(rss for rss, _ in found), sum(pss for _, pss in found)


def per_process(found: dict[str, tuple[float, float]]) -> str:
    order = ("supervisor", "api", "projector", "applier")
    return ", ".join(f"{role} {rss:.0f} ({pss:.0f})" for role, (rss, pss) in
                     sorted(found.items(), key=lambda item: order.index(item[0]) if item[0] in order else 9))


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) >= 2 else float("nan")


def load_average() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


async def metric(session: aiohttp.ClientSession, url: str, pattern: str) -> float:
    async with session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    found = re.search(rf"^{pattern} ([\d.e+]+)$", text, re.M)
    return float(found.group(1)) if found else float("nan")


async def post_event(session: aiohttp.ClientSession, url: str, stream: str, type_: str,
                     data: dict[str, Any]) -> tuple[float, int]:
    started = time.perf_counter()
    async with session.post(f"{url}/v1/streams/{stream}/events",
                            json={"events": [{"type": type_, "data": data}]}) as resp:
        await resp.read()
        return (time.perf_counter() - started) * 1000, resp.status


async def append_ms(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    name = f"probe-{uuid.uuid4().hex[:12]}"
    return await post_event(session, url, f"target-{name}", "TargetRegistered",
                            {"target": name, "labels": {"bench": "probe"}, "credentials": append.CREDENTIAL})


async def get_ms(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with session.get(url) as resp:
        await resp.read()
        return (time.perf_counter() - started) * 1000, resp.status


async def caught_up(session: aiohttp.ClientSession, url: str, head: int, limit: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        position = await metric(session, url, r'ledger_projector_position\{process="projector"\}')
        if position >= head:
            return time.perf_counter() - started
        await asyncio.sleep(1)
    raise SystemExit(f"the projector did not fold {head} events within {limit:.0f} s")


async def settled(session: aiohttp.ClientSession, url: str, quiet: float, limit: float) -> float:
    """Seconds until the log's head stays put for ``quiet`` s (the applier's catch-up outcomes written)."""
    started = time.perf_counter()
    last, since = -1.0, time.perf_counter()
    while time.perf_counter() - started < limit:
        head = await metric(session, url, "ledger_head_position")
        if head != last:
            last, since = head, time.perf_counter()
        elif time.perf_counter() - since >= quiet:
            break
        await asyncio.sleep(0.5)
    return time.perf_counter() - started


# 1. Appends as `make run` serves them -----------------------------------------------------------

async def churn(session: aiohttp.ClientSession, url: str, every: float, stop: asyncio.Event,
                revisions: itertools.count[int]) -> int:
    """A revision of the deployment every ``every`` s (numbered on from the last run's), applied to
    the emulated clusters."""
    revision = 0
    while not stop.is_set():
        revision = next(revisions)
        manifests = [{"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "churn", "namespace": "default"}, "data": {"n": str(revision)}}]
        _, status = await post_event(session, url, "deployment-churn", "RevisionSubmitted",
                                     {"deployment": "churn", "revision": revision, "selector": "bench=apply",
                                      "manifests": manifests})
        assert status == 201, status
        await asyncio.sleep(every)
    return revision


async def applied(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM events WHERE stream = 'rollout-churn' AND type = 'ApplySucceeded'"))
    finally:
        await conn.close()


def roles(pid: int) -> dict[str, list[int]]:
    """The PIDs of the service under ``pid`` by role (supervisor, api, projector, applier, lane)."""
    found: dict[str, list[int]] = {}
    for member in harness.tree(pid):
        try:
            argv = Path(f"/proc/{member}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        role = argv[argv.index(b"cli.roles") + 1].decode() if b"cli.roles" in argv else \
            "lane" if b"api.laneworker" in argv else "supervisor" if member == pid else "other"
        found.setdefault(role, []).append(member)
    return found


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def appends_as_served(args: argparse.Namespace, url: str, dsn: str, work: Path, clusters: list[str],
                      pids: dict[str, int]) -> dict[str, Any]:
    """Phase 1. ``pids``: the service's supervisor, PostgreSQL's postmaster and the emulator, whose
    CPU seconds per request are measured beside the rates (what a rate on a shared machine rests on)."""
    script = work / "single.lua"
    script.write_text(append.SINGLE_LUA.replace("%s", append.CREDENTIAL).replace("TOKEN", TOKEN))

    async def register() -> None:
        async with aiohttp.ClientSession(headers=HEADERS) as session:
            for name in clusters:
                _, status = await post_event(session, url, f"target-{name}", "TargetRegistered",
                                             {"target": name, "labels": {"bench": "apply"}, "credentials": name})
                assert status == 201, status

    asyncio.run(register())

    def groups() -> dict[str, list[int]]:
        found = roles(pids["service"])
        found["postgres"] = harness.tree(pids["postmaster"])
        found["emulator"] = [pids["emulator"]]
        return found

    def measured(target: str, each: Callable[[], dict[str, list[int]]]) -> tuple[dict[str, float], dict[str, float]]:
        """wrk's measured run, and CPU ms per request of each group and of wrk itself."""
        before = {name: harness.cpu_seconds_all(members) for name, members in each().items()}
        children = _children_cpu()
        found = harness.wrk(target, script, connections=args.connections, seconds=args.wrk_seconds)
        cpu = {name: (harness.cpu_seconds_all(members) - before.get(name, 0.0)) * 1000 / found["requests"]
               for name, members in each().items()}
        cpu["wrk"] = (_children_cpu() - children) * 1000 / found["requests"]
        return found, cpu

    def noop_run() -> tuple[dict[str, float], dict[str, float]]:
        port = pgembed.free_port()
        noop = subprocess.Popen([sys.executable, "-m", "bench.noop", str(port)], cwd=harness.ROOT)
        try:
            harness.wait_http(f"http://127.0.0.1:{port}/", noop)
            harness.wrk(f"http://127.0.0.1:{port}", script, connections=args.connections, seconds=1)
            return measured(f"http://127.0.0.1:{port}", lambda: {"handler": [noop.pid]})
        finally:
            harness.stop(noop)

    def ledger_run() -> tuple[dict[str, float], dict[str, float], int]:
        async def go() -> tuple[dict[str, float], dict[str, float], int]:
            stop = asyncio.Event()
            before = await applied(dsn)
            async with aiohttp.ClientSession(headers=HEADERS) as session:
                revisions = asyncio.create_task(churn(session, url, args.churn, stop, numbers))
                await asyncio.sleep(args.churn * 2)
                await asyncio.to_thread(harness.wrk, url, script, connections=args.connections, seconds=1)
                found, cpu = await asyncio.to_thread(measured, url, groups)
                stop.set()
                await revisions
            return found, cpu, await applied(dsn) - before
        return asyncio.run(go())

    noops, ledgers, noop_cpu, ledger_cpu, applies = [], [], [], [], 0
    numbers = itertools.count(1)
    for n in range(args.wrk_rounds):
        print(f"  round {n + 1}/{args.wrk_rounds}: no-op, then ledger appends while applying …", flush=True)
        found, cpu = noop_run()
        noops.append(found)
        noop_cpu.append(cpu)
        found, cpu, count = ledger_run()
        ledgers.append(found)
        ledger_cpu.append(cpu)
        applies += count
    med = statistics.median

    def cpu_median(runs: list[dict[str, float]]) -> dict[str, float]:
        return {name: med(run.get(name, 0.0) for run in runs) for name in runs[0]}

    return {"noop_rps": med(r["requests_per_s"] for r in noops), "noop_p99": med(r["p99_ms"] for r in noops),
            "rps": med(r["requests_per_s"] for r in ledgers), "p99": med(r["p99_ms"] for r in ledgers),
            "errors": sum(r["errors"] for r in ledgers), "applies": applies,
            "noop_cpu": cpu_median(noop_cpu), "cpu": cpu_median(ledger_cpu)}


def cpu_line(served: dict[str, Any]) -> str:
    """What the two rates rest on: CPU milliseconds per request, process by process, on a machine of
    ``os.cpu_count()`` cores (a rate is at most cores / CPU per request, wherever the CPU is spent)."""
    def listed(cpu: dict[str, float]) -> str:
        return ", ".join(f"{name} {ms:.3f}" for name, ms in sorted(cpu.items(), key=lambda kv: -kv[1]) if ms >= 0.0005)
    ledger, noop = sum(served["cpu"].values()), sum(served["noop_cpu"].values())
    cores = os.cpu_count() or 1
    return (f"CPU ms per request during the measured runs (median of the rounds; {cores} cores): ledger "
            f"{listed(served['cpu'])}: **{ledger:.3f} ms** in all; no-op {listed(served['noop_cpu'])}: "
            f"**{noop:.3f} ms** in all. At {ledger:.3f} ms the machine's {cores} cores allow at most "
            f"{cores * 1000 / ledger:,.0f} appends/s, {cores * 1000 / ledger / served['noop_rps']:.2f}x the no-op's "
            f"measured rate; the API process alone ({served['cpu'].get('api', float('nan')):.3f} ms on one core) "
            f"at most {1000 / served['cpu'].get('api', float('nan')):,.0f}/s.")


# 2. Expensive lane ------------------------------------------------------------------------------

async def cheap_round(session: aiohttp.ClientSession, url: str, rounds: int) -> dict[str, Any]:
    appends, digests, statuses = [], [], []
    for _ in range(rounds):
        ms, status = await append_ms(session, url)
        appends.append(ms)
        statuses.append(status)
        ms, status = await get_ms(session, f"{url}/v1/digest")
        digests.append(ms)
        statuses.append(status)
    return {"append_p99": p99(appends), "digest_p99": p99(digests),
            "cheap_503": sum(1 for s in statuses if s == 503),
            "cheap_other": sum(1 for s in statuses if s not in (200, 201, 503))}


async def lanes(session: aiohttp.ClientSession, url: str, events: int, replays: int, verifies: int,
                rounds: int) -> dict[str, Any]:
    quiet = await cheap_round(session, url, rounds)
    stop = asyncio.Event()
    expensive: dict[str, dict[int, int]] = {"state": {}, "verify": {}}

    async def loop(kind: str, path: Any) -> None:
        async with aiohttp.ClientSession(headers=HEADERS) as own:  # a client of its own: its own connections
            while not stop.is_set():
                _, status = await get_ms(own, url + path())
                expensive[kind][status] = expensive[kind].get(status, 0) + 1

    load = [asyncio.create_task(loop("state", lambda: f"/v1/state?at={random.randint(1, events)}"))
            for _ in range(replays)]
    load += [asyncio.create_task(loop("verify", lambda: "/v1/verify")) for _ in range(verifies)]
    await asyncio.sleep(2)
    loaded = await cheap_round(session, url, rounds)
    stop.set()
    await asyncio.gather(*load)
    return {"quiet": quiet, "loaded": loaded, "expensive": expensive}


# 3. Non-reading SSE subscribers -----------------------------------------------------------------

async def sse(session: aiohttp.ClientSession, url: str, pid: int, subscribers: int, seconds: float) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    before = memory_mb(pid)
    before_each = processes_mb(pid)
    live = await session.get(f"{url}/v1/feed/live", timeout=aiohttp.ClientTimeout(total=None))
    await live.content.readline()
    socks = []
    loop = asyncio.get_running_loop()
    for _ in range(subscribers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, int(port)))
        sock.send(f"GET /v1/feed/live?after=0 HTTP/1.1\r\nHost: bench\r\n"
                  f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
        socks.append(sock)
    opened = time.perf_counter()
    await asyncio.sleep(1)
    firsts: list[float] = []
    for _ in range(5):
        stamp = uuid.uuid4().hex[:8]
        sent = time.perf_counter()
        _, status = await post_event(session, url, "target-live", "TargetRegistered" if not firsts else "TargetUpdated",
                                     {"target": "live", "labels": {"stamp": stamp}, "credentials": append.CREDENTIAL})
        assert status == 201, status
        while stamp.encode() not in await live.content.readline():
            pass
        firsts.append((time.perf_counter() - sent) * 1000)
        await asyncio.sleep(0.5)
    peak, peak_each, all_cut = before, before_each, None
    while time.perf_counter() - opened < seconds:
        now = memory_mb(pid)
        if now[0] > peak[0]:
            peak_each = processes_mb(pid)
        peak = (max(peak[0], now[0]), max(peak[1], now[1]))
        if await metric(session, url, "ledger_sse_subscribers") <= 1:
            all_cut = time.perf_counter() - opened
            break
        await asyncio.sleep(0.5)
    for sock in socks:
        sock.close()
    live.close()
    await asyncio.sleep(3)
    return {"before": before, "before_each": before_each, "peak": peak, "peak_each": peak_each,
            "after": memory_mb(pid), "cut": all_cut, "first_ms": firsts}


# 4. Idle connections ----------------------------------------------------------------------------

def hold(host: str, port: int, count: int) -> None:
    """(Helper process) open ``count`` connections, say how many, hold them until stdin closes."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    held = []
    for _ in range(count):
        try:
            held.append(socket.create_connection((host, port), timeout=5))
        except OSError:
            break
    print(len(held), flush=True)
    sys.stdin.read()


async def idle(session: aiohttp.ClientSession, url: str, count: int) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    async with session.get(f"{url}/healthz") as resp:  # the keep-alive connection, opened before
        await resp.read()
    holders = [subprocess.Popen([sys.executable, "-m", "bench.isolation", "--hold", host, port,
                                 str(count // HOLDERS)], cwd=harness.ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(HOLDERS)]
    try:
        held = 0
        for h in holders:
            assert h.stdout is not None
            held += int(await asyncio.to_thread(h.stdout.readline) or 0)
        statuses: dict[str, dict[int, int]] = {"healthz": {}, "append": {}, "readyz": {}}
        for _ in range(20):
            for kind, call in (("healthz", get_ms(session, f"{url}/healthz")), ("append", append_ms(session, url)),
                               ("readyz", get_ms(session, f"{url}/readyz"))):
                _, status = await call
                statuses[kind][status] = statuses[kind].get(status, 0) + 1
        refused = await metric(session, url, "ledger_connections_refused_total")
        opened = await metric(session, url, "ledger_connections_open")
    finally:
        for h in holders:
            h.communicate("")
    return {"held": held, "statuses": statuses, "refused": refused, "open": opened}


# The run ----------------------------------------------------------------------------------------

def api_pid(pid: int) -> int:
    """The API process of the service under ``pid`` (``pid`` itself when it runs single)."""
    for member in harness.tree(pid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{member}/cmdline").read_bytes().split(b"\0")
            if b"cli.roles" in argv and argv[argv.index(b"cli.roles") + 1] == b"api":
                return member
    return pid


async def workers_gone(pid: int, limit: float = 60.0) -> float:
    """Seconds until the expensive lane's worker processes have exited (they do once the lane has
    been idle for ``expensive_idle_exit``); the service at rest again is what the SSE phase starts from."""
    started = time.perf_counter()
    while any(role.startswith("lane worker") for role in processes_mb(pid)) and time.perf_counter() - started < limit:
        await asyncio.sleep(0.5)
    return time.perf_counter() - started


async def lanes_alone(args: argparse.Namespace, url: str, pid: int) -> None:
    """Phase 2 on its own, with what contention disturbs little beside the p99s."""
    api = api_pid(pid)
    rss = lambda: processes_mb(pid)  # noqa: E731
    before, cpu = rss(), harness.cpu_seconds(api)
    async with aiohttp.ClientSession(headers=HEADERS, connector=aiohttp.TCPConnector(limit=0)) as session:
        started = time.perf_counter()
        found = await lanes(session, url, args.events, args.replays, args.verifies, args.rounds)
        took, load = time.perf_counter() - started, load_average()
        used, right_after = harness.cpu_seconds(api) - cpu, rss()
        await asyncio.sleep(8)  # the lane idle (workers exit after LEDGER_EXPENSIVE_IDLE_EXIT, 5 s)
        later = rss()
    q, loaded = found["quiet"], found["loaded"]
    print(f"events {args.events:,}, {args.replays} replay + {args.verifies} verify loops; load avg {load}")
    print(f"append p99 {q['append_p99']:.1f} ms unloaded -> {loaded['append_p99']:.1f} ms loaded; digest p99 "
          f"{q['digest_p99']:.1f} -> {loaded['digest_p99']:.1f} ms; cheap 503s {loaded['cheap_503']} "
          f"(other non-2xx {loaded['cheap_other']})")
    print(f"expensive answers: state {dict(sorted(found['expensive']['state'].items()))}, "
          f"verify {dict(sorted(found['expensive']['verify'].items()))}")
    print(f"API process CPU {used:.1f} s over the phase's {took:.0f} s")
    for when, each in (("before", before), ("right after", right_after), ("8 s after", later)):
        print(f"memory {when}: {per_process(each)}")

async def measure(args: argparse.Namespace, url: str, pid: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers=HEADERS, connector=aiohttp.TCPConnector(limit=0)) as session:
        print("expensive lane: cheap requests without and with the load …", flush=True)
        found["lanes"] = await lanes(session, url, args.events, args.replays, args.verifies, args.rounds)
        found["lanes_load"] = load_average()
        found["after_lanes_each"] = processes_mb(pid)
        found["workers_gone"] = await workers_gone(pid)
        await asyncio.sleep(3)  # the lane idle for a few seconds (api/lanes.py then trims the heap)
        print(f"{args.subscribers} non-reading SSE subscribers …", flush=True)
        found["sse"] = await sse(session, url, pid, args.subscribers, args.sse_seconds)
        found["sse_load"] = load_average()
    print(f"{args.idle} idle connections …", flush=True)
    async with aiohttp.ClientSession(headers=HEADERS, connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=3600)) as kept:
        found["idle"] = await idle(kept, url, args.idle)
    found["idle_load"] = load_average()
    return found


def report(args: argparse.Namespace, f: dict[str, Any], catch_up: float, served: dict[str, Any],
           served_load: str, log_errors: list[str], rest: dict[str, dict[str, tuple[float, float]]]) -> str:
    lanes_, sse_, idle_ = f["lanes"], f["sse"], f["idle"]
    q, loaded = lanes_["quiet"], lanes_["loaded"]
    ratio = served["rps"] / served["noop_rps"]
    cut = f"{sse_['cut']:.1f} s" if sse_["cut"] is not None else f"not all within {args.sse_seconds:g} s"
    firsts = sse_["first_ms"]
    return "\n".join([
        f"Machine: {harness.machine()}; client, service, emulator and PostgreSQL share it (and other "
        "work: load averages 1/5/15 min are given per row).",
        f"Service: `ledger serve` as it runs by default (supervisor + API, projector and applier processes), "
        f"projector and applier on, per-client limits raised (one client plays many). Log: {args.events:,} events "
        f"seeded by bench/seed.py; the projector folded them in {catch_up:.0f} s after start.",
        "",
        "| load | measured | issue's bound | load avg |",
        "|---|---|---|---|",
        f"| single-event appends as `make run` serves them ({args.connections} connections, wrk, median of "
        f"{args.wrk_rounds} runs of {args.wrk_seconds} s) while applying to {args.clusters} emulated clusters "
        f"({served['applies']} ApplySucceeded meanwhile) | {served['rps']:,.0f}/s, p99 {served['p99']:.1f} ms, "
        f"against the no-op handler {served['noop_rps']:,.0f}/s, p99 {served['noop_p99']:.1f} ms: "
        f"**{ratio:.2f}x**; non-2xx {served['errors']:.0f} | ≥ 0.5x, p99 ≤ 25 ms | {served_load} |",
        f"| {args.replays} `/v1/state?at=` + {args.verifies} `/v1/verify` loops over {args.events:,} events | "
        f"append p99 {q['append_p99']:.1f} ms unloaded → **{loaded['append_p99']:.1f} ms** loaded; `/v1/digest` "
        f"p99 {q['digest_p99']:.1f} → **{loaded['digest_p99']:.1f} ms**; cheap-lane 503s: "
        f"**{loaded['cheap_503']}** (other non-2xx {loaded['cheap_other']}); expensive answers by status: "
        f"state {dict(sorted(lanes_['expensive']['state'].items()))}, verify "
        f"{dict(sorted(lanes_['expensive']['verify'].items()))} | p99 ≤ 50 ms, no 503 | {f['lanes_load']} |",
        f"| {args.subscribers} non-reading SSE subscribers (`?after=0`) | memory RSS (PSS) summed over the "
        f"service's processes: {sse_['before'][0]:.0f} ({sse_['before'][1]:.0f}) MB before, peak "
        f"**{sse_['peak'][0]:.0f} ({sse_['peak'][1]:.0f}) MB**, {sse_['after'][0]:.0f} ({sse_['after'][1]:.0f}) MB "
        f"after (growth {sse_['peak'][0] - sse_['before'][0]:.0f} MB); every one cut off after **{cut}**; "
        f"a live reader's event "
        f"{', '.join(f'{ms:.0f}' for ms in firsts)} ms after the append's request (max **{max(firsts):.0f} ms**) "
        f"| ≤ 200 MB, ≤ 30 s, ≤ 100 ms | {f['sse_load']} |",
        f"| {idle_['held']:,} idle connections held ({args.idle:,} attempted; refused at the cap: "
        f"{idle_['refused']:.0f}, open: {idle_['open']:.0f}) | on a connection opened before: /healthz "
        f"{idle_['statuses']['healthz']}, appends {idle_['statuses']['append']}, /readyz "
        f"{idle_['statuses']['readyz']}; database errors in the service's log: "
        f"**{len(log_errors)}**{' (' + log_errors[0][:120] + ')' if log_errors else ''} | answers, no database "
        f"error | {f['idle_load']} |",
        "",
        cpu_line(served),
        "",
        "Memory per process, MB RSS (PSS), summed over the supervisor and its three processes (the embedded "
        "PostgreSQL is not counted; RSS counts a shared page in every process that maps it, PSS divides it):",
        "",
        "| when | per process | summed RSS (PSS) |",
        "|---|---|---|",
        *(f"| {when} | {per_process(each)} | {sum(r for r, _ in each.values()):.0f} "
          f"({sum(p for _, p in each.values()):.0f}) |" for when, each in (
              ("just started (`/readyz` answered; the projector starts folding the log)", rest["started"]),
              (f"the seeded log folded ({args.events:,} events), the applier's catch-up written", rest["caught_up"]),
              ("right after the expensive lane's load, its worker processes still up", f["after_lanes_each"]),
              (f"its workers gone (they exit once the lane is idle: {f['workers_gone']:.0f} s) and 3 s more, "
               "before the SSE subscribers", sse_["before_each"]),
              (f"{args.subscribers} stalled SSE subscribers, at the peak", sse_["peak_each"]))),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--sse-seconds", type=float, default=60)
    parser.add_argument("--replays", type=int, default=100)
    parser.add_argument("--verifies", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--idle", type=int, default=20_000)
    parser.add_argument("--clusters", type=int, default=16)
    parser.add_argument("--churn", type=float, default=0.5, help="seconds between revisions while appending")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--wrk-rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small counts, a smoke test; nothing recorded")
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--only-lanes", action="store_true",
                        help="phase 2 alone (after the catch-up): cheap p99 without and with the expensive load, the "
                             "API process's CPU seconds and RSS; printed, not recorded")
    parser.add_argument("--hold", nargs=3, metavar=("HOST", "PORT", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold:
        hold(args.hold[0], int(args.hold[1]), int(args.hold[2]))
        return
    if args.quick:
        args.events, args.subscribers, args.sse_seconds, args.replays, args.verifies = 20_000, 50, 30, 10, 2
        args.rounds, args.idle, args.clusters, args.wrk_seconds, args.wrk_rounds = 50, 400, 4, 2, 1
        args.no_record = True
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-isolation-"))
    emulator_port = pgembed.free_port()
    emulator = f"http://127.0.0.1:{emulator_port}"
    clusters = [f"emu-{n:03d}" for n in range(args.clusters)]
    credentials = work / "credentials.yaml"
    credentials.write_text(yaml.safe_dump({"credentials": {
        append.CREDENTIAL: {"server": "https://127.0.0.1:6443", "anonymous": True},
        **{name: {"server": f"{emulator}/clusters/{name}", "anonymous": True} for name in clusters}}}))
    emu = subprocess.Popen([sys.executable, "-m", "emulator", "--auto-create", "--port", str(emulator_port)],
                           cwd=harness.ROOT, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    log = work / "service.log"
    try:
        harness.wait_http(f"{emulator}/_emulator/clusters", emu)
        postgres = harness.Postgres()
        with postgres as dsn:
            started = time.perf_counter()
            head = asyncio.run(seed.fill(dsn, args.events))
            print(f"seeded {head:,} events in {time.perf_counter() - started:.0f} s", flush=True)
            proc, url = harness.start_service(
                dsn, work / "data", log=log, LEDGER_CREDENTIALS=str(credentials),
                LEDGER_CLIENT_EXPENSIVE_LIMIT="100000", LEDGER_CLIENT_STREAM_LIMIT="100000")
            started_mb = processes_mb(proc.pid)
            try:
                async def wait() -> tuple[float, float]:
                    async with aiohttp.ClientSession(headers=HEADERS) as session:
                        return await caught_up(session, url, head, 900), await settled(session, url, 5, 300)
                catch_up, quiet = asyncio.run(wait())
                rest_mb = processes_mb(proc.pid)
                print(f"projector caught up in {catch_up:.0f} s, the log quiet {quiet:.0f} s later; "
                      "appends as `make run` serves them …", flush=True)
                if args.only_lanes:
                    asyncio.run(lanes_alone(args, url, proc.pid))
                    return
                served = appends_as_served(args, url, dsn, work, clusters, {
                    "service": proc.pid, "postmaster": postgres.postmaster(), "emulator": emu.pid})
                served_load = load_average()
                figures = asyncio.run(measure(args, url, proc.pid))
            finally:
                harness.stop(proc)
    finally:
        emu.terminate()
        emu.wait(10)
    errors = [line for line in log.read_text(errors="replace").splitlines()
              if re.search(r"EMFILE|Too many open files|StoreUnavailable|lost the database|ERROR", line)]
    body = report(args, figures, catch_up, served, served_load, errors, {"started": started_mb, "caught_up": rest_mb})
    print(body)
    if not args.no_record:
        harness.record("Load isolation (bench/isolation.py)", body)


if __name__ == "__main__":
    main()
