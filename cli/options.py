"""Service settings as command-line flags, generated from the Settings dataclass."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from ledger import settings as settings_mod


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (also LEDGER_<NAME> environment variables)")
    for f in dataclasses.fields(settings_mod.Settings):
        group.add_argument("--" + f.name.replace("_", "-"), dest="setting_" + f.name, default=None,
                           metavar=f.name.upper(), help=f.metadata.get("help"))


def settings_from(args: argparse.Namespace) -> settings_mod.Settings:
    overrides: dict[str, Any] = {
        key[len("setting_"):]: value for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return settings_mod.load(os.environ, overrides)
