"""A fleet keeps equal target labels and access once (projections/compact.py), with the same meaning.

Folded from stored rows as the projector, the applier and replay fold them (``fleet.fold_row``), so
each target's labels and access come from a decoding of their own, as they do in a service.
"""

from __future__ import annotations

import datetime as dt
import tracemalloc

import msgspec

from projections import fleet, snapshots

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _register(f: fleet.Fleet, name: str, labels: dict[str, str], credentials: str = "bench",
              kind: str = "TargetRegistered") -> None:
    data = msgspec.json.encode({"target": name, "labels": labels, "credentials": credentials}).decode()
    fleet.fold_row(f, f.position + 1, f"target-{name}", 1, kind, data, "{}", T0)


def test_targets_with_equal_labels_and_access_share_them():
    f = fleet.empty()
    _register(f, "a", {"region": "eu", "tier": "edge"})
    _register(f, "b", {"region": "eu", "tier": "edge"})
    _register(f, "c", {"tier": "edge", "region": "eu"}, credentials="other")
    a, b, c = (f.targets[n] for n in "abc")
    assert a.labels is b.labels and a.access is b.access
    assert list(c.labels) == ["tier", "region"]  # the order the client gave
    assert c.labels == a.labels and c.access != a.access and c.access.credentials == "other"


def test_relabelling_one_target_leaves_the_others_as_they_were():
    f = fleet.empty()
    _register(f, "a", {"region": "eu"})
    _register(f, "b", {"region": "eu"})
    _register(f, "a", {"region": "us"}, credentials="moved", kind="TargetUpdated")
    assert f.targets["a"].labels == {"region": "us"} and f.targets["a"].access.credentials == "moved"
    assert f.targets["b"].labels == {"region": "eu"} and f.targets["b"].access.credentials == "bench"


def test_a_target_of_a_large_fleet_costs_a_few_hundred_bytes():
    f = fleet.empty()
    rows = [msgspec.json.encode({"target": f"edge-{i}", "labels": {"bench": "yes"}, "credentials": "bench"}).decode()
            for i in range(5000)]
    tracemalloc.start()
    try:
        for i, data in enumerate(rows):
            fleet.fold_row(f, i + 1, f"target-edge-{i}", 1, "TargetRegistered", data, "{}", T0)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held / len(rows) < 350, held / len(rows)  # 602 bytes each with a dictionary and an access apiece


def test_a_fleet_decoded_from_a_snapshot_shares_them_too():
    f = fleet.empty()
    _register(f, "a", {"region": "eu"})
    _register(f, "b", {"region": "eu"})
    loaded = snapshots.decode(snapshots.encode(f))
    assert loaded.targets["a"].labels is loaded.targets["b"].labels
    assert loaded.targets["a"].access is loaded.targets["b"].access
    assert loaded == f
