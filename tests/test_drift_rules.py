"""Drift, pure: which fields differ between a live object and what applying its revision would make
it (handlers.drift.differences), when drift is a new occurrence (handlers.drift.news), and how the
applier's fold remembers recorded drift (handlers.tracking)."""

from __future__ import annotations

from typing import Any

import pytest

from handlers import drift, tracking
from ledger import events
from tests.test_applier_plan import Log, log, ok  # noqa: F401 - fixture

LIVE: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "apps", "uid": "u-1", "resourceVersion": "7", "generation": 3,
                 "creationTimestamp": "2026-01-01T00:00:00Z",
                 "labels": {"ledger.dev/deployment": "web", "ledger.dev/revision": "1"},
                 "managedFields": [{"manager": "ledger", "operation": "Apply"}]},
    "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}},
    "status": {"readyReplicas": 1},
}


def changed(**parts: Any) -> dict[str, Any]:
    """LIVE with top-level parts replaced (deep enough for these cases)."""
    return {**LIVE, **parts}


@pytest.mark.parametrize(("after", "fields"), [
    (LIVE, []),
    # What the server keeps for itself is no drift: resourceVersion, generation, managedFields, status.
    (changed(metadata={**LIVE["metadata"], "resourceVersion": "9", "generation": 4, "managedFields": []},
             status={"readyReplicas": 0}), []),
    (changed(spec={**LIVE["spec"], "replicas": 3}), ["spec.replicas"]),
    # Lists are compared whole, as the emulator's server-side apply treats them.
    (changed(spec={**LIVE["spec"], "template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}}),
     ["spec.template.spec.containers"]),
    # A key holding a dot is written in brackets.
    (changed(metadata={**LIVE["metadata"], "labels": {"ledger.dev/deployment": "web"}}),
     ["metadata.labels[ledger.dev/revision]"]),
    # A field on one side only differs too; paths are sorted.
    (changed(spec={"replicas": 1, "paused": True, "template": LIVE["spec"]["template"]}), ["spec.paused"]),
    (changed(data={"z": "1", "a": "2"}), ["data.a", "data.z"]),
])
def test_differences_name_the_fields_whose_values_differ(after: dict[str, Any], fields: list[str]) -> None:
    assert drift.differences(LIVE, after) == fields


def test_differences_are_bounded_and_say_how_many_were_left_out() -> None:
    after = changed(data={f"k{n:03d}": "v" for n in range(120)})
    found = drift.differences(LIVE, after)
    assert len(found) == drift.MAX_FIELDS
    assert found[0] == "data.k000"
    assert found[-1] == f"(and {120 - drift.MAX_FIELDS + 1} more)"


REF = events.ObjectRef(api_version="v1", kind="ConfigMap", name="a", namespace="apps")
OTHER = events.ObjectRef(api_version="v1", kind="ConfigMap", name="b", namespace="apps")


def test_news_records_drift_not_remembered_with_the_same_fields() -> None:
    remembered = {drift.key(REF): tracking.Seen(["data.v"], 10)}
    same, other_fields, new_object = (drift.Found(REF, ["data.v"]), drift.Found(REF, ["data.v", "data.w"]),
                                      drift.Found(OTHER, ["(deleted)"]))
    assert drift.news(remembered, set(), [same], []) == ([], set())
    assert drift.news(remembered, set(), [other_fields, new_object], []) == ([other_fields, new_object], set())


def test_news_ends_an_occurrence_when_its_object_is_found_as_applied() -> None:
    remembered = {drift.key(REF): tracking.Seen(["data.v"], 10)}
    assert drift.news(remembered, set(), [], [drift.key(REF), drift.key(OTHER)]) == ([], {10})
    again = drift.Found(REF, ["data.v"])
    assert drift.news(remembered, {10}, [again], []) == ([again], set())


def _drift(fields: list[str], ref: events.ObjectRef = REF) -> events.DriftDetected:
    return events.DriftDetected(deployment="web", revision=1, target="t", object=ref, fields=fields)


def test_the_fold_remembers_drift_until_an_apply_succeeds(log: Log) -> None:  # noqa: F811
    log.add(ok("web", 1))
    log.add(_drift(["data.v"]))
    position = log.state.position
    log.add(_drift(["(deleted)"], OTHER))
    p = tracking.pair(log.state, "web", "t")
    assert p.drift == {drift.key(REF): tracking.Seen(["data.v"], position),
                       drift.key(OTHER): tracking.Seen(["(deleted)"], position + 1)}
    assert p.drifts == 2
    # The applier takes in its own append first and meets it again in the log: counted once.
    tracking.observe_drift(log.state, _drift(["(deleted)"], OTHER), position + 1)
    assert p.drifts == 2
    log.add(ok("web", 1, attempt=2))
    assert p.drift == {} and p.drifts == 2


def test_event_ids_follow_the_pairs_count_of_recorded_drift(log: Log) -> None:  # noqa: F811
    p = tracking.pair(log.state, "web", "t")
    first = drift.new_events(p, [_drift(["data.v"]), _drift(["(deleted)"], OTHER)])
    assert [e.id for e in first] == [drift.event_id("web", 1, "t", 1), drift.event_id("web", 1, "t", 2)]
    log.add(_drift(["data.v"]))
    assert drift.new_events(p, [_drift(["x"])])[0].id == drift.event_id("web", 1, "t", 2)
    assert first[0].type == "DriftDetected" and first[0].metadata["actor"] == "applier"


def test_self_heal_is_the_revisions_and_a_rollback_restores_it(log: Log) -> None:  # noqa: F811
    assert tracking.self_heal(log.state, "web", 1)
    log.add(events.RevisionSubmitted(deployment="web", revision=2, manifests=[], self_heal=False))
    assert not tracking.self_heal(log.state, "web", 2)
    log.add(events.RolledBack(deployment="web", revision=3, to_revision=2))
    assert not tracking.self_heal(log.state, "web", 3)
    log.add(events.RolledBack(deployment="web", revision=4, to_revision=1))
    assert tracking.self_heal(log.state, "web", 4)
