"""The operator's credentials file as the tests write it: one file per test (``credentials.yaml``
in the test's tmp_path, set in Settings by conftest), one token file per emulated cluster.

Writes replace the file atomically (a new inode), as configuration management does, so the
service's reload check sees every change however fast tests write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from emulator import Emulator
from ledger import settings as settings_mod

NAME = "credentials.yaml"


def path(directory: Path) -> Path:
    return directory / NAME


def read(directory: Path) -> dict[str, dict[str, Any]]:
    found = path(directory)
    if not found.exists():
        return {}
    return dict((yaml.safe_load(found.read_text()) or {}).get("credentials") or {})


def write(directory: Path, entries: dict[str, dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = path(directory)
    fresh = target.with_name(target.name + ".new")
    fresh.write_text(yaml.safe_dump({"credentials": entries}, sort_keys=True))
    os.replace(fresh, target)
    return target


def ensure(directory: Path) -> Path:
    """The file, created empty when missing (nothing may be registered until a test adds entries)."""
    return path(directory) if path(directory).exists() else write(directory, {})


def add(directory: Path, **entries: Any) -> Path:
    return write(directory, {**read(directory), **entries})


def token(name: str) -> str:
    return f"token-of-{name}"


def token_entry(directory: Path, name: str, server: str) -> dict[str, Any]:
    """An entry whose token file (under ``directory``/tokens) holds :func:`token` of ``name``."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    (tokens / name).write_text(token(name) + "\n")
    return {"server": server, "token_file": str(tokens / name)}


def add_emulator(directory: Path, emu: Emulator, names: list[str] | None = None) -> Path:
    """One credential per emulated cluster, named like the cluster."""
    chosen = names if names is not None else emu.cluster_names()
    return add(directory, **{n: token_entry(directory, n, emu.cluster_url(n)) for n in chosen})


def add_anonymous(settings: settings_mod.Settings, name: str, server: str | None = None) -> str:
    """An anonymous credential ``name`` (server ``https://<name>:6443`` unless given) in the file the
    service under test reads; returns the server."""
    assert settings.credentials is not None, "the test's settings name no credentials file"
    server = server or f"https://{name}:6443"
    add(settings.credentials.parent, **{name: {"server": server, "anonymous": True}})
    return server
