"""``ledger deploy --wait`` end to end (issue 12 item 5): the service in-process with the applier on,
following health on emulated clusters over real HTTP, and the CLI following its live feed. A
revision that becomes available exits 0; a ``:crashloop`` image with a short progress deadline
exits 1 naming the target and the reason; a rollout slower than ``--timeout`` exits 2."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from cli import exits
from cli import main as cli_main
from emulator import Emulator
from ledger import settings as settings_mod
from tests.applier_support import (
    client,  # noqa: F401 - fixture
    deployment_object,
    emu,  # noqa: F401 - fixture
    live,
    namespace,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings, projector=True, read_wait_timeout=20.0)


async def ledger(capsys, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli_main.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def manifests(directory: Path, image: str) -> str:
    path = directory / f"web-{image.replace(':', '-')}.yaml"
    path.write_text(yaml.safe_dump_all([namespace(), deployment_object("web", image=image)]))
    return str(path)


async def a_target(client: Any, capsys: Any) -> str:  # noqa: F811
    url = str(client.make_url("")).rstrip("/")
    code, _, err = await ledger(capsys, "targets", "add", "eu-1", "--credentials", "eu-1", "-l", "region=eu",
                                "--url", url)
    assert code == 0, err
    return url


async def test_a_revision_that_becomes_available_exits_0(client, emu: Emulator, capsys, tmp_path):  # noqa: F811
    url = await a_target(client, capsys)
    code, out, err = await ledger(capsys, "deploy", "web", "-f", manifests(tmp_path, "nginx:1.27"), "-l",
                                  "region=eu", "--wait", "--timeout", "60s", "--url", url)
    assert code == exits.Code.OK, err
    lines = out.splitlines()
    assert lines[:2] == ["web: revision 1 submitted (position 2)", "matched 1 target(s): eu-1"]
    assert lines[2] == "web revision 1: healthy (1 healthy)"
    assert lines[-1].split()[:4] == ["eu-1", "1", "1", "healthy"]
    assert live(emu.cluster("eu-1"), "apps/v1", "Deployment", "apps", "web")["status"]["availableReplicas"] == 1


async def test_a_crashlooping_image_past_its_progress_deadline_exits_1_with_the_reason(
        client, emu: Emulator, capsys, tmp_path):  # noqa: F811
    url = await a_target(client, capsys)
    code, out, err = await ledger(capsys, "deploy", "web", "-f", manifests(tmp_path, "nginx:crashloop"), "-l",
                                  "region=eu", "--progress-deadline", "1", "--wait", "--timeout", "60s",
                                  "--url", url)
    assert code == exits.Code.FAILED, err
    assert "web revision 1: degraded (1 degraded)" in out.splitlines()
    assert err.startswith("ledger: web revision 1 is degraded on eu-1 (degraded: ")
    assert "Deployment apps/web" in err


async def test_a_rollout_slower_than_the_timeout_exits_2(client, emu: Emulator, capsys, tmp_path):  # noqa: F811
    url = await a_target(client, capsys)
    async with aiohttp.ClientSession() as http:
        async with http.patch(f"{emu.base_url}/_emulator/clusters/eu-1/settings",
                              json={"rollout_delay": 3600}) as resp:
            assert resp.status == 200, await resp.text()
    code, out, err = await ledger(capsys, "deploy", "web", "-f", manifests(tmp_path, "nginx:1.27"), "-l",
                                  "region=eu", "--wait", "--timeout", "2s", "--url", url)
    assert code == 2, err  # exits.Code.TIMED_OUT
    assert out.splitlines()[-1].split()[3] in ("pending", "applying", "progressing")
    assert err.startswith("ledger: web revision 1 not healthy within 2 s; still waiting for eu-1")
