"""``ledger demo``: the whole loop on one machine in a few seconds, nothing to install.

It starts the service in-process as ``ledger serve --processes single`` does (API, projector, applier; the
embedded PostgreSQL in a fresh temporary directory unless LEDGER_DATABASE_URL is set) and the
Kubernetes API emulator with three clusters, writes a credentials file for them (one token file
per cluster, as an operator would; the service reads it like any other), registers them as targets
naming those credentials, labelled by region and tier, submits a sample deployment (a Namespace, a
ConfigMap and a Deployment) to ``region=eu``
over the HTTP API, waits until both EU clusters report it healthy, and prints where to look.
The sample manifests are written as YAML into the temporary directory for ``ledger deploy -f``.
Then it keeps running until Ctrl-C; the temporary directory is deleted at exit. ``--once`` (for
scripts and tests) stops at once and says only what happened: nothing it prints points at what
is gone when it returns, and nothing is written outside the temporary directory. The service and
the emulator are imported when the demo runs, not when the parser is built (cli/main.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from cli import exits, listen, options, parsers, signals
from ledger import settings as settings_mod

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web

    from emulator import Emulator

CLUSTERS: Final = {
    "eu-1": {"region": "eu", "tier": "prod"},
    "eu-2": {"region": "eu", "tier": "staging"},
    "us-1": {"region": "us", "tier": "prod"},
}

MANIFESTS: Final[list[dict[str, Any]]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": "demo"},
     "data": {"greeting": "hello from the ledger"}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"},
     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}},
                           "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}},
]


def register(sub: parsers.Subparsers) -> None:
    cmd = parsers.command(
        sub, "demo", summary="service + emulated clusters + a sample deployment, on this machine",
        description="Start the service and three emulated clusters on this machine, register them as targets,\n"
                    "deploy a sample to region=eu, wait until it is healthy and say where to look. Everything\n"
                    "lives in a temporary directory, deleted when the demo stops (Ctrl-C; --once: at once).",
        example_lines=["ledger demo", "ledger demo --http-port 9000", "ledger demo --once"])
    options.add_settings_flags(cmd, ("http_host", "http_port", "database_url", "log_level"))
    cmd.add_argument("--emulator-port", type=int, default=0, help="port of the emulated clusters (0: any free)")
    cmd.add_argument("--once", action="store_true",
                     help="stop (and delete the demo's data) once the sample deployment is healthy")
    cmd.set_defaults(func=run_demo)


async def _call(session: aiohttp.ClientSession, method: str, url: str, body: Any) -> dict[str, Any]:
    async with session.request(method, url, json=body) as resp:
        answer: dict[str, Any] = await resp.json()
        if resp.status >= 400:
            raise RuntimeError(f"{method} {url}: {resp.status} {answer.get('detail', answer)}")
        return answer


async def _applied(session: aiohttp.ClientSession, url: str, expected: int, timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    body: dict[str, Any] = {}
    while loop.time() < deadline:
        async with session.get(f"{url}/v1/deployments/web") as resp:
            if resp.status == 200:
                body = await resp.json()
                if body.get("summary", {}).get("healthy") == expected:
                    return body
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the sample deployment was not healthy within {timeout:.0f}s: {body}")


def _rollouts(status: dict[str, Any]) -> str:
    return "\n".join(
        f"    {r['target']:6} {r['state']:11} revision {r['applied_revision']}  "
        f"({','.join(f'{k}={v}' for k, v in CLUSTERS[r['target']].items())})"
        for r in sorted(status.get("rollouts", []), key=lambda r: r["target"]))


def guide(url: str, emulator: str, status: dict[str, Any], sample: Path, token_file: Path | None,
          credentials: Path) -> str:
    where = (f"{token_file}   (the admin token; export LEDGER_TOKEN=$(cat {token_file}))" if token_file
             else "LEDGER_ADMIN_TOKEN, as configured (export LEDGER_TOKEN=\"$LEDGER_ADMIN_TOKEN\")")
    return f"""
