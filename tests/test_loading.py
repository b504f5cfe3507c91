"""Loading a deployment with its rollout stream for a command: a long rollout history is folded off
the event loop (projections/loading.py) and gives the same state and expected version as a short one."""

from __future__ import annotations

import uuid

from ledger import records
from projections import loading, targetindex
from tests.projected import register, submit


async def test_a_rollout_history_longer_than_the_inline_limit_folds_to_every_outcome_and_its_last_version(
        client, store):
    for name in ("a", "b", "c"):
        await register(client, name, env="prod")
    await submit(client, "web", selector="env=prod")
    count = loading.INLINE_ROWS + 7
    outcomes = [records.NewEvent(uuid.uuid4(), "ApplySucceeded", {
        "deployment": "web", "revision": 1, "target": "abc"[i % 3], "attempt": i // 3 + 1})
        for i in range(count)]
    result = await store.append("rollout-web", "any", outcomes)
    await store.append("deployment-web", "any", [records.NewEvent(uuid.uuid4(), "DeploymentPaused", {
        "deployment": "web", "reason": "after the outcomes"})])
    state, stream = await loading.deployment_with_rollout(store, targetindex.Index(5.0), "web")
    assert (stream.version, stream.position) == (count, result.positions[-1])
    deployment = state.deployments["web"]
    assert deployment.paused
    assert {t: (r.applied_revision, r.attempts) for t, r in deployment.rollouts.items()} == {
        "a": (1, (count - 1) // 3 + 1), "b": (1, (count - 2) // 3 + 1), "c": (1, (count - 3) // 3 + 1)}


async def test_a_rollback_folds_into_the_state_a_rollout_command_decides_on(store):
    # The rollout streams' query added the elided manifests to RolledBack as well, whose data has
    # none: the event did not decode and was passed by, so commands saw the revision before it.
    await store.append("deployment-web", "any", [records.NewEvent(uuid.uuid4(), "RevisionSubmitted", {
        "deployment": "web", "revision": 1, "manifests": [], "selector": ""})])
    await store.append("deployment-web", "any", [records.NewEvent(uuid.uuid4(), "RolledBack", {
        "deployment": "web", "revision": 2, "to_revision": 1})])
    state, _ = await loading.deployment_with_rollout(store, targetindex.Index(5.0), "web")
    assert state.deployments["web"].current_revision == 2
    assert state.deployments["web"].revisions[2].rolled_back_to == 1
