"""Typed application state keys: everything the handlers share lives under one of these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from api import locks as locks_mod
from ledger import components as components_mod
from ledger import credfile
from ledger import probe as probe_mod
from ledger import settings as settings_mod
from ledger import store as store_mod
from projections import progress as progress_mod
from projections import runner as runner_mod
from projections import targetindex
from projections import tokens as tokens_mod

if TYPE_CHECKING:
    # Only the process that runs the applier loads it, and the Kubernetes client with it (lifecycle.applier).
    from handlers import applier as applier_mod

SETTINGS = web.AppKey("settings", settings_mod.Settings)
DSN = web.AppKey("dsn", str)
STORE = web.AppKey("store", store_mod.EventStore)
PROGRESS = web.AppKey("progress", progress_mod.Progress)
PROJECTOR = web.AppKey("projector", runner_mod.Projector)
STREAM_LOCKS = web.AppKey("stream_locks", locks_mod.StreamLocks)
APPLIER: web.AppKey[applier_mod.Applier] = web.AppKey("applier")
COMPONENTS = web.AppKey("components", components_mod.Registry)
PROBE = web.AppKey("probe", probe_mod.Probe)
FATAL = web.AppKey("fatal", list[str])
TOKENS = web.AppKey("tokens", tokens_mod.Table)
TARGETS = web.AppKey("targets", targetindex.Index)  # the fleet's targets as commands decide on them
CREDENTIALS = web.AppKey("credentials", credfile.Watched)
