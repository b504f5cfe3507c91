"""Freeze windows: cron schedules across DST, validation at the door, who may write them, the 409
for a revision whose every target is frozen, the applier holding a revision at frozen targets (and
healing drift of the revision they keep) until the window closes, the admin's override, and replay.

The end-to-end tests run the service with the applier on against emulated clusters over real HTTP
and real PostgreSQL. A window that must close during a test is a short ``{from, until}`` one set
after the held state has been observed; waits are bounded polls, never timing assertions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from emulator import Emulator
from ledger import events
from ledger import settings as settings_mod
from projections import commands, fleet, freezerules, freezes, views
from tests.applier_support import (
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    namespace,
)
from tests.applier_support import fast as fast_settings
from tests.tokens_support import issue

pytestmark = pytest.mark.timeout(90)
UTC = dt.UTC
BERLIN_NIGHTS = events.FreezeSchedule(cron="0 22 * * *", duration_seconds=8 * 3600, time_zone="Europe/Berlin")


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# --- the schedule, pure --------------------------------------------------------------------------


@pytest.mark.parametrize(("moment", "window"), [
    # Winter time (UTC+1): 22:00 local is 21:00 UTC, and the night's window lasts 8 h of real time.
    ("2026-03-28T20:59:59Z", None),
    ("2026-03-28T21:00:00Z", ("2026-03-28T21:00:00Z", "2026-03-29T05:00:00Z")),
    # The clocks go forward at 02:00 local on 29 March, inside the window: still 8 h, until 05:00 UTC.
    ("2026-03-29T04:59:59Z", ("2026-03-28T21:00:00Z", "2026-03-29T05:00:00Z")),
    ("2026-03-29T05:00:00Z", None),
    # Summer time (UTC+2): the same cron opens at 20:00 UTC.
    ("2026-03-29T19:59:59Z", None),
    ("2026-03-29T20:00:00Z", ("2026-03-29T20:00:00Z", "2026-03-30T04:00:00Z")),
    # And back in October: the clocks go back on the 25th, so that evening opens at 21:00 UTC again.
    ("2026-10-24T20:00:00Z", ("2026-10-24T20:00:00Z", "2026-10-25T04:00:00Z")),
    ("2026-10-25T20:30:00Z", None),
    ("2026-10-25T21:00:00Z", ("2026-10-25T21:00:00Z", "2026-10-26T05:00:00Z")),
])
def test_a_cron_window_opens_at_local_time_in_its_zone_across_dst_changes(moment, window):
    found = freezes.window_at(BERLIN_NIGHTS, at(moment))
    assert (None if found is None else (found.start, found.end)) == (
        None if window is None else (at(window[0]), at(window[1])))


def test_a_local_time_the_clocks_skip_opens_at_the_first_minute_after_the_gap():
    nightly = events.FreezeSchedule(cron="30 2 * * *", duration_seconds=3600, time_zone="Europe/Berlin")
    # 02:30 does not exist on 29 March 2026 in Berlin: the window opens at 03:00 CEST (01:00 UTC).
    coming = freezes.next_window(nightly, at("2026-03-28T12:00:00Z"))
    assert coming is not None and coming.start == at("2026-03-28T01:30:00Z") + dt.timedelta(days=1) - \
        dt.timedelta(minutes=30)
    assert freezes.window_at(nightly, at("2026-03-29T00:59:59Z")) is None
    assert freezes.window_at(nightly, at("2026-03-29T01:00:00Z")) is not None


def test_the_next_window_follows_the_one_that_holds_and_overlapping_windows_chain():
    opening = freezes.next_window(BERLIN_NIGHTS, at("2026-03-28T22:00:00Z"))
    assert opening is not None and (opening.start, opening.end) == (at("2026-03-29T20:00:00Z"),
                                                                     at("2026-03-30T04:00:00Z"))
    # Every 30 minutes for an hour: the windows overlap, so the freeze holds until the chain ends.
    hourly = events.FreezeSchedule(cron="*/30 9-10 * * *", duration_seconds=3600, time_zone="UTC")
    held = freezes.window_at(hourly, at("2026-05-04T09:10:00Z"))
    assert held is not None and (held.start, held.end) == (at("2026-05-04T09:00:00Z"), at("2026-05-04T11:30:00Z"))
    once = events.FreezeSchedule(from_=at("2026-05-04T09:00:00Z"), until=at("2026-05-04T10:00:00Z"))
    assert freezes.window_at(once, at("2026-05-04T10:00:00Z")) is None
    assert freezes.next_window(once, at("2026-05-04T08:00:00Z")) == freezes.Window(
        at("2026-05-04T09:00:00Z"), at("2026-05-04T10:00:00Z"))


NOW = at("2026-06-01T12:00:00Z")


@pytest.mark.parametrize(("schedule", "field"), [
    ({"cron": "61 * * * *", "duration_seconds": 600}, "schedule.cron"),
    ({"cron": "0 0 30 2 *", "duration_seconds": 600}, "schedule.cron"),
    ({"cron": "0 * * * * *", "duration_seconds": 600}, "schedule.cron"),
    ({"cron": "0 22 * * *", "duration_seconds": 600, "time_zone": "Europe/Atlantis"}, "schedule.time_zone"),
    ({"cron": "0 22 * * *", "duration_seconds": 600, "time_zone": "../../etc/passwd"}, "schedule.time_zone"),
    # This host's /etc/localtime, offered by the system's zoneinfo directory: not an IANA zone, and a
    # freeze in it would open at different times on different machines and in replay.
    ({"cron": "0 22 * * *", "duration_seconds": 600, "time_zone": "localtime"}, "schedule.time_zone"),
    ({"cron": "0 22 * * *", "duration_seconds": 59}, "schedule.duration_seconds"),
    ({"cron": "0 22 * * *", "duration_seconds": 32 * 86400}, "schedule.duration_seconds"),
    ({"cron": "0 22 * * *"}, "schedule.duration_seconds"),
    ({"duration_seconds": 600}, "schedule.cron"),
    ({"from": "2026-06-02T00:00:00Z", "until": "2026-06-02T00:00:00Z"}, "schedule.from"),
    ({"from": "2026-06-03T00:00:00Z", "until": "2026-06-02T00:00:00Z"}, "schedule.from"),
    ({"from": "2026-06-02T00:00:00", "until": "2026-06-03T00:00:00Z"}, "schedule.from"),
    ({"from": "2026-06-02T00:00:00Z", "until": "2027-06-10T00:00:00Z"}, "schedule.until"),
    ({"from": "2026-05-01T00:00:00Z", "until": "2026-05-02T00:00:00Z"}, "schedule.until"),
    ({"until": "2026-06-02T00:00:00Z"}, "schedule.from"),
    ({"from": "0001-01-01T00:00:00+05:00", "until": "0001-01-02T00:00:00+05:00"}, "schedule.from"),
    ({"from": "2026-06-02T00:00:00Z", "until": "9999-12-31T23:00:00-05:00"}, "schedule.until"),
    ({"cron": "0 22 * * *", "duration_seconds": 600, "until": "2026-06-02T00:00:00Z"}, "schedule"),
    ({}, "schedule"),
])
def test_a_bad_schedule_is_refused_naming_the_field(schedule, field):
    import msgspec

    converted = msgspec.convert(schedule, events.FreezeSchedule, strict=False)
    with pytest.raises(commands.Invalid) as refused:
        freezerules.set_freeze(None, "f", "", "why", converted, NOW)
    assert refused.value.field == field


def test_setting_the_same_freeze_again_records_nothing_and_removing_needs_one():
    event = freezerules.set_freeze(None, "f", "region = eu", "why", BERLIN_NIGHTS, NOW)
    assert event is not None and event.selector == "region=eu"
    state = _fold(event)
    assert freezerules.set_freeze(state.freezes["f"], "f", "region=eu", "why", BERLIN_NIGHTS, NOW) is None
    assert freezerules.set_freeze(state.freezes["f"], "f", "region=us", "why", BERLIN_NIGHTS, NOW) is not None
    with pytest.raises(commands.Invalid) as refused:
        freezerules.set_freeze(None, "f", "", "  ", BERLIN_NIGHTS, NOW)
    assert refused.value.field == "reason"
    fleet.apply(state, freezerules.remove_freeze(state.freezes["f"], "f", "over"), fleet.Meta(9, "freeze-f", 2, NOW))
    with pytest.raises(commands.NotFound):
        freezerules.remove_freeze(state.freezes["f"], "f", "again")


def _fold(*evs: events.AnyEvent) -> fleet.Fleet:
    state = fleet.empty()
    for i, e in enumerate(evs, 1):
        fleet.apply(state, e, fleet.Meta(i, "s", i, NOW))
    return state


def test_the_gate_holds_a_new_revision_at_a_frozen_target_but_not_the_revision_it_has_nor_an_override():
    window = events.FreezeSchedule(from_=NOW, until=NOW + dt.timedelta(hours=1))
    state = _fold(
        events.TargetRegistered(target="eu-1", labels={"region": "eu"}, server="https://a"),
        events.TargetRegistered(target="us-1", labels={"region": "us"}, server="https://b"),
        events.RevisionSubmitted(deployment="web", revision=1, manifests=[], selector=""),
        events.ApplySucceeded(deployment="web", revision=1, target="us-1"),
        events.FreezeSet(name="us-nights", schedule=window, selector="region=us", reason="peak"),
    )
    assert freezerules.hold(state, "web", "us-1", NOW) is None  # it has revision 1 already
    fleet.apply(state, events.RevisionSubmitted(deployment="web", revision=2, manifests=[], selector=""),
                fleet.Meta(6, "s", 6, NOW))
    assert freezerules.hold(state, "web", "us-1", NOW) == freezerules.Hold(("us-nights",), NOW + dt.timedelta(hours=1))
    assert freezerules.kept(state, "web", "us-1") == 1
    assert freezerules.hold(state, "web", "eu-1", NOW) is None
    assert freezerules.hold(state, "web", "us-1", NOW + dt.timedelta(hours=1)) is None
    fleet.apply(state, events.RevisionSubmitted(deployment="web", revision=3, manifests=[], selector="",
                                                override=events.FreezeOverride(reason="hotfix")),
                fleet.Meta(7, "s", 7, NOW))
    assert freezerules.hold(state, "web", "us-1", NOW) is None


# --- over HTTP, with the applier ----------------------------------------------------------------


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings)


def _window(seconds: float, *, ago: float = 60) -> dict[str, str]:
    now = dt.datetime.now(UTC)
    return {"from": (now - dt.timedelta(seconds=ago)).isoformat(),
            "until": (now + dt.timedelta(seconds=seconds)).isoformat()}


async def _freeze(client, name: str, selector: str, schedule: dict[str, Any], **headers: str) -> Any:  # noqa: F811
    return await client.put(f"/v1/freezes/{name}", headers=headers or None,
                            json={"selector": selector, "reason": "peak season", "schedule": schedule})


async def _target(client, name: str, **labels: str) -> None:  # noqa: F811
    response = await client.put(f"/v1/targets/{name}", json={"labels": labels, "credentials": name})
    assert response.status in (200, 201), await response.text()


def _value(emu: Emulator, cluster: str) -> str | None:  # noqa: F811
    found = emu.cluster(cluster).get("v1", "ConfigMap", "apps", "web")
    return None if found is None else found["data"]["v"]


async def _deploy(client, value: str, **extra: Any) -> Any:  # noqa: F811
    return await client.post("/v1/deployments/web/revisions", headers=extra.pop("headers", None), json={
        "manifests": [namespace(), configmap("web", v=value)], "selector": "", **extra})


async def _count(db) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events WHERE category <> 'rollout'"))


async def _outcomes(db, revision: int) -> set[str]:
    rows = await db.fetch("SELECT data FROM events WHERE type = 'ApplySucceeded'")
    return {json.loads(r["data"])["target"] for r in rows if json.loads(r["data"])["revision"] == revision}


async def test_only_an_admin_writes_freezes_viewers_read_them_and_bad_input_writes_nothing(client, db, emu):  # noqa: F811
    await _target(client, "eu-1", region="eu")
    await _target(client, "us-1", region="us")
    before = await _count(db)
    for role in ("viewer", "deployer", "approver"):
        holder = await issue(client, f"as-{role}", role)
        before = await _count(db)
        response = await client.put("/v1/freezes/nights", headers=holder, json={
            "selector": "", "reason": "x", "schedule": _window(3600)})
        assert response.status == 403, await response.text()
        assert (await client.delete("/v1/freezes/nights", headers=holder)).status == 403
        assert await _count(db) == before
    listed = await client.get("/v1/freezes", headers=holder)
    assert listed.status == 200 and (await listed.json())["freezes"] == []
    bad = {"selector": "region in (eu", "reason": "x", "schedule": _window(3600)}
    for body, field in ((bad, "selector"),
                        ({"reason": "x", "schedule": {"cron": "0 25 * * *", "duration_seconds": 60}}, "schedule.cron"),
                        ({"reason": "x", "schedule": {"cron": "0 2 * * *", "duration_seconds": 0}},
                         "$.schedule.duration_seconds"),
                        ({"reason": "x", "schedule": {**_window(60), "zone": "UTC"}}, "$.schedule")):
        response = await client.put("/v1/freezes/nights", json=body)
        assert response.status == 422, await response.text()
        assert (await response.json())["field"] == field
    appended = await client.post("/v1/streams/freeze-nights/events", json={"events": [
        {"type": "FreezeSet", "data": {"name": "nights", "schedule": _window(60), "reason": "x"}}]})
    assert appended.status == 403
    assert await _count(db) == before
    # The admin sets it (201), again unchanged (200, nothing recorded), and removes it.
    first = await _freeze(client, "nights", "region=us", {"cron": "0 22 * * *", "duration_seconds": 28800,
                                                          "time_zone": "Europe/Berlin"})
    assert first.status == 201, await first.text()
    again = await _freeze(client, "nights", "region=us", {"cron": "0 22 * * *", "duration_seconds": 28800,
                                                          "time_zone": "Europe/Berlin"})
    assert again.status == 200 and (await again.json())["changed"] is False
    listed = (await (await client.get("/v1/freezes", headers=holder)).json())["freezes"]
    assert [(f["name"], f["selector"], f["targets"], f["set_by"]) for f in listed] == [
        ("nights", "region=us", ["us-1"], "admin-env")]
    assert listed[0]["next_window"] is not None
    removed = await client.delete("/v1/freezes/nights", json={"reason": "season over"})
    assert removed.status == 200 and (await removed.json())["event"] == "FreezeRemoved"
    assert (await client.delete("/v1/freezes/nights")).status == 404
    assert (await (await client.get("/v1/freezes")).json())["freezes"] == []
    kept = (await (await client.get("/v1/freezes?include_removed=true")).json())["freezes"]
    assert [(f["name"], f["removed"], f["active"]) for f in kept] == [("nights", True, False)]


async def test_a_revision_whose_every_target_is_frozen_is_refused_naming_the_freeze(client, db, emu):  # noqa: F811
    await _target(client, "eu-1", region="eu")
    await _target(client, "us-1", region="us")
    assert (await _freeze(client, "everything", "", _window(3600))).status == 201
    before = await _count(db)
    refused = await _deploy(client, "1")
    assert refused.status == 409, await refused.text()
    problem = await refused.json()
    assert "everything" in problem["detail"]
    assert [(f["name"], f["targets"]) for f in problem["freezes"]] == [("everything", ["eu-1", "us-1"])]
    # The generic append is decided alike.
    appended = await client.post("/v1/streams/deployment-web/events", json={"events": [{
        "type": "RevisionSubmitted", "data": {"deployment": "web", "revision": 1, "selector": "",
                                              "manifests": [configmap("web", v="1")]}}]})
    assert appended.status == 409, await appended.text()
    assert "everything" in (await appended.json())["detail"]
    assert await _count(db) == before


async def test_a_frozen_target_keeps_its_revision_while_others_get_the_new_one_then_gets_it_when_the_window_closes(
        client, db, emu: Emulator):  # noqa: F811
    for name, region in (("eu-1", "eu"), ("eu-2", "eu"), ("us-1", "us")):
        await _target(client, name, region=region)
    assert (await _deploy(client, "1")).status == 201
    await eventually(lambda: _all(emu, "1", "eu-1", "eu-2", "us-1"), what="revision 1 everywhere")
    assert (await _freeze(client, "us-peak", "region=us", _window(3600))).status == 201
    second = await _deploy(client, "2")
    assert second.status == 201, await second.text()
    assert (await second.json())["matched_targets"] == ["eu-1", "eu-2", "us-1"]
    await eventually(lambda: _all(emu, "2", "eu-1", "eu-2"), what="revision 2 on the unfrozen targets")
    assert _value(emu, "us-1") == "1"
    assert "us-1" not in await _outcomes(db, 2)
    state = await (await client.get("/v1/state")).json()
    rollout = next(r for r in state["deployments"][0]["rollouts"] if r["target"] == "us-1")
    assert (rollout["desired_revision"], rollout["applied_revision"], rollout["state"]) == (2, 1, "pending")
    assert [(f["name"], f["active"], f["targets"]) for f in state["freezes"]] == [("us-peak", True, ["us-1"])]
    # The window is cut to close in a few seconds: the applier's timer, not a new event, lets it through.
    assert (await _freeze(client, "us-peak", "region=us", _window(5))).status == 200
    await eventually(lambda: _all(emu, "2", "us-1"), what="revision 2 on us-1 once its window closed")
    await eventually(lambda: _recorded(db, 2, "us-1"), what="the outcome of revision 2 on us-1 recorded")


async def _recorded(db, revision: int, target: str) -> bool:
    return target in await _outcomes(db, revision)


async def _all(emu: Emulator, value: str, *clusters: str) -> bool:  # noqa: F811
    return all(_value(emu, c) == value for c in clusters)


async def test_an_admin_override_is_recorded_and_lets_the_revision_through_the_freeze(client, db, emu):  # noqa: F811
    await _target(client, "eu-1", region="eu")
    assert (await _deploy(client, "1")).status == 201
    await eventually(lambda: _all(emu, "1", "eu-1"), what="revision 1 on eu-1")
    assert (await _freeze(client, "eu-peak", "region=eu", _window(3600))).status == 201
    deployer = await issue(client, "ci", "deployer")
    before = await _count(db)
    refused = await _deploy(client, "2", headers=deployer, override={"reason": "hotfix"})
    assert refused.status == 403 and (await refused.json())["field"] == "override"
    assert (await _deploy(client, "2", headers=deployer)).status == 409
    assert (await _deploy(client, "2", override={"reason": " "})).status == 422
    assert await _count(db) == before
    overridden = await _deploy(client, "2", override={"reason": "CVE hotfix"})
    assert overridden.status == 201, await overridden.text()
    row = await db.fetchrow("SELECT data, metadata FROM events WHERE type = 'RevisionSubmitted' ORDER BY position DESC")
    assert json.loads(row["data"])["override"] == {"reason": "CVE hotfix", "freezes": ["eu-peak"]}
    assert json.loads(row["metadata"])["actor"] == "admin-env"
    await eventually(lambda: _all(emu, "2", "eu-1"), what="the overriding revision on the frozen target")


class TestStatusDuringAFreeze:
    """``ledger status`` and ``ledger history`` read the read models: the projector runs."""

    @pytest.fixture
    def settings(self, settings: settings_mod.Settings) -> settings_mod.Settings:
        return fast_settings(settings, projector=True)

    async def test_status_shows_a_held_target_frozen_naming_the_freeze_and_history_shows_an_override(
                self, client, capsys, emu):  # noqa: F811
        await _target(client, "eu-1", region="eu")
        await _target(client, "us-1", region="us")
        assert (await _deploy(client, "1")).status == 201
        await eventually(lambda: _all(emu, "1", "eu-1", "us-1"), what="revision 1 everywhere")
        assert (await _freeze(client, "us-peak", "region=us", _window(3600))).status == 201
        assert (await _deploy(client, "2")).status == 201
        await eventually(lambda: _all(emu, "2", "eu-1"), what="revision 2 on the unfrozen target")
        shown = await client.get("/v1/deployments/web")
        assert shown.status == 200, await shown.text()
        rollouts = {r["target"]: r for r in (await shown.json())["rollouts"]}
        assert (rollouts["us-1"]["state"], rollouts["us-1"]["frozen"]["freezes"]) == ("pending", ["us-peak"])
        assert "frozen" not in rollouts["eu-1"]
        url = str(client.make_url("")).rstrip("/")
        code, out, err = await _ledger(capsys, "status", "web", "--url", url)
        assert code == 0, err
        row = next(line for line in out.splitlines() if line.startswith("us-1"))
        assert row.split()[3] == "frozen" and "held by freeze us-peak until" in row, out
        assert next(line for line in out.splitlines() if line.startswith("eu-1")).split()[3] != "frozen"

        assert (await _deploy(client, "3", override={"reason": "CVE hotfix"})).status == 201
        listed = await (await client.get("/v1/deployments/web/revisions")).json()
        assert [r["override"] for r in listed["revisions"]] == [None, None, {"reason": "CVE hotfix", "freezes": ["us-peak"]}]
        code, out, err = await _ledger(capsys, "history", "web", "--url", url)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split()[-2:] == ["FREEZE", "OVERRIDE"]
        assert lines[-1].startswith("* 3") and lines[-1].endswith("CVE hotfix (past us-peak)"), out
        await eventually(lambda: _all(emu, "3", "us-1"), what="the overriding revision on the frozen target")


def test_a_target_is_shown_frozen_only_while_it_waits_for_a_revision_the_gate_holds():
    table = _fold(events.FreezeSet(name="peak", schedule=events.FreezeSchedule(
        from_=at("2026-06-01T00:00:00Z"), until=at("2026-06-02T00:00:00Z")), selector="region=us", reason="r")).freezes
    now, us = at("2026-06-01T12:00:00Z"), {"region": "us"}

    def shown(state: str = "pending", labels: dict[str, str] = us, overridden: bool = False,
              applied: int | None = 1) -> tuple[str, ...] | None:
        found = freezerules.shown_frozen(table, labels, now, state=state, revision=2, applied_revision=applied,
                                         overridden=overridden)
        return found.freezes if found is not None else None

    assert shown() == ("peak",) and shown("applying") == ("peak",)
    assert shown(overridden=True) is None
    assert shown(labels={"region": "eu"}) is None
    assert shown(applied=2) is None
    assert [shown(state) for state in ("healthy", "progressing", "degraded", "failed", "paused")] == [None] * 5


class TestDriftDuringAFreeze:
    @pytest.fixture
    def settings(self, settings: settings_mod.Settings) -> settings_mod.Settings:
        return fast_settings(settings, resync_interval=0.3)

    async def test_drift_healing_reapplies_the_revision_a_frozen_target_keeps(self, client, db, emu):  # noqa: F811
        await _target(client, "us-1", region="us")
        await _target(client, "eu-1", region="eu")
        assert (await _deploy(client, "1")).status == 201
        await eventually(lambda: _all(emu, "1", "us-1", "eu-1"), what="revision 1")
        assert (await _freeze(client, "us-peak", "region=us", _window(3600))).status == 201
        assert (await _deploy(client, "2")).status == 201
        await eventually(lambda: _all(emu, "2", "eu-1"), what="revision 2 on eu-1")
        emu.cluster("us-1").patch_object("v1", "ConfigMap", "apps", "web", {"data": {"v": "manual"}})
        await eventually(lambda: _all(emu, "1", "us-1"), what="the drift on us-1 healed back to revision 1")
        labels = emu.cluster("us-1").get("v1", "ConfigMap", "apps", "web")["metadata"]["labels"]
        assert labels["ledger.dev/revision"] == "1"
        assert "us-1" not in await _outcomes(db, 2)


async def test_replay_shows_a_freeze_as_it_stood(client, db, emu):  # noqa: F811
    await _target(client, "us-1", region="us")
    set_ = await _freeze(client, "us-peak", "region=us", _window(3600))
    position = (await set_.json())["position"]
    removed = await client.delete("/v1/freezes/us-peak?reason=over")
    assert removed.status == 200
    then = await (await client.get(f"/v1/state?at={position}")).json()
    assert [(f["name"], f["active"], f["targets"], f["reason"], f["set_by"]) for f in then["freezes"]] == [
        ("us-peak", True, ["us-1"], "peak season", "admin-env")]
    moment = then["recorded_at"]
    assert [f["name"] for f in (await (await client.get("/v1/state", params={"at": moment})).json())["freezes"]] == [
        "us-peak"]
    assert (await (await client.get("/v1/state?at=head")).json())["freezes"] == []


def test_replay_says_a_freeze_was_not_active_at_a_moment_outside_its_window():
    state = _fold(events.TargetRegistered(target="us-1", labels={"region": "us"}, server="https://b"),
                  events.FreezeSet(name="nights", schedule=BERLIN_NIGHTS, selector="region=us", reason="r"))
    by_day = views.state(state, at("2026-06-01T12:00:00Z"))["freezes"]
    by_night = views.state(state, at("2026-06-01T21:00:00Z"))["freezes"]
    assert [(f["active"], f["targets"]) for f in by_day] == [(False, ["us-1"])]
    assert [(f["active"], f["window"]) for f in by_night] == [
        (True, {"start": "2026-06-01T20:00:00.000000Z", "end": "2026-06-02T04:00:00.000000Z"})]


async def _ledger(capsys, *argv: str) -> tuple[int, str, str]:
    from cli import main as cli_main

    code = await asyncio.to_thread(cli_main.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_cli_sets_lists_and_removes_freezes_and_an_admin_overrides_one(client, capsys, emu, tmp_path):  # noqa: F811
    await _target(client, "eu-1", region="eu")
    url = str(client.make_url("")).rstrip("/")
    code, out, err = await _ledger(capsys, "freezes", "set", "nights", "-l", "region=eu", "--cron", "0 22 * * *",
                                   "--duration", "8h", "--time-zone", "Europe/Berlin", "--reason", "quiet nights",
                                   "--url", url)
    assert code == 0, err
    assert out.startswith("freeze nights: FreezeSet at position")
    code, out, err = await _ledger(capsys, "freezes", "set", "bad", "--cron", "0 22 * * *", "--duration", "8h",
                                   "--time-zone", "Mars/Olympus", "--reason", "x", "--url", url)
    assert code == 2 and "schedule.time_zone" in err
    window = _window(3600)
    code, _, err = await _ledger(capsys, "freezes", "set", "now", "-l", "region=eu", "--from", window["from"],
                                 "--until", window["until"], "--reason", "incident", "--url", url)
    assert code == 0, err
    code, out, _ = await _ledger(capsys, "freezes", "list", "--url", url)
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"nights", "now"} and "active until" in rows["now"] and "28800s" in rows["nights"]
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: apps}\ndata: {v: '1'}\n"
    (tmp_path / "web.yaml").write_text(manifest)
    deploy = ("deploy", "web", "-f", str(tmp_path / "web.yaml"), "--selector", "", "--url", url)
    code, _, err = await _ledger(capsys, *deploy)
    assert code == 5 and "now" in err
    code, _, err = await _ledger(capsys, *deploy, "--override", "incident fix")
    assert code == 0, err
    code, out, _ = await _ledger(capsys, "freezes", "remove", "now", "--reason", "resolved", "--url", url)
    assert code == 0 and out.strip().startswith("freeze now: removed at position")
