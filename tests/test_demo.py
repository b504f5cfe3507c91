"""``ledger demo`` end to end, in-process on the test database: three emulated clusters, the sample
deployment applied to the two in region=eu, and a guide that points at real URLs."""

from __future__ import annotations

import pytest
import yaml

from cli import demo as demo_cli
from cli import main as cli_main
from ledger import settings as settings_mod

pytestmark = pytest.mark.timeout(60)


async def test_the_demo_applies_the_sample_deployment_to_region_eu_and_says_where_to_look(
        settings: settings_mod.Settings, db) -> None:
    printed: list[str] = []
    code = await demo_cli.demo(settings.replace(applier=True, projector=True, http_port=0, claim_interval=0.1),
                               once=True, out=printed.append)
    assert code == 0
    guide = printed[0]
    rollouts = guide.split("went to region=eu:")[1].split("Look around")[0]
    assert "eu-1   applied" in rollouts and "eu-2   applied" in rollouts and "us-1" not in rollouts
    assert "/v1/deployments/web" in guide and "/_emulator/clusters/eu-1/objects" in guide
    rows = await db.fetch("SELECT data->>'target' AS target FROM events WHERE type = 'ApplySucceeded'")
    assert sorted(r["target"] for r in rows) == ["eu-1", "eu-2"]
    sample = settings.data_dir.resolve() / "web.yaml"
    assert [m["kind"] for m in yaml.safe_load_all(sample.read_text())] == ["Namespace", "ConfigMap", "Deployment"]
    assert str(sample) in guide


def test_ledger_demo_is_a_command() -> None:
    args = cli_main.parser().parse_args(["demo", "--once", "--http-port", "0"])
    assert args.func is demo_cli.run_demo and args.once
