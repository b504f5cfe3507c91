"""Property: whatever a client sends through the public API, the log only holds what every projection
can fold and store.

Hypothesis generates sequences of writes through the HTTP API (the commands and the generic
endpoint, single events and batches) mixing well-formed values with hostile ones: bad selectors,
revision numbers past int32 and int64, negative ones, manifests that are not objects, labels with
control characters or huge values, missing selectors, forged matched targets, forged outcomes on
ledger-written streams, rollbacks to anything. Applier outcomes are appended the way the applier
appends them (straight to the store). Then:

- no request answered 5xx;
- the projector reaches the head, and the read models equal the fleet replayed at the head (what
  ``/v1/state?at=head`` serves), which also answers 200 at the head;
- the applier's side never raises: its fold (handlers.tracking) over the whole log, its plan for
  every target, the objects it would send and the scopes it would prune, and its checkpoint. The
  applier is not connected to any cluster here, so a generated server URL is never contacted.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import app as app_mod
from api import keys
from handlers import checkpoint, objects, outcomes, tracking
from ledger import events, records
from ledger import settings as settings_mod
from projections import fleet, replay
from tests import credfiles, pgfixtures, servers
from tests.test_projector import read_models, replayed

TARGETS = ("t0", "t1", "t2")
DEPLOYMENTS = ("web", "api")
SERVER = "https://127.0.0.1:6443"
CREDENTIAL = "cluster"  # anonymous, in the run's credentials file; nothing connects to it
credential_names = st.sampled_from([CREDENTIAL, CREDENTIAL, "nope", ""])
servers_named = st.sampled_from([None, SERVER, "ftp://x", "https://169.254.169.254"])

hostile_text = st.sampled_from(["", "a\u0007b", "x" * 900_000, "(((!!!", "é", "a b", "-a", "a" * 64])
label_values = st.one_of(st.sampled_from(["eu", "us", "prod", ""]), hostile_text)
labels = st.dictionaries(st.one_of(st.sampled_from(["region", "env"]), hostile_text), label_values, max_size=2)
selectors = st.one_of(st.none(), st.sampled_from(["", "region=eu", "env!=prod", "region in (eu, us)", "!env"]),
                      hostile_text)
numbers = st.one_of(st.integers(-3, 6), st.sampled_from([2**31 - 1, 2**31, 2**63, 2**64, -(2**63)]))


def manifest(value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "apps"},
            "data": {"k": value}}


manifest_lists = st.one_of(
    st.builds(lambda v: [manifest(v)], st.sampled_from(["1", "2", "3"])),
    st.sampled_from([[], [{"foo": "bar"}], [{"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "x", "labels": {"a": "b\u0001"}}}],
                     [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "n": 2**70}]]),
)

ops = st.one_of(
    st.tuples(st.just("put_target"), st.sampled_from(TARGETS), labels, credential_names, servers_named),
    st.tuples(st.just("retire"), st.sampled_from(TARGETS), st.booleans()),
    st.tuples(st.just("generic_target"), st.sampled_from(TARGETS),
              st.sampled_from(["TargetRegistered", "TargetUpdated"]), labels, credential_names, servers_named),
    st.tuples(st.just("submit"), st.sampled_from(DEPLOYMENTS), selectors, manifest_lists),
    st.tuples(st.just("generic_submit"), st.sampled_from(DEPLOYMENTS), numbers, selectors, manifest_lists,
              st.sampled_from([None, [], ["t0"], ["t0", "t1", "t2"]])),
    st.tuples(st.just("rollback"), st.sampled_from(DEPLOYMENTS), numbers, st.booleans()),
    st.tuples(st.sampled_from(["pause", "resume", "remove"]), st.sampled_from(DEPLOYMENTS), st.booleans()),
    st.tuples(st.just("batch"), st.sampled_from(DEPLOYMENTS),
              st.lists(st.sampled_from(["DeploymentPaused", "DeploymentResumed", "DeploymentRemoved"]),
                       min_size=1, max_size=3)),
    st.tuples(st.just("forged_outcome"), st.sampled_from(DEPLOYMENTS), st.sampled_from(TARGETS), numbers),
    st.tuples(st.just("outcome"), st.sampled_from(DEPLOYMENTS), st.sampled_from(TARGETS),
              st.sampled_from(["succeeded", "retrying", "failed"])),
)


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    prelude: list[tuple[Any, ...]] = [("put_target", name, {"region": "eu"}, CREDENTIAL, None)
                                      for name in TARGETS[:2]]
    prelude.append(("submit", "web", "", [manifest("0")]))
    return prelude + draw(st.lists(ops, min_size=1, max_size=25))


def target_body(labels: dict[str, str], credential: str, server: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"labels": labels}
    if credential:
        body["credentials"] = credential
    if server is not None:
        body["server"] = server
    return body


async def generic(client: TestClient, stream: str, *evs: dict[str, Any]) -> int:
    resp = await client.post(f"/v1/streams/{stream}/events", json={"events": list(evs)})
    return resp.status


async def perform(client: TestClient, op: tuple[Any, ...]) -> int:
    """Send one generated write; returns the HTTP status (0 for what is not an HTTP request)."""
    kind, name = op[0], op[1]
    match kind:
        case "put_target":
            return (await client.put(f"/v1/targets/{name}", json=target_body(op[2], op[3], op[4]))).status
        case "retire":
            if op[2]:
                return await generic(client, f"target-{name}", {"type": "TargetRetired", "data": {"target": name}})
            return (await client.delete(f"/v1/targets/{name}")).status
        case "generic_target":
            return await generic(client, f"target-{name}", {"type": op[2], "data": {
                "target": name, **target_body(op[3], op[4], op[5])}})
        case "submit":
            body: dict[str, Any] = {"manifests": op[3]}
            if op[2] is not None:
                body["selector"] = op[2]
            return (await client.post(f"/v1/deployments/{name}/revisions", json=body)).status
        case "generic_submit":
            data: dict[str, Any] = {"deployment": name, "revision": op[2], "manifests": op[4]}
            if op[3] is not None:
                data["selector"] = op[3]
            if op[5] is not None:
                data["matched_targets"] = op[5]
            return await generic(client, f"deployment-{name}", {"type": "RevisionSubmitted", "data": data})
        case "rollback":
            if op[3]:
                return await generic(client, f"deployment-{name}", {"type": "RolledBack", "data": {
                    "deployment": name, "revision": op[2] + 1, "to_revision": op[2]}})
            return (await client.post(f"/v1/deployments/{name}/rollback", json={"to_revision": op[2]})).status
        case "pause" | "resume" | "remove":
            if op[2]:
                type_ = {"pause": "DeploymentPaused", "resume": "DeploymentResumed", "remove": "DeploymentRemoved"}
                return await generic(client, f"deployment-{name}", {"type": type_[kind],
                                                                    "data": {"deployment": name}})
            if kind == "remove":
                return (await client.delete(f"/v1/deployments/{name}")).status
            return (await client.post(f"/v1/deployments/{name}/{kind}")).status
        case "batch":
            return await generic(client, f"deployment-{name}",
                                 *({"type": t, "data": {"deployment": name}} for t in op[2]))
        case "forged_outcome":
            status = await generic(client, f"rollout-{name}", {"type": "ApplySucceeded", "data": {
                "deployment": name, "revision": op[3], "target": op[2]}})
            assert status == 403
            return status
        case "outcome":
            await applier_outcome(client, name, op[2], op[3])
            return 0
    raise AssertionError(op)


async def applier_outcome(client: TestClient, deployment: str, target: str, result: str) -> None:
    """Record an outcome for the current revision the way the applier does: to the store."""
    store = client.app[keys.STORE]
    async with store.connection() as conn:
        revision = await conn.fetchval(
            "SELECT max((data->>'revision')::bigint) FROM events WHERE stream = $1", f"deployment-{deployment}")
    if revision is None:
        return
    event: events.Event
    if result == "succeeded":
        event = events.ApplySucceeded(deployment=deployment, revision=revision, target=target)
    else:
        event = events.ApplyFailed(deployment=deployment, revision=revision, target=target, error="boom",
                                   retryable=result == "retrying")
    await store.append(outcomes.stream(deployment), "any", [records.NewEvent(
        uuid.uuid4(), events.type_name(event), events.to_data(event), {"actor": "applier"})])


def applier_never_raises(recorded: list[records.RecordedEvent]) -> None:
    """The applier's whole pure side over the log: fold, plan, objects, prune scopes, checkpoint."""
    state = tracking.State()
    for rec in recorded:
        tracking.fold(state, rec)
    for target in state.fleet.targets:
        for work in tracking.plan(state, target, resync=True):
            deployment = state.fleet.deployments[work.deployment]
            sets = [fleet.manifests_at(state.fleet, work.deployment, n) for n in deployment.revisions]
            objects.scopes(sets)
            if work.revision:
                for m in fleet.manifests_at(state.fleet, work.deployment, work.revision):
                    objects.labelled(m, work.deployment, work.revision)
            outcomes.event_id(work.deployment, work.revision, target, work.attempt)
    checkpoint.pack(state)


