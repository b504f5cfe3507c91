"""A user's mistakes, as a user makes them (``ledger`` as a subprocess in an empty directory): one
clear line on stderr, the exit code of cli/exits.py, no traceback, and nothing created."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli import exits
from tests import cli_support

pytestmark = pytest.mark.timeout(120)


def assert_one_line(result, code: int, *needles: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def test_a_name_with_a_space_is_a_usage_error_naming_it(cwd):
    result = cli_support.run("targets", "add", "eu 1", "--credentials", "eu-1", cwd=cwd)
    assert_one_line(result, exits.Code.USAGE, "'eu 1'", "DNS-1123")


@pytest.mark.parametrize("argv", [["deploy", "web", "-f", "missing.yaml"], ["verify", "--digest", "missing.json"],
                                  ["import", "missing.ndjson", "--database-url", "postgresql://127.0.0.1:1/x"]])
def test_a_missing_file_is_named(cwd, argv):
    assert_one_line(cli_support.run(*argv, cwd=cwd), exits.Code.USAGE, "missing.", "No such file")
    assert list(cwd.iterdir()) == []


def test_an_unreadable_file_is_named(cwd):
    (cwd / "manifests").mkdir()
    assert_one_line(cli_support.run("deploy", "web", "-f", "manifests", cwd=cwd), exits.Code.USAGE,
                    "cannot read manifests")


def test_a_yaml_syntax_error_names_the_line(cwd):
    (cwd / "web.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web\n")
    assert_one_line(cli_support.run("deploy", "web", "-f", "web.yaml", cwd=cwd), exits.Code.USAGE,
                    "web.yaml: invalid YAML at line 4")


@pytest.mark.parametrize("argv", [["status"], ["targets", "list"], ["verify"], ["digest"], ["export"],
                                  ["deploy", "web", "-f", "-"]])
def test_a_service_that_is_not_running_is_unreachable_and_nothing_is_created(cwd, argv):
    url = cli_support.dead_url()
    result = cli_support.run(*argv, cwd=cwd, url=url)
    assert_one_line(result, exits.Code.UNREACHABLE, f"cannot reach the ledger at {url}")
    assert list(cwd.iterdir()) == []


def test_a_port_in_use_stops_serve_before_anything_starts(cwd):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli_support.run("serve", "--http-port", str(port), "--data-dir", "data", cwd=cwd)
    assert_one_line(result, exits.Code.FAILED, f"cannot listen on 127.0.0.1:{port}", "in use")
    assert list(cwd.iterdir()) == []


def test_a_data_dir_that_holds_no_ledger_is_not_created_by_a_reader(cwd):
    for argv in (["verify", "--data-dir", "nope"], ["digest", "--data-dir", "nope"],
                 ["export", "--data-dir", "nope"]):
        assert_one_line(cli_support.run(*argv, cwd=cwd), exits.Code.NOT_FOUND, "no ledger database under nope")
    assert list(cwd.iterdir()) == []


def test_a_url_that_is_not_http_is_a_usage_error(cwd):
    assert_one_line(cli_support.run("status", "--url", "localhost:8080", cwd=cwd), exits.Code.USAGE,
                    "'localhost:8080' is not an http:// or https:// URL")


def test_a_bad_flag_is_one_line_pointing_at_help(cwd):
    assert_one_line(cli_support.run("status", "--colour", cwd=cwd), exits.Code.USAGE,
                    "unrecognized arguments: --colour", "--help")
