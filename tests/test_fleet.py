"""The fleet fold, without a database: targeting, rollout states, rollback, pause, removal."""

from __future__ import annotations

import uuid

from ledger import events, records
from projections import fleet, snapshots
from tests.fleetdata import T0, Log, manifest


def test_a_revision_targets_exactly_the_matching_live_targets():
    log = Log()
    log.target("eu-1", region="eu")
    log.target("eu-2", region="eu")
    log.target("us-1", region="us")
    log.add(events.TargetRetired(target="eu-2"))
    f = log.revision("web", "region=eu")
    assert fleet.matches(f, "web") == ["eu-1"]
    assert fleet.desired(f, "web") == {"eu-1": 1}
    assert f.deployments["web"].rollouts["eu-1"].state == "pending"
    assert f.deployments["web"].revisions[1].actor == "alice"


def test_relabelling_and_retiring_a_target_move_its_rollouts():
    log = Log()
    log.target("a", region="eu")
    log.revision("web", "region=eu")
    f = log.add(events.TargetUpdated(target="a", labels={"region": "us"}, server="https://a"))
    assert fleet.desired(f, "web") == {}
    log.target("b", region="eu")
    f = log.add(events.TargetUpdated(target="a", labels={"region": "eu"}, server="https://a"))
    assert fleet.desired(f, "web") == {"a": 1, "b": 1}
    f = log.add(events.TargetRetired(target="b"))
    assert fleet.desired(f, "web") == {"a": 1}
    assert f.targets["b"].retired and f.targets["b"].version == 2


def test_outcomes_drive_the_rollout_state_of_the_desired_revision():
    log = Log()
    log.target("a", env="prod")
    log.target("b", env="prod")
    log.target("c", env="prod")
    log.revision("web", "env=prod")
    log.add(events.ApplySucceeded(deployment="web", revision=1, target="a",
                                  objects=[events.ObjectRef("v1", "ConfigMap", "web", "apps")]))
    log.add(events.ApplyFailed(deployment="web", revision=1, target="b", error="503", retryable=True))
    f = log.add(events.ApplyFailed(deployment="web", revision=1, target="c", error="invalid", attempt=2))
    rollouts = f.deployments["web"].rollouts
    assert [rollouts[t].state for t in "abc"] == ["progressing", "applying", "failed"]
    assert (rollouts["a"].applied_revision, rollouts["a"].objects_applied) == (1, 1)
    assert (rollouts["c"].last_error, rollouts["c"].attempts) == ("invalid", 2)
    assert rollouts["c"].last_attempt_at == T0.replace(second=7)


def test_a_new_revision_is_pending_everywhere_while_the_old_one_stays_applied():
    log = Log()
    log.target("a", env="prod")
    log.revision("web", "env=prod")
    log.add(events.ApplySucceeded(deployment="web", revision=1, target="a"))
    f = log.revision("web", "env=prod", data="2")
    rollout = f.deployments["web"].rollouts["a"]
    assert (rollout.desired_revision, rollout.applied_revision, rollout.state) == (2, 1, "pending")
    # A late outcome for the old revision does not settle the new one.
    f = log.add(events.ApplyFailed(deployment="web", revision=1, target="a", error="late"))
    assert (rollout.state, rollout.last_error) == ("pending", None)


def test_pause_shows_every_rollout_paused_and_resume_restores_the_outcome():
    log = Log()
    log.target("a", env="prod")
    log.target("b", env="prod")
    log.revision("web", "env=prod")
    log.add(events.ApplySucceeded(deployment="web", revision=1, target="a"))
    f = log.add(events.DeploymentPaused(deployment="web", reason="incident"))
    assert {r.state for r in f.deployments["web"].rollouts.values()} == {"paused"}
    assert fleet.desired(f, "web") == {"a": 1, "b": 1}
    f = log.add(events.DeploymentResumed(deployment="web"))
    assert [f.deployments["web"].rollouts[t].state for t in "ab"] == ["progressing", "pending"]
    assert f.deployments["web"].pause_reason == ""


def test_removal_empties_desired_state_and_a_new_revision_revives_with_the_next_number():
    log = Log()
    log.target("a", env="prod")
    log.revision("web", "env=prod")
    f = log.add(events.DeploymentRemoved(deployment="web"))
    assert fleet.desired(f, "web") == {} and f.deployments["web"].removed
    assert fleet.matches(f, "web") == ["a"]
    f = log.revision("web", "env=prod")
    assert f.deployments["web"].current_revision == 2
    assert fleet.desired(f, "web") == {"a": 2} and not f.deployments["web"].removed


def test_rollback_restores_manifests_and_selector_and_shares_the_bytes():
    log = Log()
    log.target("a", env="prod")
    log.target("b", env="staging")
    log.revision("web", "env=prod", data="one")
    log.revision("web", "env=staging", data="two")
    f = log.add(events.RolledBack(deployment="web", revision=3, to_revision=1, matched_targets=["a"]))
    web = f.deployments["web"]
    assert (web.current_revision, web.selector, web.revisions[3].rolled_back_to) == (3, "env=prod", 1)
    assert web.revisions[3].manifests is web.revisions[1].manifests
    assert fleet.manifests_at(f, "web", 3) == [manifest("web", k="one")]
    assert fleet.desired(f, "web") == {"a": 3}


def test_unchanged_parts_of_consecutive_revisions_are_shared_objects():
    log = Log()
    log.target("a", env="prod")
    log.revision("web", "env=prod", data="1")
    f = log.revision("web", "env=prod", data="2")
    first, second = f.deployments["web"].revisions[1], f.deployments["web"].revisions[2]
    assert second.matched_targets is first.matched_targets
    assert second.manifests != first.manifests


def test_an_invalid_selector_in_the_log_matches_nothing():
    log = Log()
    log.target("a", env="prod")
    f = log.add(events.RevisionSubmitted(deployment="web", revision=1, manifests=[], selector="env in ("))
    assert fleet.desired(f, "web") == {}


def test_stored_rows_decode_through_the_catalogue_and_bad_ones_only_advance_the_position():
    f = fleet.empty()
    rec = records.RecordedEvent(
        position=1, stream="target-a", version=1, id=uuid.uuid4(), type="TargetRegistered",
        data='{"target": "a", "labels": {"env": "prod"}}', metadata='{"actor": "bob", "extra": 1}',
        recorded_at=T0, prev_hash="0" * 64, hash="0" * 64)
    fleet.apply_recorded(f, rec)
    assert f.targets["a"].labels == {"env": "prod"}
    fleet.apply_row(f, 2, "target-a", 2, "TargetRegistered", '{"target": 5}', "{}", T0)
    fleet.apply_row(f, 3, "target-a", 3, "SomethingFromTheFuture", "{}", "{}", T0)
    assert f.position == 3 and f.targets["a"].version == 1


def test_a_snapshot_round_trip_and_a_copy_equal_the_original():
    log = Log()
    log.target("a", env="prod")
    log.revision("web", "env=prod")
    f = log.add(events.ApplySucceeded(deployment="web", revision=1, target="a"))
    assert snapshots.decode(snapshots.encode(f)) == f
    clone = fleet.copy(f)
    log.add(events.DeploymentPaused(deployment="web"))
    assert clone != f and clone.deployments["web"].paused is False
