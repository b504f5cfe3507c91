"""The web UI: server time of the fleet page with 1,000 targets x 50 deployments, and the time from
an append to the changed cell in a browser.

Setup: an embedded PostgreSQL holding 1,000 targets and 50 deployments that select all of them
(50,000 rollouts: mostly applied, some failed, some pending), written straight to the store; then
``ledger serve`` as a subprocess (projector on, applier off, so nothing changes the cells but the
benchmark), which folds them into its read models. The log is appended through bench/seed.py's
store set-up (``seed.opened``), in this benchmark's own shape.

1. Server time: ``GET /fleet`` (the default view: a page of 100 targets x 50 deployments, the column
   counts over all 1,000 targets) and ``GET /fleet?group=region`` (every target, grouped), each
   requested one after another over loopback by a signed-in session; p50 and p99 of the time to
   the last byte, and the page's weight as sent (compressed) and as HTML; then a deployment's page
   (1,000 targets), without waves and with (the last deployment rolls out in three waves, two done,
   the third awaiting approval; its page folds the deployment's streams). Raw baseline, same run:
   ``GET /v1/deployments``, the JSON API's list of the same deployments with their state counts,
   read from the same read models.
2. Append to cell: headless Chromium (tests/browser.py finds it) shows ``/fleet`` for the first
   page of targets; a revision of one deployment is POSTed through the API, its selector alternately
   matching no target and every target, and the clock runs until the cell of that deployment on
   the first target shows the change (empty, then "pending"), without a reload (the page follows
   ``/v1/feed/live`` and patches the cell). p50 and p99 over the rounds.

Run: ``.venv/bin/python -m bench.ui [--targets 1000] [--deployments 50] [--requests 60] [--rounds 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import harness, seed
from ledger import records
from tests import browser

REGIONS = ("eu", "us", "ap", "sa")
# The last deployment rolls out in waves (two done, the third awaiting approval): its page folds the
# deployment's streams to show them.
WAVE_SPECS: list[dict[str, Any]] = [{"name": "canary", "size": 10}, {"name": "early", "size": "25%"}, {"name": "rest"}]
WAVES: dict[str, Any] = {"waves": WAVE_SPECS, "approval": ["rest"]}


def manifests(name: str, revision: int) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "bench"},
             "data": {"revision": str(revision)}}]


async def seed_fleet(database_url: str, targets: int, deployments: int) -> int:
    """The fleet's log, appended through bench/seed.py's store; returns the head position."""
    rng = random.Random(7)
    names = [f"edge-{i:04d}" for i in range(targets)]
    async with seed.opened(database_url) as es:
        await asyncio.gather(*(es.append(f"target-{n}", "no_stream", [records.NewEvent(
            uuid.uuid4(), "TargetRegistered",
            {"target": n, "labels": {"region": REGIONS[i % len(REGIONS)], "tier": "edge"}, "credentials": "bench"},
            {"actor": "bench"})]) for i, n in enumerate(names)))
        for d in range(deployments):
            name = f"app-{d:02d}"
            submitted = {"deployment": name, "revision": 1, "manifests": manifests(name, 1), "selector": "tier=edge",
                         "message": "first", "matched_targets": names}
            waved = d == deployments - 1
            if waved:
                cut = [0, 10, 10 + -(-targets // 4), targets]
                members = [names[cut[i]:cut[i + 1]] for i in range(3)]
                submitted |= {"strategy": WAVES, "waves": [
                    {"name": w["name"], "targets": m} for w, m in zip(WAVE_SPECS, members, strict=True)]}
            await es.append(f"deployment-{name}", "no_stream", [records.NewEvent(
                uuid.uuid4(), "RevisionSubmitted", submitted, {"actor": "bench", "reason": "seed"})])
            outcomes = []
            for target in names:
                roll = rng.random()
                if roll < 0.03:
                    outcomes.append(records.NewEvent(uuid.uuid4(), "ApplyFailed", {
                        "deployment": name, "revision": 1, "target": target, "attempt": 1,
                        "error": "admission webhook denied the request", "retryable": False, "status": 422}))
                elif roll < 0.95:
                    outcomes.append(records.NewEvent(uuid.uuid4(), "ApplySucceeded", {
                        "deployment": name, "revision": 1, "target": target, "attempt": 1, "duration_ms": 40,
                        "objects": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "bench", "name": name}]}))
            if waved:
                outcomes = [*_waves(name, members), *outcomes]
            await es.append(f"rollout-{name}", "any", outcomes)
        head, _, _ = await es.head()
        return int(head)


def _waves(name: str, members: list[list[str]]) -> list[records.NewEvent]:
    """Waves canary and early started and completed, rest awaiting approval (as the driver records)."""
    found = []
    for wave, targets in zip(("canary", "early"), members, strict=False):
        for type_, data in (("WaveStarted", {"targets": targets}), ("WaveCompleted", {"healthy": len(targets)})):
            found.append(records.NewEvent(uuid.uuid4(), type_, {"deployment": name, "revision": 1, "wave": wave,
                                                                 **data}, {"actor": "ledger"}))
    found.append(records.NewEvent(uuid.uuid4(), "ApprovalRequested", {"deployment": name, "revision": 1,
                                                                       "wave": "rest"}, {"actor": "ledger"}))
    return found


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _server_timing(header: str) -> dict[str, float]:
    found = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if duration:
            found[name] = float(duration)
    return found


async def _timed(session: aiohttp.ClientSession, url: str, count: int,
                 server: list[dict[str, float]] | None = None, before: Any = None) -> tuple[list[float], int]:
    times, size = [], 0
    for i in range(count):
        if before is not None:
            await before(i)
        start = time.perf_counter()
        async with session.get(url) as resp:
            body = await resp.read()
            assert resp.status == 200, (url, resp.status, body[:300])
            if server is not None:
                server.append(_server_timing(resp.headers.get("Server-Timing", "")))
        times.append((time.perf_counter() - start) * 1000)
        size = len(body)
    return times, size


async def server_time(url: str, requests: int, deployments: int) -> dict[str, Any]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.post(url + "/signin", data={"token": harness.TOKEN}, allow_redirects=False) as resp:
            assert resp.status == 303
        found: dict[str, Any] = {}
        async with aiohttp.ClientSession(headers=harness.HEADERS) as api:
            appended = [0]

            async def append(_i: int) -> None:
                # One event (a token issued) that moves the log position and changes no cell, so
                # the view is computed afresh (its per-position cache misses).
                appended[0] += 1
                async with api.post(url + "/v1/tokens", json={"name": f"bench-{appended[0]}", "role": "viewer"}) as resp:
                    assert resp.status == 201, await resp.text()

            for name, path in (("fleet", "/fleet"), ("grouped", "/fleet?group=region")):
                for mode, before in (("cold", append), ("warm", None)):
                    await _timed(session, url + path, 5, before=before)  # warm-up
                    server: list[dict[str, float]] = []
                    times, _ = await _timed(session, url + path, requests, server, before=before)
                    found[f"{name} {mode}"] = {
                        "p50": _pct(times, 50), "p99": _pct(times, 99),
                        "server": {part: statistics.median(t.get(part, 0.0) for t in server)
                                   for part in ("wait", "db", "render", "total")}}
                async with session.get(url + path, headers={"Accept-Encoding": "gzip"}, auto_decompress=False) as r:
                    found[name] = {"sent": len(await r.read())}
                async with session.get(url + path, headers={"Accept-Encoding": "identity"}) as r:
                    found[name]["html"] = len(await r.read())
            for name, path in (("deployment", "/deployments/app-00"),
                               ("deployment waves", f"/deployments/app-{deployments - 1:02d}")):
                await _timed(session, url + path, 5)
                times, size = await _timed(session, url + path, requests)
                found[name] = {"p50": _pct(times, 50), "p99": _pct(times, 99), "html": size}
            await _timed(api, url + "/v1/deployments", 5)
            times, size = await _timed(api, url + "/v1/deployments", requests)
        found["api"] = {"p50": _pct(times, 50), "p99": _pct(times, 99), "sent": size}
        return found


async def append_to_cell(url: str, rounds: int) -> list[float]:
    from playwright.async_api import async_playwright

    executable = browser.executable()
    latencies = []
    async with async_playwright() as p, aiohttp.ClientSession(headers=harness.HEADERS) as api:
        chromium = await p.chromium.launch(executable_path=str(executable) if executable else None,
                                           args=browser.ARGS, headless=True)
        # bypass_csp: the page's policy forbids eval, which Playwright's wait_for_function polls with.
        context = await chromium.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=True)
        page = await context.new_page()
        await page.goto(url + "/signin")
        await page.fill("#token", harness.TOKEN)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/fleet")
        await page.wait_for_function("document.getElementById('live').textContent === 'live'")
        column = await page.evaluate(
            "Array.from(document.querySelectorAll('#matrix thead th')).findIndex(th => th.dataset.d === 'app-00')")
        for revision in range(2, rounds + 2):
            # Alternately away from every target (the cell empties) and back (it says pending).
            selector, wanted = ("region=nowhere", "") if revision % 2 == 0 else ("tier=edge", "pending")
            start = time.perf_counter()
            async with api.post(url + "/v1/deployments/app-00/revisions", json={
                    "manifests": manifests("app-00", revision), "selector": selector, "message": "bench"}) as resp:
                assert resp.status == 201, await resp.text()
            await page.wait_for_function(
                "([column, wanted]) => document.querySelector('#matrix tbody tr').children[column]"
                ".textContent === wanted", arg=[column, wanted])
            latencies.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.2)
        await chromium.close()
    return latencies


async def run(args: argparse.Namespace) -> None:
    with harness.Postgres() as database_url:
        head = await seed_fleet(database_url, args.targets, args.deployments)
        data = Path(tempfile.mkdtemp(prefix="ledger-bench-ui-"))
        credentials = data / "credentials.yaml"
        credentials.write_text(yaml.safe_dump({"credentials": {"bench": {"server": "https://127.0.0.1:9",
                                                                        "anonymous": True}}}))
        proc, url = harness.start_service(database_url, data, LEDGER_APPLIER="false",
                                          LEDGER_CREDENTIALS=str(credentials))
        try:
            async with aiohttp.ClientSession(headers=harness.HEADERS) as api:
                async with api.get(url + "/v1/deployments?min_position=" + str(head),
                                   timeout=aiohttp.ClientTimeout(total=300)) as resp:
                    assert resp.status == 200, await resp.text()
            served = await server_time(url, args.requests, args.deployments)
            cells = await append_to_cell(url, args.rounds)
        finally:
            harness.stop(proc)
    api = served["api"]
    cell = {"p50": statistics.median(cells), "p99": _pct(cells, 99)}
    views = {"fleet": f"`GET /fleet` (100 targets x {args.deployments} deployments, counts over all)",
             "grouped": f"`GET /fleet?group=region` (all {args.targets:,} targets in {len(REGIONS)} groups)"}
    rows = []
    for view, label in views.items():
        for mode in ("cold", "warm"):
            f = served[f"{view} {mode}"]
            t = f["server"]
            rows.append(f"| {label}, {mode} | {f['p50']:.0f} ms | {f['p99']:.0f} ms | {t['total']:.0f} ms "
                        f"({t['wait']:.0f} + {t['db']:.0f} + {t['render']:.0f}) | "
                        f"{served[view]['sent'] / 1024:.0f} KB | {served[view]['html'] / 1024:.0f} KB |")
    load = os.getloadavg()
    lines = [
        f"Machine: {harness.machine()}; load average {load[0]:.1f} at the end of the run (other "
        f"engineers' suites share the 2 cores). {args.targets:,} targets x {args.deployments} deployments "
        f"({args.targets * args.deployments:,} rollouts), {head:,} events; service with the projector on "
        f"and the applier off; {args.requests} requests per figure, one at a time, over loopback, by a "
        f"signed-in session. *Cold*: an event was appended just before each request, so the view is "
        f"computed afresh at the new position (after the read-your-writes wait); *warm*: the same view "
        f"again at the same position (what every further viewer of an unchanged fleet gets).",
        "",
        "| request | p50 | p99 | server time, median (wait + queries + template) | sent (gzip) | HTML |",
        "|---|---|---|---|---|---|",
        *rows,
        *(f"| {label} | {served[key]['p50']:.0f} ms | {served[key]['p99']:.0f} ms | — | — | "
          f"{served[key]['html'] / 1024:.0f} KB |" for key, label in (
              ("deployment", f"`GET /deployments/app-00` (its {args.targets:,} targets, history, diff, events)"),
              ("deployment waves", f"`GET /deployments/app-{args.deployments - 1:02d}` (the same with 3 waves, "
                                   "its streams folded to show them)"))),
        f"| baseline: `GET /v1/deployments` (JSON, the same deployments and state counts) | {api['p50']:.0f} ms | "
        f"{api['p99']:.0f} ms | — | {api['sent'] / 1024:.0f} KB | — |",
        "",
        f"Fleet page cold / baseline at p50: {served['fleet cold']['p50'] / api['p50']:.1f}x. "
        "Target: p50 at most 150 ms.",
        "",
        f"Append to the changed cell in headless Chromium ({args.rounds} revisions of one deployment "
        f"through `POST /v1/deployments/app-00/revisions`, the selector alternately matching none and all "
        f"{args.targets:,} targets; clock from before the POST until the cell shows the change, no reload): "
        f"p50 {cell['p50']:.0f} ms, p99 {cell['p99']:.0f} ms. Target: p50 at most 1 s.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.record:
        harness.record("Web UI (bench/ui.py)", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-record", dest="record", action="store_false", help="print only")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
