"""Audit replay against the read models, over random command histories (hypothesis):
``at=head`` equals the live read models, ``at=N`` equals read models rebuilt from events 1..N."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import access, credentials, events, notifier, records, store
from projections import commands, fleet, progress, replay, runner
from tests import pgfixtures
from tests.fleetdata import T0, manifest
from tests.projected import live_client, read, register, submit  # noqa: F401 - fixture
from tests.test_projector import read_models, replayed

TARGETS = ("t0", "t1", "t2", "t3")
DEPLOYMENTS = ("web", "api")
CATALOGUE = {name: credentials.Credential(name=name, server=f"https://{name}:6443") for name in TARGETS}
SELECTORS = (None, "", "env=prod", "env!=prod", "region in (eu)", "!region,env")
OUTCOMES = ("succeeded", "retrying", "failed", "healthy", "degraded")

labels = st.fixed_dictionaries({}, optional={"env": st.sampled_from(["prod", "dev"]),
                                             "region": st.sampled_from(["eu", "us"])})
ops = st.one_of(
    st.tuples(st.just("register"), st.sampled_from(TARGETS), labels),
    st.tuples(st.just("retire"), st.sampled_from(TARGETS)),
    st.tuples(st.just("submit"), st.sampled_from(DEPLOYMENTS), st.sampled_from(SELECTORS), st.integers(0, 3)),
    st.tuples(st.just("rollback"), st.sampled_from(DEPLOYMENTS), st.integers(1, 4)),
    st.tuples(st.sampled_from(["pause", "resume", "remove"]), st.sampled_from(DEPLOYMENTS)),
    st.tuples(st.just("outcome"), st.sampled_from(DEPLOYMENTS), st.sampled_from(TARGETS),
              st.sampled_from(OUTCOMES), st.booleans()),
)



@st.composite
def histories(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Registrations and first revisions, then anything, outcomes weighted up."""
    prelude: list[tuple[Any, ...]] = [("register", name, draw(labels)) for name in TARGETS]
    prelude += [("submit", name, draw(st.sampled_from(SELECTORS[1:])), 0) for name in DEPLOYMENTS]
    outcome = st.tuples(st.just("outcome"), st.sampled_from(DEPLOYMENTS), st.sampled_from(TARGETS),
                        st.sampled_from(OUTCOMES), st.booleans())
    return prelude + draw(st.lists(st.one_of(ops, outcome, outcome), min_size=1, max_size=40))


def decide(model: fleet.Fleet, op: tuple[Any, ...]) -> events.AnyEvent | None:
    """The event a command would record on ``model``, or None when it is refused."""
    kind, name = op[0], op[1]
    deployment = model.deployments.get(name)
    try:
        match kind:
            case "register":
                return commands.register_target(model.targets.get(name), commands.RegisterTarget(
                    name, op[2], access.Access(credentials=name)), CATALOGUE)
            case "retire":
                return commands.retire_target(name, model.targets.get(name))
            case "submit":
                return commands.submit_revision(deployment, commands.SubmitRevision(
                    name, [manifest(name, k=str(op[3]))], op[2], progress_deadline_seconds=60 * (op[3] + 1),
                    self_heal=op[3] % 2 == 0), model.targets)
            case "rollback":
                return commands.roll_back(deployment, commands.RollBack(name, op[2]), model.targets)
            case "pause":
                return commands.pause(name, deployment, "")
            case "resume":
                return commands.resume(name, deployment, "")
            case "remove":
                return commands.remove(name, deployment, "")
    except commands.DomainError:
        return None
    rollout = deployment.rollouts.get(op[2]) if deployment is not None else None
    if rollout is None:
        return None
    revision = rollout.desired_revision - (1 if op[4] and rollout.desired_revision > 1 else 0)
    if op[3] == "succeeded":
        return events.ApplySucceeded(deployment=name, revision=revision, target=op[2])
    if op[3] == "healthy":
        return events.TargetHealthy(deployment=name, revision=revision, target=op[2],
                                    attempt=max(rollout.attempts, 1))
    if op[3] == "degraded":
        return events.TargetDegraded(deployment=name, revision=revision, target=op[2],
                                     attempt=max(rollout.attempts, 1), reason="ProgressDeadline",
                                     object=events.ObjectRef("apps/v1", "Deployment", name, "apps"))
    return events.ApplyFailed(deployment=name, revision=revision, target=op[2], error="e",
                              retryable=op[3] == "retrying")


