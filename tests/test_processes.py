"""``ledger serve`` by default runs the API, the projector and the applier as supervised processes
(cli/supervisor.py): it serves, a killed projector or applier is restarted while /readyz names it,
its metrics stay reachable through the API, and SIGTERM (or the supervisor's own death) leaves no
process behind. ``--processes single`` keeps everything in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from ledger import pgembed
from tests import servers

pytestmark = pytest.mark.timeout(240)

def revision(number: int) -> dict:
    return {"events": [{"type": "RevisionSubmitted", "data": {
        "deployment": "web", "revision": number, "selector": "",
        "manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}}]}}]}


REVISION = revision(1)


def under(parent: int) -> list[tuple[int, list[bytes]]]:
    """The processes whose parent is ``parent``: (pid, argv)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append((int(entry.name), argv))
    return found


def children(parent: int) -> dict[str, int]:
    """The role processes whose parent is ``parent``, by role (``python -m cli.roles <role>``)."""
    return {argv[argv.index(b"cli.roles") + 1].decode(): pid for pid, argv in under(parent) if b"cli.roles" in argv}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def until(check, what: str, seconds: float = 60.0):  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.05)):
        found = check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def readyz(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session, \
            session.get(url + "/readyz") as resp:
        return resp.status, await resp.json()


@pytest.fixture
async def service(database_url: str, tmp_path: Path) -> AsyncIterator[servers.ServiceProcess]:
    running = servers.ServiceProcess(database_url, tmp_path / "data", LEDGER_LOG_LEVEL="INFO")
    try:
        await running.start()
        yield running
    finally:
        pid = running.proc.pid if running.proc is not None else None
        left = children(pid) if pid is not None else {}
        running.stop()
        for child in left.values():  # stop what we started, whatever the test did
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


async def test_the_default_service_runs_api_projector_and_applier_in_processes_of_their_own(service):
    assert service.proc is not None
    roles = await until(lambda: (found := children(service.proc.pid)) and len(found) == 3 and found,
                        "three role processes")
    assert set(roles) == {"api", "projector", "applier"}
    assert service.proc.pid not in roles.values()

    async with servers.session() as session:
        async with session.post(service.url + "/v1/streams/deployment-web/events", json=REVISION) as resp:
            assert resp.status == 201, await resp.text()
        # The read model is written by the projector's process; the API process waits for it.
        async with session.get(service.url + "/v1/deployments/web") as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["current_revision"] == 1
        async with session.get(service.url + "/metrics") as resp:
            metrics = await resp.text()
    assert re.search(r'^ledger_projector_position\{process="projector"\} [1-9]', metrics, re.M), metrics
    assert re.search(r'^ledger_component_up\{.*component="applier".*process="applier".*\} 1\.0', metrics, re.M)
    assert re.search(r'^ledger_component_up\{component="api-process",process="supervisor",status="up"\} 1\.0$',
                     metrics, re.M), metrics
    assert len(re.findall(r"^# TYPE ledger_component_up gauge$", metrics, re.M)) == 1  # families merged
    # The commands' target index is the API's: the projector and the applier neither keep nor export one.
    assert re.search(r"^ledger_target_index_builds_total ", metrics, re.M), metrics
    assert not re.search(r'^ledger_target_index_\w+\{process="(projector|applier)"\}', metrics, re.M), metrics


@pytest.mark.parametrize("role", ["projector", "applier"])
async def test_a_killed_role_process_is_restarted_and_readiness_names_it_meanwhile(service, role):
    assert service.proc is not None
    parent = service.proc.pid
    first = (await until(lambda: (found := children(parent)) and role in found and found, role))[role]
    os.kill(first, signal.SIGKILL)

    seen: dict[str, dict] = {}
    for _ in range(1200):
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            status, body = await readyz(service.url)
            if status == 503:
                seen.update(body["not_ready"])
            elif seen:
                break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"never ready again: {seen}, {service.log.read_text()[-3000:]}")
    named = {name: entry for name, entry in seen.items() if name in (role, f"{role}-process")}
    assert named, seen
    assert all(entry["process"] in (role, "supervisor") for entry in named.values()), named
    if f"{role}-process" in named:
        assert "killed by SIGKILL" in named[f"{role}-process"]["reason"]
    second = children(parent)[role]
    assert second != first and not alive(first)

    log = service.log.read_text()
    assert f"the {role} process (pid {first}) was killed by SIGKILL; restarting it" in log
    async with servers.session() as session:
        async with session.get(service.url + "/metrics") as resp:
            metrics = await resp.text()
        async with session.post(service.url + "/v1/streams/deployment-web/events", json=REVISION) as resp:
            assert resp.status == 201, await resp.text()
        async with session.post(service.url + "/v1/streams/deployment-web/events", json=revision(2)) as resp:
            assert resp.status == 201, await resp.text()
        async with session.get(service.url + "/v1/deployments/web") as resp:  # folded by the new projector
            assert resp.status == 200 and (await resp.json())["current_revision"] == 2
    restarts = [line for line in metrics.splitlines() if line.startswith("ledger_task_restarts_total{")
                and f'task="{role}-process"' in line and 'process="supervisor"' in line]
    assert restarts and restarts[0].endswith(" 1.0"), metrics


