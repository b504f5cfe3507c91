"""Batch planning on its own (ledger/planner.py): pure, so no database and a fixed clock."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from ledger import errors, hashing, planner, records

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


@dataclass
class Item:
    request: records.AppendRequest
    encoded: list[planner.Encoded]


def item(stream: str, expected: records.ExpectedVersion, *reasons: str) -> Item:
    name = stream.split("-", 1)[1]
    events = tuple(records.NewEvent(uuid.uuid4(), "DeploymentPaused", {"deployment": name, "reason": r},
                                    {"actor": "ci"}) for r in reasons)
    return Item(records.AppendRequest(stream, expected, events), planner.encode(events, {}))


def test_a_batch_gets_positions_versions_and_a_chain_that_verifies():
    head = (7, hashing.chain(hashing.GENESIS, b"seven"), NOW - dt.timedelta(seconds=1))
    batch = [item("deployment-a", 2, "x", "y"), item("deployment-b", "no_stream", "z")]
    plan = planner.plan(batch, head, {"deployment-a": 2, "deployment-b": 0}, {}, NOW)
    assert [(r[0], r[1], r[2]) for r in plan.rows] == [(8, "deployment-a", 3), (9, "deployment-a", 4),
                                                       (10, "deployment-b", 1)]
    assert [(o.positions, o.first_version, o.last_version) for o in plan.outcomes] == [  # type: ignore[union-attr]
        ((8, 9), 3, 4), ((10,), 1, 1)]
    assert plan.base == head and plan.head[0] == 10 and plan.versions == {"deployment-a": 4, "deployment-b": 1}
    prev = head[1]
    for position, stream, version, id_, type_, data, metadata, recorded_at, prev_hash, digest in plan.rows:
        assert prev_hash == prev and recorded_at == NOW
        canonical = hashing.canonical(position=position, stream=stream, version=version, id=id_, type=type_,
                                      data=json.loads(data), metadata=json.loads(metadata),
                                      recorded_at=recorded_at)
        assert hashing.chain(prev, canonical) == digest
        prev = digest


def test_time_never_goes_backwards_along_positions():
    later = NOW + dt.timedelta(minutes=5)  # the head was written by a process whose clock runs ahead
    plan = planner.plan([item("deployment-a", "any", "x")], (1, hashing.GENESIS, later), {"deployment-a": 1}, {},
                        NOW)
    assert plan.rows[0][7] == later and plan.head[2] == later


def test_a_wrong_expected_version_fails_its_request_alone():
    batch = [item("deployment-a", 5, "x"), item("deployment-b", "any", "y")]
    plan = planner.plan(batch, planner.EMPTY_LOG, {"deployment-a": 1, "deployment-b": 0}, {}, NOW)
    assert isinstance(plan.outcomes[0], errors.WrongExpectedVersion)
    assert [r[0] for r in plan.rows] == [1] and plan.rows[0][1] == "deployment-b"


def test_an_id_repeated_later_in_the_batch_is_answered_as_the_first_one():
    first = item("deployment-a", "any", "x")
    retry = Item(first.request, first.encoded)
    plan = planner.plan([first, retry], planner.EMPTY_LOG, {"deployment-a": 0}, {}, NOW)
    assert len(plan.rows) == 1
    assert plan.outcomes[1].duplicate and plan.outcomes[1].positions == (1,)  # type: ignore[union-attr]
