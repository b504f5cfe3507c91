"""What the applier holds for targets with nothing to do (issue 16: the service's memory is bounded).

Claiming a fleet gains every target at once. A pass task per target, each waiting its turn on the
event loop, held about 1.4 KB apiece, and the heap kept that memory after they had ended (the
applier's RSS 147 MB instead of 104 MB with 40,000 targets, bench/memory.py). A target whose pass
would find nothing to do gets no task; one with work still does.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from emulator import Emulator
from emulator.faults import Fault
from handlers import applier as applier_mod
from ledger import credfile, events
from ledger import settings as settings_mod
from tests import credfiles
from tests.applier_support import (
    append,
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    register,
    submit,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(60)

IDLE = [f"idle-{i}" for i in range(20)]
BUSY = "eu-1"  # its cluster answers every apply with 500: its work is never done


def _passes() -> set[str]:
    return {t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("applier-") and not t.done()
            and t.get_name().removeprefix("applier-") in {*IDLE, BUSY}}


async def test_targets_with_nothing_to_do_get_no_pass_task_and_those_with_work_do(
        store, settings: settings_mod.Settings, tmp_path, emu: Emulator):  # noqa: F811
    emu.cluster(BUSY).add_fault(Fault(status=500, method="PATCH"))
    for name in IDLE:
        await append(store, events.TargetRegistered(target=name, labels={"tier": "edge"}, credentials=name))
    await register(store, emu, BUSY, tier="core")
    await submit(store, "web", [configmap("web-config", greeting="hi")], "tier=core")
    runner = applier_mod.Applier(store, settings.database_url or "", fast_settings(settings),
                                 credfile.Watched(credfiles.path(tmp_path), required=True), cache_dir=tmp_path / "cache")
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(runner.ready.wait(), 30)
        await eventually(lambda: _owns_all(runner), what="every target claimed")
        for name in [*IDLE, BUSY]:
            runner._changed(name)  # as a gained claim, a credentials reload or a folded event asks
        assert _passes() == {f"applier-{BUSY}"}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _owns_all(runner: applier_mod.Applier) -> bool:
    return all(runner.claims.owns(name) for name in [*IDLE, BUSY])