async def test_sigterm_stops_every_process_and_the_embedded_postgres(private_dir):
    data_dir = private_dir / "ledger-data"
    port = pgembed.free_port()
    log = private_dir / "service.log"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")},
           "LEDGER_ADMIN_TOKEN": servers.ADMIN_TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--data-dir", str(data_dir),
                             "--http-port", str(port)], cwd=servers.ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    embedded = pgembed.EmbeddedPostgres(data_dir / "pg")
    roles: dict[str, int] = {}
    try:
        async def ready() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                return (await readyz(f"http://127.0.0.1:{port}"))[0] == 200
            return False

        for _ in range(1200):
            if await ready():
                break
            await asyncio.sleep(0.1)
        roles = children(proc.pid)
        assert set(roles) == {"api", "projector", "applier"}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0, log.read_text()[-3000:]
        assert [role for role, pid in roles.items() if alive(pid)] == []
        assert embedded.running_port() is None, "PostgreSQL still running after the service stopped"
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in roles.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(embedded.stop, "immediate")


async def test_a_supervisor_killed_outright_leaves_no_role_process_behind(service):
    assert service.proc is not None
    roles = await until(lambda: (found := children(service.proc.pid)) and len(found) == 3 and found,
                        "three role processes")
    service.kill()
    await until(lambda: not any(alive(pid) for pid in roles.values()), "the role processes stopped", 30)


async def test_processes_single_keeps_everything_in_one_process(database_url, tmp_path):
    single = servers.ServiceProcess(database_url, tmp_path / "data", LEDGER_PROCESSES="single")
    try:
        await single.start()
        assert single.proc is not None
        assert children(single.proc.pid) == {}
        status, body = await readyz(single.url)
        assert status == 200 and body["not_ready"] == {}
        async with servers.session() as session, \
                session.post(single.url + "/v1/streams/deployment-web/events", json=REVISION) as resp:
            assert resp.status == 201
    finally:
        single.stop()


def lane_workers(parent: int) -> list[int]:
    """The lane worker processes (api/laneworker.py) whose parent is ``parent``."""
    return [pid for pid, argv in under(parent) if b"api.laneworker" in argv]


async def test_a_replay_runs_in_a_lane_worker_of_the_api_process_in_its_session_and_stops_with_it(service):
    assert service.proc is not None
    api = (await until(lambda: (found := children(service.proc.pid)) and "api" in found and found, "api"))["api"]
    async with servers.session() as session:
        async with session.post(service.url + "/v1/streams/deployment-web/events", json=REVISION) as resp:
            assert resp.status == 201, await resp.text()
        async with session.get(service.url + "/v1/state?at=1") as resp:
            assert resp.status == 200, await resp.text()
            assert [d["name"] for d in (await resp.json())["deployments"]] == ["web"]
    [worker] = lane_workers(api)
    assert os.getsid(worker) == os.getsid(api)  # priorities weigh within a session (autogroup)
    service.stop()
    await until(lambda: not alive(worker), "the lane worker gone with the service", 30)
