"""Progressive rollouts as pure code: wave membership, the waves fold, and what the driver decides.

No database: events are folded through projections.fleet as the projector and the applier fold
them, health reports go in as the fold takes them, and ``rollout_decisions.decide`` is asked what
to record at a given time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from ledger import events, rollouts
from projections import commands, fleet, rollout_commands, rollout_decisions, strategies, waves

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def progress(d: fleet.Deployment) -> waves.Progress:
    assert d.progress is not None
    return d.progress


def strategy(**raw: Any) -> rollouts.Strategy:
    return msgspec.convert(raw, rollouts.Strategy)


class Log:
    """A fleet folded event by event, with positions and times the test chooses."""

    def __init__(self) -> None:
        self.fleet = fleet.empty()
        self.position = 0
        self.now = T0

    def add(self, event: events.AnyEvent, *, actor: str | None = "ledger", seconds: float = 0.0,
            on_behalf_of: str | None = None) -> None:
        self.position += 1
        self.now += dt.timedelta(seconds=seconds)
        fleet.apply(self.fleet, event, fleet.Meta(self.position, "s", self.position, self.now, actor, on_behalf_of))

    def healthy(self, deployment: str, revision: int, target: str, *, seconds: float = 1.0) -> None:
        self.position += 1
        self.now += dt.timedelta(seconds=seconds)
        waves.observe(progress(self.fleet.deployments[deployment]), revision, target, "healthy", self.now,
                      self.position)

    def degraded(self, deployment: str, revision: int, target: str) -> None:
        self.position += 1
        self.now += dt.timedelta(seconds=1)
        waves.observe(progress(self.fleet.deployments[deployment]), revision, target, "degraded", self.now,
                      self.position)

    def decide(self, deployment: str = "web", later: float = 0.0) -> rollout_decisions.Decision:
        return rollout_decisions.decide(self.fleet.deployments[deployment],
                                        self.now + dt.timedelta(seconds=later))

    def record(self, decision: rollout_decisions.Decision) -> list[str]:
        for event in decision.record:
            self.add(event)
        return [events.type_name(e) for e in decision.record]


def fleet_of(log: Log, names: list[str], **labels: dict[str, str]) -> None:
    for name in names:
        log.add(events.TargetRegistered(target=name, labels=labels.get(name.replace("-", "_"), {}),
                                        credentials=name))


def submit(log: Log, the_strategy: rollouts.Strategy | None, *, actor: str = "ci",
           on_behalf_of: str | None = None, manifests: list[dict[str, Any]] | None = None) -> events.RevisionSubmitted:
    deployment = log.fleet.deployments.get("web")
    event = commands.submit_revision(deployment, commands.SubmitRevision(
        "web", manifests or [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}], "",
        strategy=the_strategy), log.fleet.targets)
    log.add(event, actor=actor, on_behalf_of=on_behalf_of)
    return event


def test_membership_follows_the_order_label_then_the_name_and_sizes_round_up():
    labels = {"a": {}, "b": {strategies.ORDER_LABEL: "10"}, "c": {strategies.ORDER_LABEL: "9"},
              "d": {"ring": "canary"}, "e": {}, "f": {strategies.ORDER_LABEL: "x"}}
    found = strategies.assign(strategy(waves=[{"name": "canary", "selector": "ring=canary"},
                                              {"name": "early", "size": "33%"}, {"name": "rest"}]),
                              list(labels), labels)
    assert [(w.name, w.targets) for w in found] == [("canary", ["d"]), ("early", ["c", "b"]),
                                                    ("rest", ["f", "a", "e"])]


def test_targets_no_wave_takes_join_the_last_wave_and_a_percentage_takes_at_least_one():
    names = [f"t{i:02}" for i in range(20)]
    found = strategies.assign(strategy(waves=[{"name": "one", "size": 1}, {"name": "five", "size": "5%"},
                                              {"name": "quarter", "size": "25%"}, {"name": "last", "size": 1}]),
                              names, {})
    assert [len(w.targets) for w in found] == [1, 1, 5, 13]
    assert sorted(t for w in found for t in w.targets) == names


@pytest.mark.parametrize(("raw", "field"), [
    ({"waves": [{"name": "a"}, {"name": "a"}]}, "strategy.waves[1].name"),
    ({"waves": [{"name": "a", "selector": "ring in (x"}]}, "strategy.waves[0].selector"),
    ({"waves": [{"name": "a", "size": "150%"}]}, "strategy.waves[0].size"),
    ({"waves": [{"name": "a"}], "approval": ["b"]}, "strategy.approval[0]"),
])
def test_an_invalid_strategy_is_refused_naming_the_field(raw, field):
    with pytest.raises(commands.Invalid) as caught:
        commands.waves_of(strategy(**raw), ["x"], {})
    assert caught.value.field == field


def test_three_waves_start_one_after_another_as_each_becomes_healthy():
    log = Log()
    fleet_of(log, ["a", "b", "c", "d"])
    submit(log, strategy(waves=[{"name": "canary", "size": 1}, {"name": "early", "size": 1}, {"name": "rest"}]))
    d = log.fleet.deployments["web"]
    assert [waves.revision_for(d.progress, 1, t) for t in "abcd"] == [0, 0, 0, 0]
    assert log.record(log.decide()) == ["WaveStarted"]
    assert [waves.revision_for(d.progress, 1, t) for t in "abcd"] == [1, 0, 0, 0]
    assert progress(d).last_released == ["a"]
    assert log.record(log.decide()) == []  # nothing twice
    log.healthy("web", 1, "a")
    assert log.record(log.decide()) == ["WaveCompleted", "WaveStarted"]
    assert [waves.revision_for(d.progress, 1, t) for t in "abcd"] == [1, 1, 0, 0]
    log.healthy("web", 1, "b")
    assert log.record(log.decide()) == ["WaveCompleted", "WaveStarted"]
    for t in "cd":
        log.healthy("web", 1, t)
    assert log.record(log.decide()) == ["WaveCompleted", "RolloutCompleted"]
    assert progress(d).phase == "completed"
    assert log.record(log.decide()) == []


def test_the_soak_is_counted_from_recorded_times_and_promote_ends_it():
    log = Log()
    fleet_of(log, ["a", "b"])
    submit(log, strategy(waves=[{"name": "canary", "size": 1}, {"name": "rest"}], soak_seconds=600))
    log.record(log.decide())
    log.healthy("web", 1, "a", seconds=5)
    settled = log.now
    decision = log.decide()
    assert log.record(decision) == ["WaveCompleted"]
    assert decision.due == settled + dt.timedelta(seconds=600)
    # A restart later re-folds the same log: the soak still ends at the same moment, nothing doubles.
    assert log.decide(later=300).record == [] and log.decide(later=300).due == decision.due
    assert [events.type_name(e) for e in log.decide(later=600).record] == ["WaveStarted"]
    d = log.fleet.deployments["web"]
    promoted = rollout_commands.promote("web", d, "rest")
    log.add(promoted, actor="bob")
    assert progress(d).waves[1].promoted_by == "bob"
    assert rollout_commands.id_for(promoted) == rollout_decisions.event_id("web", 1, "WaveStarted", "rest")
    assert log.decide(later=600).record == []


def test_a_failing_canary_halts_the_rollout_and_nothing_else_is_released():
    log = Log()
    fleet_of(log, ["a", "b", "c"])
    submit(log, strategy(waves=[{"name": "canary", "size": 1}, {"name": "rest"}]))
    log.record(log.decide())
    log.degraded("web", 1, "a")
    decision = log.decide()
    assert log.record(decision) == ["RolloutHalted"]
    halted = decision.record[0]
    assert isinstance(halted, events.RolloutHalted) and halted.failed_targets == ["a"]
    d = log.fleet.deployments["web"]
    assert [waves.revision_for(d.progress, 1, t) for t in "abc"] == [1, 0, 0]
    assert log.decide().record == [] and log.decide().rollback is None  # on_failure: halt
    log.add(rollout_commands.resume("web", d, "known issue"), actor="bob")
    assert log.record(log.decide()) == ["WaveCompleted", "WaveStarted"]  # the failed one is forgiven


def test_rollback_goes_to_the_last_healthy_revision_and_only_to_the_targets_reached():
    log = Log()
    fleet_of(log, ["a", "b", "c"])
    submit(log, None)
    for t in "abc":
        log.healthy("web", 1, t)
    submit(log, strategy(waves=[{"name": "canary", "size": 1}, {"name": "rest"}], on_failure="rollback"),
           manifests=[{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}}])
    log.record(log.decide())
    log.degraded("web", 2, "a")
    log.record(log.decide())
    decision = log.decide()
    assert decision.rollback is not None
    assert (decision.rollback.to_revision, decision.rollback.revision) == (1, 3)
    assert decision.rollback.matched_targets == ["a"]
    assert decision.rollback_cause == rollout_decisions.event_id("web", 2, "RolloutHalted", 1)
    log.add(decision.rollback)
    d = log.fleet.deployments["web"]
    assert log.record(log.decide()) == ["RolloutSuperseded", "WaveStarted"]
    assert [waves.revision_for(d.progress, 3, t) for t in "abc"] == [3, 1, 1]


def test_a_new_revision_supersedes_a_rollout_in_flight_and_keeps_unreached_targets_where_they_were():
    log = Log()
    fleet_of(log, ["a", "b"])
    submit(log, None)
    submit(log, strategy(waves=[{"name": "canary", "size": 1}, {"name": "rest"}]))
    log.record(log.decide())
    submit(log, strategy(waves=[{"name": "canary", "size": 1}, {"name": "rest"}]))
    d = log.fleet.deployments["web"]
    assert [waves.revision_for(d.progress, 3, t) for t in "ab"] == [2, 1]
    assert log.record(log.decide()) == ["RolloutSuperseded", "WaveStarted"]
    assert log.record(log.decide()) == []


def test_a_target_that_starts_matching_later_joins_the_last_wave():
    log = Log()
    fleet_of(log, ["a"])
    submit(log, strategy(waves=[{"name": "canary", "size": 1}, {"name": "rest"}]))
    fleet_of(log, ["z"])
    d = log.fleet.deployments["web"]
    assert waves.revision_for(d.progress, 1, "z") == 0
    log.record(log.decide())
    log.healthy("web", 1, "a")
    decision = log.decide()
    log.record(decision)
    assert decision.record[-1] == events.WaveStarted(deployment="web", revision=1, wave="rest", targets=["z"])
    assert waves.revision_for(d.progress, 1, "z") == 1


def test_max_concurrency_releases_members_as_earlier_ones_settle():
    log = Log()
    fleet_of(log, ["a", "b", "c"])
    submit(log, strategy(waves=[{"name": "all", "max_concurrency": 2}]))
    log.record(log.decide())
    d = log.fleet.deployments["web"]
    assert [waves.revision_for(d.progress, 1, t) for t in "abc"] == [1, 1, 0]
    log.healthy("web", 1, "a")
    assert progress(d).last_released == ["c"] and waves.revision_for(d.progress, 1, "c") == 1


def test_four_eyes_refuses_the_submitter_and_whom_it_acted_for_but_not_an_admin():
    log = Log()
    fleet_of(log, ["a"])
    submit(log, strategy(waves=[{"name": "canary"}], approval=["canary"]), actor="ci", on_behalf_of="alice")
    log.record(log.decide())
    d = log.fleet.deployments["web"]
    assert progress(d).waves[0].approval_requested
    for by, for_ in (("ci", None), ("alice", None), ("bob", "alice")):
        with pytest.raises(rollout_commands.Forbidden):
            rollout_commands.approve("web", d, "canary", by, admin=False, reason="", on_behalf_of=for_)
    granted = rollout_commands.approve("web", d, "canary", "bob", admin=False, reason="looks fine")
    assert rollout_commands.approve("web", d, "canary", "ci", admin=True, reason="").by == "ci"
    log.add(granted, actor="bob")
    with pytest.raises(commands.Conflict):
        rollout_commands.approve("web", d, "canary", "carol", admin=False, reason="")
    assert log.record(log.decide()) == ["WaveStarted"]
