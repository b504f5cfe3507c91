"""``ledger serve`` without access control, for bench/append.py's with/without comparison only:
the same app, runtime and settings, minus the access check and the token table."""

from __future__ import annotations

import logging
import os

from api import app as app_mod
from cli import serve
from ledger import settings as settings_mod


def main() -> None:
    settings = settings_mod.load(os.environ)
    logging.basicConfig(level=settings.log_level.upper())
    serve.run(app_mod.make_app(settings, access_control=False), settings)


if __name__ == "__main__":
    main()
