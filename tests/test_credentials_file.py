"""The operator's credentials file: what it accepts, how a malformed one is refused (naming the
field, at start-up; on reload the last good catalogue stays), and reloads without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cli import main as cli_main
from ledger import credentials, credfile
from tests import credfiles


def _write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "credentials.yaml"
    path.write_text(text)
    return path


def _kubeconfig(directory: Path, doc: object) -> Path:
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


KUBECONFIG = {
    "clusters": [{"name": "c1", "cluster": {"server": "https://c1.example:6443"}},
                 {"name": "c2", "cluster": {"server": "https://c2.example:6443"}}],
    "users": [{"name": "u", "user": {"token": "kube-secret"}}],
    "contexts": [{"name": "one", "context": {"cluster": "c1", "user": "u"}},
                 {"name": "two", "context": {"cluster": "c2", "user": "u"}}],
    "current-context": "two",
}


def test_every_kind_of_entry_resolves_with_its_server_and_absolute_paths(tmp_path: Path):
    _kubeconfig(tmp_path, KUBECONFIG)
    path = _write(tmp_path, """
credentials:
  eu-1: {server: https://eu-1.example:6443/, token_file: tokens/eu-1, ca_file: /etc/ca.pem}
  us-1: {kubeconfig: kubeconfig, context: one}
  us-2: {kubeconfig: kubeconfig}
  lab: {server: http://127.0.0.1:8081/clusters/lab, anonymous: true, insecure: true}
""")
    catalogue, _ = credfile.load(path, required=True)
    assert catalogue["eu-1"] == credentials.Credential(
        name="eu-1", server="https://eu-1.example:6443", token_file=tmp_path / "tokens" / "eu-1",
        ca_file=Path("/etc/ca.pem"))
    assert (catalogue["us-1"].server, catalogue["us-1"].context) == ("https://c1.example:6443", "one")
    assert (catalogue["us-2"].server, catalogue["us-2"].context) == ("https://c2.example:6443", "two")
    assert catalogue["lab"].anonymous and catalogue["lab"].insecure and not catalogue["eu-1"].anonymous


@pytest.mark.parametrize(("text", "kubeconfig", "field"), [
    ("- a list\n", None, "$"),
    ("credentials: {}\nextra: 1\n", None, "extra"),
    ("credentials: [a]\n", None, "credentials"),
    ("credentials: {Bad_Name: {server: 'https://x', anonymous: true}}\n", None, "credentials.Bad_Name"),
    ("credentials: {a: {server: 'https://x', token_file: t, sever: 1}}\n", None, "credentials.a"),
    ("credentials: {a: {server: 'https://x', insecure: 'yes', anonymous: true}}\n", None, "credentials.a.insecure"),
    ("credentials: {a: {server: 'https://x'}}\n", None, "credentials.a"),
    ("credentials: {a: {server: 'https://x', token_file: t, anonymous: true}}\n", None, "credentials.a"),
    ("credentials: {a: {token_file: t}}\n", None, "credentials.a.server"),
    ("credentials: {a: {server: 'ftp://x', token_file: t}}\n", None, "credentials.a.server"),
    ("credentials: {a: {server: 'https://u:p@x', token_file: t}}\n", None, "credentials.a.server"),
    ("credentials: {a: {server: 'https://x/?q=1', token_file: t}}\n", None, "credentials.a.server"),
    ("credentials: {a: {server: 'https://x/#f', token_file: t}}\n", None, "credentials.a.server"),
    ("credentials: {a: {server: 'https://', token_file: t}}\n", None, "credentials.a.server"),
    ("credentials: {a: {server: 'https://x', token_file: t, context: c}}\n", None, "credentials.a.context"),
    ("credentials: {a: {kubeconfig: kubeconfig}}\n", ["not", "a", "mapping"], "credentials.a.kubeconfig"),
    ("credentials: {a: {kubeconfig: kubeconfig, context: three}}\n", KUBECONFIG, "credentials.a.kubeconfig"),
    ("credentials: {a: {kubeconfig: kubeconfig, server: 'https://c9.example:6443'}}\n", KUBECONFIG,
     "credentials.a.server"),
    ("credentials: {a: {kubeconfig: missing}}\n", None, "credentials.a.kubeconfig"),
    ("credentials: {a: {server: 'https://x', token_file: t}\n", None, "not valid YAML at line 2"),
])
def test_a_malformed_file_is_refused_naming_the_field(tmp_path: Path, text, kubeconfig, field):
    if kubeconfig is not None:
        _kubeconfig(tmp_path, kubeconfig)
    path = _write(tmp_path, text)
    with pytest.raises(credfile.CredentialsFileError) as caught:
        credfile.load(path, required=True)
    assert f"{field}:" in str(caught.value) or field in str(caught.value)
    assert "kube-secret" not in str(caught.value)


def test_a_named_file_must_exist_and_the_default_one_may_be_absent(tmp_path: Path):
    with pytest.raises(credfile.CredentialsFileError, match="cannot read"):
        credfile.Watched(tmp_path / "nope.yaml", required=True)
    watched = credfile.Watched(tmp_path / "credentials.yaml", required=False)
    assert watched.current() == {}
    credfiles.write(tmp_path, {"lab": {"server": "https://lab:6443", "anonymous": True}})
    assert set(watched.current()) == {"lab"}


def test_serve_with_a_malformed_file_stops_start_up_naming_the_field(tmp_path: Path, capsys):
    path = _write(tmp_path, "credentials: {eu-1: {server: 'https://u:p@eu-1', token_file: t}}\n")
    code = cli_main.main(["serve", "--credentials", str(path), "--data-dir", str(tmp_path / "data"),
                          "--http-port", "0"])  # not 8080: another service may hold it
    err = capsys.readouterr().err
    assert code == 2 and "credentials.eu-1.server" in err and "user information" in err
    assert "u:p@" not in err  # a password in a URL is not repeated
    assert not (tmp_path / "data" / "pg").exists()  # nothing started


def test_a_change_is_picked_up_and_a_malformed_reload_keeps_the_last_good_one(tmp_path: Path, caplog):
    credfiles.write(tmp_path, {"a": {"server": "https://a:6443", "anonymous": True}})
    watched = credfile.Watched(credfiles.path(tmp_path), required=True)
    seen: list[tuple[set[str], set[str]]] = []
    watched.listen(lambda old, new: seen.append((set(old), set(new))))
    assert watched.refresh() is False
    credfiles.add(tmp_path, b={"server": "https://b:6443", "anonymous": True})
    assert set(watched.current()) == {"a", "b"} and seen == [({"a"}, {"a", "b"})]
    _write(tmp_path, "credentials: {a: {server: 'https://a:6443'}}\n")
    assert set(watched.current()) == {"a", "b"}
    assert watched.errors == 1 and "credentials.a" in (watched.last_error or "")
    assert "keeping the 2 credential(s) loaded before" in caplog.text
    assert watched.current() and watched.errors == 1  # counted once per change, not per look
    credfiles.write(tmp_path, {"c": {"server": "https://c:6443", "anonymous": True}})
    assert set(watched.current()) == {"c"} and watched.last_error is None and watched.reloads == 2


def test_a_kubeconfig_that_changes_reloads_the_credential(tmp_path: Path):
    _kubeconfig(tmp_path, KUBECONFIG)
    credfiles.write(tmp_path, {"k": {"kubeconfig": "kubeconfig", "context": "one"}})
    watched = credfile.Watched(credfiles.path(tmp_path), required=True)
    assert watched.current()["k"].server == "https://c1.example:6443"
    moved = {**KUBECONFIG, "clusters": [{"name": "c1", "cluster": {"server": "https://c1.moved:6443"}}]}
    fresh = tmp_path / "kubeconfig.new"
    fresh.write_text(yaml.safe_dump(moved))
    fresh.replace(tmp_path / "kubeconfig")
    assert watched.current()["k"].server == "https://c1.moved:6443"