@contextlib.asynccontextmanager
async def fresh_store(admin_url: str) -> AsyncIterator[tuple[str, store.EventStore]]:
    name = "h_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f"CREATE DATABASE {name} TEMPLATE {pgfixtures.TEMPLATE}")
    dsn = pgfixtures._with_db(admin_url, name)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    notify = notifier.Notifier(dsn)
    es = store.EventStore(pool, notify)
    background = [asyncio.create_task(notify.run()), asyncio.create_task(es.writer.run())]
    try:
        yield dsn, es
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await pool.close()
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


async def record(es: store.EventStore, history: list[tuple[Any, ...]]) -> list[int]:
    """Decide each command on the model and append what it records; returns the positions."""
    model, positions = fleet.empty(), []
    for op in history:
        event = decide(model, op)
        if event is None:
            continue
        type_ = events.type_name(event)
        category, field = events.CATEGORY[type_]
        stream = f"{category}-{getattr(event, field)}"
        result = await es.append(stream, "any", [records.NewEvent(
            uuid.uuid4(), type_, events.to_data(event), {"actor": "prop"})])
        positions.append(result.positions[0])
        fleet.apply(model, event, fleet.Meta(result.positions[0], stream, result.last_version, T0, "prop"))
    return positions


async def check_head_and_prefix(admin_url: str, history: list[tuple[Any, ...]], cut: float) -> None:
    async with fresh_store(admin_url) as (dsn, es):
        tracker = progress.Progress()
        projector = runner.Projector(dsn, store=es, progress_=tracker, snapshot_every=5)
        task = asyncio.create_task(projector.run())
        try:
            half = len(history) // 2
            positions = await record(es, history[:half])
            if positions:
                assert await tracker.reached(positions[-1], 20)
            positions += await record(es, history[half:])
            head = positions[-1] if positions else 0
            assert await tracker.reached(head, 20)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        conn = await asyncpg.connect(dsn)
        try:
            assert await read_models(conn) == replayed(await replay.fleet_at(conn, head))
            until = int(head * cut)
            await runner.Projector(dsn, snapshot_every=3).rebuild(until=until)
            assert await read_models(conn) == replayed(await replay.fleet_at(conn, until))
        finally:
            await conn.close()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories(), cut=st.floats(0, 1))
def test_state_at_head_equals_live_read_models_and_at_n_equals_a_rebuild_to_n(pg_admin_url, history, cut):
    asyncio.run(check_head_and_prefix(pg_admin_url, history, cut))


async def test_state_over_http_at_head_equals_the_read_models_and_at_a_time_is_the_past(live):
    await register(live, "eu-1", region="eu")
    first = await submit(live, "web", selector="region=eu")
    await register(live, "us-1", region="us")
    last = await submit(live, "web", selector="", value="2")
    head = await (await live.get("/v1/state?at=head")).json()
    targets = (await read(live, "/v1/targets?include_retired=true", last["position"]))["targets"]
    web = await read(live, "/v1/deployments/web", last["position"])
    assert [{k: v for k, v in t.items() if k != "rollouts"} for t in head["targets"]] == targets
    assert head["deployments"] == [{k: v for k, v in web.items() if k != "as_of"}]
    assert (head["position"], head["head"]) == (4, 4)
    then = await (await live.get("/v1/state", params={"at": head["deployments"][0]["created_at"]})).json()
    assert then["position"] == first["position"]
    assert [(d["current_revision"], d["selector"]) for d in then["deployments"]] == [(1, "region=eu")]
    assert [t["name"] for t in then["targets"]] == ["eu-1"]
    before = await (await live.get("/v1/state", params={"at": "2000-01-01T00:00:00Z"})).json()
    assert (before["position"], before["targets"], before["deployments"]) == (0, [], [])
    for bad in ("99", "yesterday", "2026-01-01T00:00:00"):
        response = await live.get("/v1/state", params={"at": bad})
        assert response.status == 422 and (await response.json())["field"] == "at"