Deployment Ledger demo is running.

  API          {url}
  token        {where}
  credentials  {credentials}   (the operator's file: one entry per cluster)
  clusters     {emulator}/clusters/<name>   eu-1 (region=eu,tier=prod)  eu-2 (region=eu,tier=staging)  us-1 (region=us,tier=prod)

Deployment "web" (Namespace, ConfigMap, Deployment) went to region=eu:
{_rollouts(status)}

Look around (every request but /healthz and /readyz sends the token):
  export LEDGER_URL={url}
  curl -s -H "Authorization: Bearer $LEDGER_TOKEN" {url}/v1/deployments/web            # rollout per target
  curl -s -H "Authorization: Bearer $LEDGER_TOKEN" '{url}/v1/targets?selector=region%3Deu'
  curl -s -H "Authorization: Bearer $LEDGER_TOKEN" '{url}/v1/events?category=rollout'  # the applier's outcomes
  curl -s -H "Authorization: Bearer $LEDGER_TOKEN" {url}/v1/deployments/web/revisions
  curl -s '{emulator}/_emulator/clusters/eu-1/objects?namespace=demo'   # what is on a cluster

Or with the CLI (LEDGER_URL and LEDGER_TOKEN exported as above):
  ledger status web
  ledger targets list -l tier=prod
  ledger deploy web -f {sample} -l 'tier=prod' -m "prod everywhere"   # eu-2 pruned, us-1 gains it
  ledger history web
  ledger rollback web --to 1
  ledger pause web  /  ledger resume web  /  ledger remove web

Press Ctrl-C to stop (the demo's data directory is deleted).
"""


def report(status: dict[str, Any]) -> str:
    """What ``--once`` says: what happened; nothing that points at what is gone when it returns."""
    return f"""
Deployment Ledger demo: deployment "web" (Namespace, ConfigMap, Deployment) went to region=eu:
{_rollouts(status)}

The demo has stopped and its temporary data is deleted (--once).
Run 'ledger demo' without --once to keep it running and look around.
"""


def write_credentials(directory: Path, emu: Emulator) -> Path:
    """The operator's credentials file for the emulated clusters, each with a token file of its own."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name in CLUSTERS:
        token = tokens / name
        token.touch(mode=0o600)
        token.write_text(secrets.token_urlsafe(32) + "\n")
        entries[name] = {"server": emu.cluster_url(name), "token_file": f"tokens/{name}"}
    path = directory / "credentials.yaml"
    path.write_text(yaml.safe_dump({"credentials": entries}, sort_keys=False))
    return path


async def demo(settings: settings_mod.Settings, *, workdir: Path, emulator_port: int = 0, once: bool = False,
               out: Callable[[str], None] = print,
               until: Callable[[], Awaitable[None]] = signals.until_stopped) -> int:
    """Run the demo with its sample manifests and credentials in ``workdir`` until ``until`` returns
    (``once``: at once). The listening socket is bound first, so a port in use fails before anything
    starts."""
    import aiohttp
    from aiohttp import web

    from api import app as app_mod
    from api import auth
    from emulator import Emulator

    sock = listen.bind(settings.http_host, settings.http_port)
    sample = workdir / "web.yaml"
    sample.write_text(yaml.safe_dump_all(MANIFESTS, sort_keys=False))
    emu = Emulator(CLUSTERS)
    runner: web.AppRunner | None = None
    try:
        emulator = await emu.start(port=emulator_port)
        credentials = write_credentials(workdir / "demo-credentials", emu)
        settings = settings.replace(credentials=credentials)
        runner = web.AppRunner(app_mod.make_app(settings), handle_signals=False, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        url = listen.url(sock)
        token_file = None if settings.admin_token else auth.admin_file(settings.data_dir.resolve())
        try:
            secret = settings.admin_token or (token_file.read_text().strip() if token_file else "")
        except OSError as exc:
            raise RuntimeError(f"the database has an admin token but {token_file} is missing; set "
                               "LEDGER_ADMIN_TOKEN or use a fresh database") from exc
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                         headers={"Authorization": f"Bearer {secret}"}) as session:
            for name, labels in CLUSTERS.items():
                await _call(session, "PUT", f"{url}/v1/targets/{name}",
                            {"labels": labels, "credentials": name})
            await _call(session, "POST", f"{url}/v1/deployments/web/revisions",
                        {"manifests": MANIFESTS, "selector": "region=eu", "message": "ledger demo"})
            status = await _applied(session, url, expected=2, timeout=60)
        if once:
            out(report(status))
            return 0
        out(guide(url, emulator, status, sample, token_file, credentials))
        await until()
        return 0
    finally:
        if runner is not None:
            await runner.cleanup()
        else:
            sock.close()
        await emu.stop()


def run_demo(args: argparse.Namespace) -> int:
    settings = options.settings_from(args)
    workdir = Path(tempfile.mkdtemp(prefix="ledger-demo-"))
    settings = settings.replace(data_dir=workdir, applier=True, projector=True)
    if args.setting_log_level is None and "LEDGER_LOG_LEVEL" not in os.environ:
        settings = settings.replace(log_level="WARNING")  # the guide is the output; logs on request
    options.configure_logging(settings)
    try:
        return asyncio.run(demo(settings, workdir=workdir, emulator_port=args.emulator_port, once=args.once))
    except RuntimeError as exc:
        raise exits.Failure(exits.Code.FAILED, f"demo: {exc}") from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