async def check(admin_url: str, history: list[tuple[Any, ...]]) -> None:
    name = "w_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f"CREATE DATABASE {name} TEMPLATE {pgfixtures.TEMPLATE}")
    dsn = pgfixtures._with_db(admin_url, name)
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            credentials = credfiles.write(Path(data_dir) / "etc", {
                CREDENTIAL: {"server": SERVER, "anonymous": True}})
            configured = settings_mod.Settings(database_url=dsn, data_dir=Path(data_dir), http_port=0, db_timeout=5.0,
                                               applier=False, projector=True, read_wait_timeout=20.0,
                                               admin_token=servers.ADMIN_TOKEN, credentials=credentials)
            server = TestServer(app_mod.make_app(configured))
            async with TestClient(server, headers=servers.ADMIN_HEADERS) as client:
                for op in history:
                    status = await perform(client, op)
                    assert status < 500, op
                head = (await client.app[keys.STORE].head())[0]
                state = await client.get(f"/v1/state?at={head}")
                assert state.status == 200 and (await state.json())["position"] == head
                listed = await client.get(f"/v1/targets?include_retired=true&min_position={head}")
                assert listed.status == 200, await listed.text()
                fresh = await client.put("/v1/targets/sentinel", json={"credentials": CREDENTIAL})
                assert fresh.status == 201
                position = (await fresh.json())["position"]
                found = await client.get(f"/v1/targets/sentinel?min_position={position}")
                assert found.status == 200, await found.text()
        conn = await asyncpg.connect(dsn)
        try:
            head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
            assert await read_models(conn) == replayed(await replay.fleet_at(conn, head))
            rows = await conn.fetch(f"SELECT {records.COLUMNS} FROM events ORDER BY position")
            applier_never_raises([records.from_row(r) for r in rows])
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(history=histories())
def test_whatever_clients_send_every_projection_folds_and_the_applier_plans(pg_admin_url, history):
    asyncio.run(check(pg_admin_url, history))
