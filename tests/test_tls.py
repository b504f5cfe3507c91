"""``ledger serve --tls-cert FILE --tls-key FILE`` serves HTTPS directly (a self-signed certificate
made with the openssl command for 127.0.0.1); half a TLS setting or an unusable pair stops start-up
with a message naming the settings."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from cli import main as cli_main
from tests import servers

pytestmark = pytest.mark.timeout(120)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl is not None, "the openssl command is needed to make a test certificate"
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


async def test_serve_answers_over_https_with_the_given_certificate(database_url, tmp_path: Path):
    cert, key = _self_signed(tmp_path)
    service = servers.ServiceProcess(database_url, tmp_path / "data", LEDGER_APPLIER="false",
                                     LEDGER_PROJECTOR="false", LEDGER_TLS_CERT=str(cert), LEDGER_TLS_KEY=str(key))
    trusted = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{service.port}"
    await service.start(url=url, ssl_context=trusted)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/healthz", ssl=trusted) as resp:
                assert resp.status == 200 and (await resp.json())["status"] == "ok"
            with pytest.raises(aiohttp.ClientError):  # plain HTTP is not served on that port
                async with session.get(f"http://127.0.0.1:{service.port}/healthz") as resp:
                    await resp.read()
            with pytest.raises(aiohttp.ClientConnectorCertificateError):  # nothing but the real certificate
                async with session.get(url + "/healthz", ssl=ssl.create_default_context()) as resp:
                    await resp.read()
    finally:
        service.stop()


@pytest.mark.parametrize("which", ["cert only", "unusable pair"])
async def test_half_or_unusable_tls_settings_stop_start_up_naming_them(tmp_path: Path, which: str):
    cert, _ = _self_signed(tmp_path)
    flags = ["--tls-cert", str(cert)] if which == "cert only" else ["--tls-cert", str(cert), "--tls-key", str(cert)]
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "cli.main", "serve", "--data-dir", str(tmp_path / "d"), *flags],
        cwd=servers.ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert "tls_cert" in proc.stderr and "tls_key" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "d" / "pg").exists()


def test_the_tls_flags_are_serve_flags():
    args = cli_main.parser().parse_args(["serve", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
    assert (args.setting_tls_cert, args.setting_tls_key) == ("c.pem", "k.pem")
