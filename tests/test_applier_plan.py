"""The applier's decisions, pure: what a target needs given the log so far (handlers.tracking),
how long to wait before retrying (handlers.backoff), outcome ids, and the checkpoint encoding."""

from __future__ import annotations

import datetime as dt
import random
import uuid
import zlib

import msgspec
import pytest

from handlers import backoff, checkpoint, outcomes, tracking
from ledger import events, records

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class Log:
    """Folds events into an applier state, as the applier does, one position at a time."""

    def __init__(self) -> None:
        self.state = tracking.State()
        self.versions: dict[str, int] = {}

    def add(self, event: events.Event) -> set[str]:
        category, field = events.CATEGORY[events.type_name(event)]
        stream = f"{category}-{getattr(event, field)}"
        self.versions[stream] = self.versions.get(stream, 0) + 1
        position = self.state.position + 1
        rec = records.RecordedEvent(
            position=position, stream=stream, version=self.versions[stream], id=uuid.uuid4(),
            type=events.type_name(event), data=msgspec.json.encode(events.to_data(event)).decode(),
            metadata="{}", recorded_at=T0 + dt.timedelta(seconds=position), prev_hash="", hash="")
        return tracking.fold(self.state, rec)

    def plan(self, target: str, **kw: bool) -> list[tuple[str, int, int, bool]]:
        return [(w.deployment, w.revision, w.attempt, w.resync) for w in tracking.plan(self.state, target, **kw)]


CM = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}}]


@pytest.fixture
def log() -> Log:
    log = Log()
    log.add(events.TargetRegistered(target="t", labels={"env": "prod"}, server="https://t"))
    log.add(events.RevisionSubmitted(deployment="web", revision=1, manifests=CM, selector="env=prod"))
    return log


def ok(deployment: str, revision: int, attempt: int = 1, target: str = "t") -> events.ApplySucceeded:
    return events.ApplySucceeded(deployment=deployment, revision=revision, target=target, attempt=attempt)


def failed(revision: int, attempt: int, retryable: bool) -> events.ApplyFailed:
    return events.ApplyFailed(deployment="web", revision=revision, target="t", error="no", attempt=attempt,
                              retryable=retryable)


def test_a_selected_target_needs_the_current_revision_until_it_succeeded(log: Log) -> None:
    assert log.plan("t") == [("web", 1, 1, False)]
    log.add(ok("web", 1))
    assert log.plan("t") == []
    assert log.plan("t", resync=True) == [("web", 1, 2, True)]


def test_retryable_failures_count_attempts_and_permanent_ones_wait_for_a_target_change(log: Log) -> None:
    log.add(failed(1, 1, retryable=True))
    assert log.plan("t") == [("web", 1, 2, False)]
    log.add(failed(1, 2, retryable=False))
    assert log.plan("t") == []
    assert log.plan("t", resync=True) == []
    log.add(events.TargetUpdated(target="t", labels={"env": "prod", "x": "y"}, server="https://t"))
    assert log.plan("t") == [("web", 1, 3, False)]
    log.add(failed(1, 3, retryable=False))
    log.add(events.RevisionSubmitted(deployment="web", revision=2, manifests=CM, selector="env=prod"))
    assert log.plan("t") == [("web", 2, 1, False)]


def test_deselected_removed_and_paused(log: Log) -> None:
    log.add(ok("web", 1))
    affected = log.add(events.TargetUpdated(target="t", labels={"env": "dev"}, server="https://t"))
    assert affected == {"t"}
    assert log.plan("t") == [("web", 0, 1, False)]
    log.add(ok("web", 0))
    assert log.plan("t") == []
    log.add(events.TargetUpdated(target="t", labels={"env": "prod"}, server="https://t"))
    assert log.plan("t") == [("web", 1, 2, False)]  # applied again: attempt numbers go on
    log.add(events.DeploymentPaused(deployment="web"))
    assert log.plan("t") == []
    affected = log.add(events.DeploymentRemoved(deployment="web"))
    assert affected == {"t"}
    assert log.plan("t") == [("web", 0, 2, False)]


def test_a_new_way_to_reach_the_target_means_applying_again(log: Log) -> None:
    log.add(ok("web", 1))
    log.add(events.TargetUpdated(target="t", labels={"env": "prod"}, server="https://elsewhere"))
    assert log.plan("t") == [("web", 1, 2, False)]


def test_a_retired_target_is_never_planned_and_forgets_what_it_held(log: Log) -> None:
    log.add(ok("web", 1))
    log.add(events.TargetRetired(target="t"))
    log.add(events.DeploymentRemoved(deployment="web"))
    assert log.plan("t") == []
    assert not log.state.pairs["web"]["t"].placed


def test_an_older_outcome_folded_late_does_not_undo_a_newer_one(log: Log) -> None:
    tracking.observe(log.state, ok("web", 1, attempt=2), position=50)
    log.add(failed(1, 1, retryable=True))  # position 3, folded after we took in position 50
    assert log.state.pairs["web"]["t"].outcome == "succeeded"
    assert log.plan("t") == []
    assert log.state.pairs["web"]["t"].attempts[1] == 2


def test_backoff_doubles_with_jitter_up_to_the_cap_and_honours_retry_after() -> None:
    rng = random.Random(7)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0), (1000, 60.0)):
        for _ in range(50):
            wait = backoff.delay(attempt, base=1.0, cap=60.0, rng=rng)
            assert ceiling / 2 <= wait <= ceiling
    assert backoff.delay(1, base=1.0, cap=60.0, retry_after=7, rng=rng) >= 7
    assert backoff.delay(1, base=1.0, cap=5.0, retry_after=3600, rng=rng) == 5.0


def test_outcome_ids_are_deterministic_and_distinct() -> None:
    first = outcomes.event_id("web", 3, "eu-1", 1)
    assert first == outcomes.event_id("web", 3, "eu-1", 1)
    others = {outcomes.event_id("web", 3, "eu-1", 2), outcomes.event_id("web", 0, "eu-1", 1),
              outcomes.event_id("web", 3, "eu-2", 1), outcomes.event_id("api", 3, "eu-1", 1)}
    assert first not in others and len(others) == 4
    event = outcomes.new_event(ok("web", 3, target="eu-1"))
    assert event.id == first and event.type == "ApplySucceeded"
    assert outcomes.new_event(ok("web", 3, target="eu-1")).data == event.data  # content is deterministic too


def test_the_checkpoint_encoding_round_trips(log: Log) -> None:
    log.add(ok("web", 1))
    packed = checkpoint.pack(log.state)
    restored = msgspec.msgpack.decode(zlib.decompress(zlib.compress(packed)), type=tracking.State)
    assert restored == log.state
    assert checkpoint.FORMAT.startswith(f"{checkpoint.VERSION}-")
