"""The one decoder of event data (ledger.events.decode): typed errors, bounds of the read models,
and every reader (fold, applier) decoding alike."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from handlers import tracking
from ledger import errors, events, records
from projections import fleet

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_an_unknown_type_is_its_own_error():
    with pytest.raises(events.UnknownType) as caught:
        events.decode("Nope", b"{}")
    assert caught.value.type == "Nope" and "RevisionSubmitted" in str(caught.value)
    assert not isinstance(caught.value, events.InvalidData)


@pytest.mark.parametrize(("data", "path", "reason"), [
    (b'{"deployment": "web", "revision": 2147483648, "manifests": []}', "$.revision", "<= 2147483647"),
    (b'{"deployment": "web", "revision": -5, "manifests": []}', "$.revision", ">= 0"),
    (b'{"deployment": "web", "revision": 1}', "$", "missing required field `manifests`"),
    (b'{"deployment": 7, "revision": 1, "manifests": []}', "$.deployment", "Expected `str`"),
    (b'[1]', "$", "Expected `object`"),
    (b'{"deployment": ', "$", "not JSON"),
])
def test_invalid_data_names_the_path_and_the_reason(data, path, reason):
    with pytest.raises(events.InvalidData) as caught:
        events.decode("RevisionSubmitted", data)
    assert (caught.value.path, caught.value.type) == (path, "RevisionSubmitted")
    assert reason in caught.value.reason


def test_the_pure_fold_passes_what_does_not_decode_and_the_applier_stops_before_it():
    poison = records.RecordedEvent(1, "deployment-web", 1, uuid.uuid4(), "RevisionSubmitted",
                                   '{"deployment": "web", "revision": 2147483648, "manifests": []}', "{}",
                                   T0, "", "")
    good = records.RecordedEvent(2, "target-eu-1", 1, uuid.uuid4(), "TargetRegistered",
                                 '{"target": "eu-1", "server": "https://127.0.0.1:6443"}', "{}", T0, "", "")
    state = fleet.empty()
    for rec in (poison, good):
        fleet.apply_recorded(state, rec)
    assert state.deployments == {} and list(state.targets) == ["eu-1"] and state.position == 2
    # The readers that need every event stop at it (projections/undecodable.py, tests/test_undecodable.py).
    applier = tracking.State()
    with pytest.raises(errors.Undecodable) as stopped:
        tracking.fold(applier, poison)
    assert (stopped.value.position, applier.fleet.position) == (1, 0) and "$.revision" in stopped.value.reason
    tracking.fold(applier, good)
    assert list(applier.fleet.targets) == ["eu-1"]
