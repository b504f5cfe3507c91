"""Typed application state keys: everything the handlers share lives under one of these."""

from __future__ import annotations

from aiohttp import web

from ledger import settings as settings_mod
from ledger import store as store_mod

SETTINGS = web.AppKey("settings", settings_mod.Settings)
DSN = web.AppKey("dsn", str)
STORE = web.AppKey("store", store_mod.EventStore)
