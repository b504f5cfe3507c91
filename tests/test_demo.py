"""``ledger demo`` end to end on the test database: three emulated clusters, the sample deployment
applied to the two in region=eu, a guide that points at real URLs and files while it runs, and a
``--once`` that leaves nothing behind and points at nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cli import demo as demo_cli
from cli import main as cli_main
from ledger import settings as settings_mod
from tests import cli_support, servers

pytestmark = pytest.mark.timeout(90)


async def test_the_demo_applies_the_sample_deployment_to_region_eu_and_says_where_to_look(
        settings: settings_mod.Settings, db, tmp_path: Path) -> None:
    printed: list[str] = []
    answered: list[int] = []

    async def look_around() -> None:
        url = re.search(r"(http://\S+/v1/deployments/web)\s", printed[0])
        assert url is not None
        async with servers.session() as session, session.get(url.group(1)) as resp:
            answered.append(resp.status)

    code = await demo_cli.demo(settings.replace(applier=True, projector=True, http_port=0, claim_interval=0.1),
                               workdir=tmp_path, out=printed.append, until=look_around)
    assert code == 0 and answered == [200]
    guide = printed[0]
    rollouts = guide.split("went to region=eu:")[1].split("Look around")[0]
    assert re.search(r"eu-1 +healthy", rollouts) and re.search(r"eu-2 +healthy", rollouts)
    assert "us-1" not in rollouts
    assert "/v1/deployments/web" in guide and "/_emulator/clusters/eu-1/objects" in guide
    rows = await db.fetch("SELECT data->>'target' AS target FROM events WHERE type = 'ApplySucceeded'")
    assert sorted(r["target"] for r in rows) == ["eu-1", "eu-2"]
    sample = tmp_path / "web.yaml"
    assert [m["kind"] for m in yaml.safe_load_all(sample.read_text())] == ["Namespace", "ConfigMap", "Deployment"]
    assert f"-f {sample} " in guide and "Ctrl-C" in guide


async def test_demo_once_prints_no_ctrl_c_and_no_path_that_is_gone_when_it_returns(database_url, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = await cli_main_subprocess(cwd, database_url)
    assert result.returncode == 0, result.stderr
    assert "Ctrl-C" not in result.stdout and re.search(r"eu-1 +healthy", result.stdout)
    assert cli_support.missing_paths(result.stdout) == []
    assert list(cwd.iterdir()) == []


async def cli_main_subprocess(cwd: Path, database_url: str):
    return await cli_support.run_async("demo", "--once", "--http-port", "0", cwd=cwd,
                                       env={"LEDGER_DATABASE_URL": database_url, "LEDGER_CLAIM_INTERVAL": "0.1"},
                                       timeout=80)


def test_ledger_demo_is_a_command() -> None:
    args = cli_main.parser().parse_args(["demo", "--once", "--http-port", "0"])
    assert args.func is demo_cli.run_demo and args.once
