"""The applier's and the projector's log lines name the deployment, target, revision and position
they concern, as structured fields (ledger/logs.py)."""

from __future__ import annotations

import logging

import pytest

from emulator import Emulator
from ledger import events
from ledger import settings as settings_mod
from tests.applier_support import (
    append,
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    namespace,
    outcomes,
    register,
    submit,
    succeeded,
)
from tests.applier_support import fast as fast_settings
from tests.test_projector_stall import insert_raw_data

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings, projector=True)


def fields_of(record: logging.LogRecord, *names: str) -> dict:
    return {n: getattr(record, n, None) for n in names}


async def test_an_applied_outcome_is_logged_with_its_deployment_target_revision_and_position(
        client, store, db, emu: Emulator, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="handlers.applier")
    await register(store, emu, "eu-1", region="eu")
    revision = await submit(store, "web", [configmap("web-config", greeting="hi"), namespace()], "region=eu")

    async def applied():
        return succeeded(await outcomes(db, "web"), revision, {"eu-1"})

    await eventually(applied, what="applied to eu-1")
    (recorded,) = [o for o in await outcomes(db, "web") if o["type"] == "ApplySucceeded"]
    lines = [r for r in caplog.records if r.name == "handlers.applier" and getattr(r, "result", None)]
    assert [fields_of(r, "deployment", "target", "revision", "position", "result") for r in lines] == [
        {"deployment": "web", "target": "eu-1", "revision": revision, "position": recorded["position"],
         "result": "succeeded"}]


async def test_a_stalled_projector_logs_the_position_and_what_the_event_concerns(client, store, db, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="projections.runner")
    first = await append(store, events.TargetRegistered(target="eu-1", labels={}, server="https://eu-1"))
    poison = await insert_raw_data(db, "deployment-web", "RevisionSubmitted",
                                   {"deployment": "web", "revision": 4, "manifests": "not a list"})
    assert poison == first + 1

    def stalled_lines():
        return [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "projections.runner"]

    async def logged():
        return stalled_lines()

    await eventually(logged, timeout=30, what="the stall is logged")
    assert fields_of(stalled_lines()[0], "position", "stream", "type", "deployment", "revision") == {
        "position": poison, "stream": "deployment-web", "type": "RevisionSubmitted", "deployment": "web",
        "revision": 4}
