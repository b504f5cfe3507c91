"""Every ``ledger`` command, found by walking the parser itself, has a description, an example and
its defaults in its help; the service's flags appear only where the service runs; the exit codes
are documented as cli/exits.py defines them."""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import exits
from cli import main as cli_main
from ledger import settings as settings_mod
from tests import cli_support, servers

SERVICE_COMMANDS = {"ledger serve", "ledger applier"}
# What a command that runs the service for itself (the demo) or opens a database may take.
OWN_SETTINGS = {"ledger demo": {"http_host", "http_port", "database_url", "log_level"}}
DATABASE_SETTINGS = {"database_url", "data_dir"}


def commands(parser: argparse.ArgumentParser, path: str = "ledger") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, f"{path} {name}")


ALL = dict(commands(cli_main.parser()))


def test_the_walk_finds_every_command():
    assert {"ledger targets add", "ledger targets update", "ledger verify", "ledger db migrate",
            "ledger serve", "ledger status"} <= set(ALL)


@pytest.mark.parametrize("path", sorted(ALL))
def test_every_command_has_a_description_an_example_and_its_defaults(path):
    parser = ALL[path]
    text = parser.format_help()
    assert parser.description and parser.description.strip(), f"{path} has no description"
    examples = text.split("examples:\n", 1)
    assert len(examples) == 2, f"{path} has no examples"
    assert any(path + " " in line + " " for line in examples[1].splitlines()), f"{path}: no example of itself"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
            continue
        assert action.help, f"{path} {action.dest} has no help"
        default = action.default
        meaningful = not (default is None or default is False or default is argparse.SUPPRESS or default == [])
        if action.option_strings and meaningful:
            shown = str(parser._get_formatter()._get_help_string(action))
            assert "default" in shown, f"{path} {action.option_strings[0]} hides its default {action.default!r}"


def test_service_flags_appear_only_on_the_commands_that_run_the_service():
    """The service's settings become flags (dest ``setting_<name>``, cli/options.py) on serve and
    applier; elsewhere only a command's own few."""
    every = {f.name for f in dataclasses.fields(settings_mod.Settings)}
    for path, parser in ALL.items():
        settings = {a.dest.removeprefix("setting_") for a in parser._actions if a.dest.startswith("setting_")}
        if path in SERVICE_COMMANDS:
            assert settings == every, f"{path} lacks {sorted(every - settings)}"
            continue
        allowed = OWN_SETTINGS.get(path, DATABASE_SETTINGS if settings <= DATABASE_SETTINGS else set())
        assert settings <= allowed, f"{path} takes the service's flags {sorted(settings - allowed)}"
    assert "--http-port" not in ALL["ledger status"].format_help()


def test_client_commands_reach_the_service_by_url():
    for path, parser in ALL.items():
        flags = {o for a in parser._actions for o in a.option_strings}
        if "--json" in flags or path in ("ledger verify", "ledger digest", "ledger export"):
            assert "--url" in flags, f"{path} cannot be pointed at a service"


def test_version(tmp_path):
    result = cli_support.run("--version", cwd=tmp_path)
    assert result.returncode == 0 and re.fullmatch(r"ledger \d+\.\d+\.\d+\S*\n", result.stdout)


def exit_table(path: Path) -> dict[int, str]:
    text = path.read_text()
    rows = re.findall(r"^\| `?(\d+)`? \| `?([A-Z_]+)`? \|", text, flags=re.MULTILINE)
    return {int(code): name for code, name in rows}


@pytest.mark.parametrize("doc", ["docs/cli.md", "README.md"])
def test_the_exit_codes_are_documented_as_defined(doc):
    assert exit_table(servers.ROOT / doc) == {c.value: c.name for c in exits.Code}
