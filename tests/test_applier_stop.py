"""A pass asked for once the applier has stopped (a late credentials reload, a claim callback) is
dropped quietly: no error thrown at the caller, no coroutine left never awaited."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings

from handlers import applier as applier_mod
from ledger import credentials, credfile


async def test_a_pass_asked_for_after_the_applier_stopped_is_dropped_quietly(store, settings, tmp_path):
    runner = applier_mod.Applier(store, settings.database_url or "", settings,
                                 credfile.Watched.fixed(credentials.EMPTY), cache_dir=tmp_path / "cache")
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.ready.wait(), 30)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    runner.claims.owned.add("edge-1")  # as the claims stood when the stop came
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner._changed("edge-1")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
