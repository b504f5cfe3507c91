"""Every client command of ``ledger``, found by walking the parser, takes ``--output table|json|yaml``;
run against a real service, each one's JSON parses and its YAML says the same; shell completion
comes from the parser; a client command starts without loading the service."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from api import keys
from cli import main as cli_main
from cli import output
from tests import cli_support, credfiles, projected, servers
from tests.projected import CONFIG_MAP, live_client  # noqa: F401 - fixture
from tests.test_cli_help import ALL

# Commands whose output is a file format of its own, not a view of the API's answer.
EXEMPT = {
    "ledger export": "writes the log itself, one event per line, in the --format asked for",
    "ledger digest": "writes the digest file that 'verify --digest' reads (JSON by definition)",
}
LEAVES = {path: parser for path, parser in ALL.items()
          if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)}
CLIENT = {path for path, parser in LEAVES.items()
          if any("--url" in a.option_strings for a in parser._actions)}

# One invocation of every client command, in an order that works on an empty ledger (creations
# first). READS are run once per format and must agree; the rest are writes, run once.
FILE = "{file}"
SAMPLES: dict[str, list[str]] = {
    "ledger targets add": ["targets", "add", "eu-1", "--credentials", "eu-1", "-l", "region=eu"],
    "ledger targets update": ["targets", "update", "eu-1", "--label", "tier=prod"],
    "ledger targets list": ["targets", "list"],
    "ledger deploy": ["deploy", "web", "-f", FILE, "--selector", "region=eu", "-m", "first"],
    "ledger history": ["history", "web"],
    "ledger diff": ["diff", "web", "1", "2"],
    "ledger status": ["status", "web"],
    "ledger state": ["state", "--at", "head"],
    "ledger wait": ["wait", "web", "--timeout", "0.2s"],
    "ledger rollout": ["rollout", "web", "--once"],
    "ledger approve": ["approve", "web", "--wave", "rest", "-m", "checked"],
    "ledger promote": ["promote", "web", "--wave", "rest", "-m", "early"],
    "ledger halt": ["halt", "web", "-m", "stop"],
    # After the rollout commands: the rollback (revision 3, revision 1's manifests) has no strategy.
    "ledger rollback": ["rollback", "web", "--to", "1", "-m", "again"],
    "ledger pause": ["pause", "web", "--reason", "freeze"],
    "ledger resume": ["resume", "web"],
    "ledger tokens create": ["tokens", "create", "ci", "--role", "viewer"],
    "ledger tokens list": ["tokens", "list"],
    "ledger tokens show": ["tokens", "show", "ci"],
    "ledger tokens revoke": ["tokens", "revoke", "ci", "--reason", "done"],
    "ledger verify": ["verify"],
    "ledger freezes set": ["freezes", "set", "holidays", "--selector", "region=eu", "--reason", "holidays",
                           "--from", "2030-12-20T00:00:00Z", "--until", "2030-12-27T00:00:00Z"],
    "ledger freezes list": ["freezes", "list"],
    "ledger freezes remove": ["freezes", "remove", "holidays", "--reason", "cancelled"],
    "ledger remove": ["remove", "web", "--reason", "gone"],
    "ledger targets retire": ["targets", "retire", "eu-1"],
}
READS = {"ledger rollout", "ledger targets list", "ledger history", "ledger diff", "ledger status", "ledger state",
         "ledger tokens list", "ledger tokens show", "ledger verify", "ledger wait", "ledger freezes list"}
# The deployed revision rolls out in waves, so that the rollout commands have something to act on.
STRATEGY = ("---\nstrategy:\n  waves:\n    - name: canary\n      selector: region=eu\n    - name: rest\n"
            "  soak_seconds: 600\n  approval: [rest]\n")
# Top-level fields that differ between two reads of the same state (the server's clock).
VOLATILE = {"now"}
# Exit codes other than 0 that a sample gives on purpose (no applier runs: the wait times out).
EXITS = {"ledger wait": 2}
# Samples refused on purpose, with the exit code and the reason on stderr: no applier runs here, so
# the canary wave never completes and there is no soak to end early.
REFUSED = {"ledger promote": (5, "not soaking")}
HEAVY = ("aiohttp", "kubernetes_asyncio", "asyncpg", "api", "handlers", "emulator", "uvloop")


def test_the_walk_finds_the_client_commands():
    assert {"ledger status", "ledger targets list", "ledger tokens list", "ledger history"} <= CLIENT
    assert set(EXEMPT) <= CLIENT


@pytest.mark.parametrize("path", sorted(CLIENT - set(EXEMPT)))
def test_every_client_command_takes_output_table_json_or_yaml(path):
    actions = {o: a for a in LEAVES[path]._actions for o in a.option_strings}
    assert "--output" in actions, f"{path} has no --output"
    assert tuple(actions["--output"].choices or ()) == output.FORMATS
    assert actions["--output"].default == "table"
    assert actions["--json"].dest == "output" and actions["--json"].const == "json"


def test_every_client_command_has_a_sample_run_below():
    assert set(SAMPLES) == CLIENT - set(EXEMPT), "add a sample invocation (and say if it only reads)"
    assert READS <= set(SAMPLES)


def stable(document: dict) -> dict:
    return {k: v for k, v in document.items() if k not in VOLATILE}


async def ledger(capsys, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli_main.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_every_client_command_prints_json_that_parses_and_yaml_that_agrees(live, capsys, tmp_path):
    url = str(live.make_url("")).rstrip("/")
    credfiles.add_anonymous(live.app[keys.SETTINGS], "eu-1")
    manifest = tmp_path / "web.yaml"
    manifest.write_text(CONFIG_MAP.format(2) + STRATEGY)
    await projected.submit(live, "web", value="1")  # revision 1, so that rollback and diff have two
    for path, sample in SAMPLES.items():
        argv = [manifest.as_posix() if a == FILE else a for a in sample] + ["--url", url]
        expected = EXITS.get(path, 0)
        code, out, err = await ledger(capsys, *argv, "--output", "json")
        if path in REFUSED:
            assert (code, out) == (REFUSED[path][0], "") and REFUSED[path][1] in err, f"{path}: {code} {err}"
            continue
        assert code == expected, f"{path}: exit {code}: {err}"
        answer = json.loads(out)
        assert isinstance(answer, dict) and answer, f"{path} printed {out!r}"
        answer = stable(answer)
        if path not in READS:
            continue
        code, out, err = await ledger(capsys, *argv, "--output", "yaml")
        assert code == expected and stable(yaml.safe_load(out)) == answer, f"{path}: the YAML says something else"
        code, out, err = await ledger(capsys, *argv, "--json")
        assert code == expected and stable(json.loads(out)) == answer
        code, out, err = await ledger(capsys, *argv)
        assert code == expected and out.strip() and not out.lstrip().startswith("{"), f"{path}: no table"


async def test_a_client_command_does_not_load_the_service(live, tmp_path):
    """Scripts call ``ledger status`` in loops, and the shell runs ``ledger`` on every Tab: the
    parser and a client command import neither aiohttp nor the API, the applier or the driver."""
    url = str(live.make_url("")).rstrip("/")
    script = ("import json, sys\nfrom cli import main\ncode = main.main(sys.argv[1:])\n"
              f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
              "print(json.dumps(heavy), file=sys.stderr)\nsys.exit(code)\n")
    env = {"PYTHONPATH": str(servers.ROOT), "LEDGER_TOKEN": servers.ADMIN_TOKEN, "PATH": "/usr/bin:/bin"}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script, "targets", "list", "--url", url, "--output", "yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["targets"] == []
    assert json.loads(result.stderr.splitlines()[-1]) == []


def complete(line: str, tmp_path: Path) -> list[str]:
    """What the shell gets when the user presses Tab after ``line`` (argcomplete's protocol)."""
    answer = tmp_path / "completions"
    result = cli_support.run(cwd=tmp_path, env={"_ARGCOMPLETE": "1", "COMP_LINE": line,
                                                "COMP_POINT": str(len(line)),
                                                "_ARGCOMPLETE_STDOUT_FILENAME": str(answer)})
    assert result.returncode == 0, result.stderr
    return [word.rstrip() for word in answer.read_text().split("\013")]


def test_tab_completes_commands_flags_and_choices_from_the_parser(tmp_path):
    assert set(complete("ledger sta", tmp_path)) == {"status", "state"}
    assert {"add", "update", "list", "retire"} <= set(complete("ledger targets ", tmp_path))
    assert "--output" in complete("ledger status --out", tmp_path)
    assert set(complete("ledger history web --output ", tmp_path)) == set(output.FORMATS)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_completion_script_names_ledger(shell, tmp_path):
    result = cli_support.run("completion", shell, cwd=tmp_path)
    assert result.returncode == 0 and "ledger" in result.stdout and "_ARGCOMPLETE" in result.stdout


def test_sourcing_the_bash_script_registers_completion_for_ledger(tmp_path):
    script = tmp_path / "ledger.bash"
    script.write_text(cli_support.run("completion", "bash", cwd=tmp_path).stdout)
    result = subprocess.run(["bash", "-c", f"source {script} && complete -p ledger"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.rstrip().endswith(" ledger"), result.stderr
