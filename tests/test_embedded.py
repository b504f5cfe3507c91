"""`ledger serve` on its embedded PostgreSQL: data survives restarts, SIGTERM and SIGINT stop the
service and its PostgreSQL cleanly; bad settings stop start-up with a message naming them."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import pytest

from ledger import pgembed
from ledger import settings as settings_mod
from tests import servers
from tests.tokens_support import bearer


async def _serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = pgembed.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--data-dir", str(data_dir), "--http-port", str(port),
         "--applier", "false", "--projector", "false"],
        cwd=servers.ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                async with session.get(url + "/readyz") as resp:
                    if resp.status == 200:
                        return proc, url
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("service did not start")


@pytest.fixture
def data_root():
    """Outside pytest's basetemp: a concurrent pytest session makes /tmp/pytest-of-<user> private
    again (mode 0700), and the embedded server's unprivileged user then cannot reach its files."""
    path = Path(tempfile.mkdtemp(prefix="ledger-test-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_embedded_postgres_keeps_data_and_stops_with_the_service(data_root, stop_signal):
    data_dir = data_root / "ledger-data"
    proc, url = await _serve(data_dir)
    embedded = pgembed.EmbeddedPostgres(data_dir / "pg")
    try:
        # First start: an admin token was issued and its secret written to the data directory.
        admin = bearer((data_dir / "admin.token").read_text().strip())
        body = {"events": [{"type": "RevisionSubmitted", "data": {
            "deployment": "web", "revision": 1, "selector": "",
            "manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}}]}}]}
        async with aiohttp.ClientSession(headers=admin) as session:
            async with session.post(url + "/v1/streams/deployment-web/events", json=body) as resp:
                assert resp.status == 201
        assert embedded.running_port() is not None
        proc.send_signal(stop_signal)
        assert await asyncio.to_thread(proc.wait, 60) == 0, proc.stdout.read().decode() if proc.stdout else ""
        assert embedded.running_port() is None, "PostgreSQL still running after the service stopped"

        proc, url = await _serve(data_dir)
        async with aiohttp.ClientSession(headers=admin) as session:
            async with session.get(url + "/v1/streams/deployment-web") as resp:
                assert resp.status == 200
                assert [e["position"] for e in (await resp.json())["events"]] == [2]  # after TokenIssued
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        embedded.stop("immediate")


def test_an_unknown_setting_stops_start_up_naming_it(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}, "LEDGER_HTTP_PROT": "1"}
    result = subprocess.run([sys.executable, "-m", "cli.main", "serve", "--data-dir", str(tmp_path)],
                            cwd=servers.ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "LEDGER_HTTP_PROT" in result.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LEDGER_HTTP_PORT": "eighty"}, "LEDGER_HTTP_PORT"),
        ({"LEDGER_PROJECTOR": "maybe"}, "LEDGER_PROJECTOR"),
        ({"LEDGER_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"LEDGER_NOPE": "1"}, "LEDGER_NOPE"),
    ],
)
def test_malformed_settings_are_named(env, named):
    with pytest.raises(settings_mod.SettingsError, match=named):
        settings_mod.load(env)


def test_settings_flags_override_environment():
    loaded = settings_mod.load({"LEDGER_HTTP_PORT": "9000", "LEDGER_DB_TIMEOUT": "1.5"}, {"http_port": "9100"})
    assert (loaded.http_port, loaded.db_timeout) == (9100, 1.5)


async def test_first_start_issues_an_admin_token_to_a_private_file_and_no_secret_reaches_disk_or_log(data_root):
    data_dir = data_root / "ledger-data"
    proc, url = await _serve(data_dir)
    embedded = pgembed.EmbeddedPostgres(data_dir / "pg")
    try:
        token_file = data_dir / "admin.token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        admin = token_file.read_text().strip()
        assert admin.startswith("ldg_") and len(admin) >= 47
        async with aiohttp.ClientSession(headers=bearer(admin)) as session:
            async with session.post(url + "/v1/tokens", json={"name": "ci", "role": "deployer"}) as resp:
                assert resp.status == 201
                secret = (await resp.json())["token"]
            async with session.get(url + "/v1/tokens/ci", headers=bearer(secret)) as resp:
                assert resp.status == 403  # a deployer does not manage tokens; the secret was used
            async with session.delete(url + "/v1/tokens/ci") as resp:
                assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0
        output = proc.stdout.read() if proc.stdout else b""
        assert str(token_file.resolve()).encode() in output  # the log says where the token is
        for needle in (secret.encode(), admin.encode()):
            assert needle not in output
            holders = [p for p in data_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]
            assert holders == ([token_file] if needle == admin.encode() else [])
    finally:
        if proc.poll() is None:
            proc.kill()
        embedded.stop("immediate")
