"""Which token the CLI sends: ``--token``, else ``LEDGER_TOKEN``, else, for a service on this machine
(a loopback URL), the secret the service wrote to its data directory's ``admin.token``
(``LEDGER_DATA_DIR``, default ``.ledger``) on first start. So ``make run`` then ``ledger status``
works with no extra step, while a remote service always needs a token of its own.

Prefer ``LEDGER_TOKEN`` to ``--token``: a command line is visible to other users of the machine.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Final

ADMIN_FILE: Final = "admin.token"
_LOCAL_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})


def is_local(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token(explicit: str | None, url: str, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    if explicit:
        return explicit
    if env.get("LEDGER_TOKEN"):
        return env["LEDGER_TOKEN"]
    if is_local(url):
        path = Path(env.get("LEDGER_DATA_DIR") or ".ledger") / ADMIN_FILE
        try:
            return path.read_text().strip() or None
        except OSError:
            return None
    return None


def headers(explicit: str | None, url: str) -> dict[str, str]:
    found = token(explicit, url)
    return {"Authorization": f"Bearer {found}"} if found else {}
