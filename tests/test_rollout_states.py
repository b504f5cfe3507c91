"""Per-target rollout states with health (issue 12): the fold's words and reasons, the revision's
health settings at the door, and the same states in GET /v1/deployments/{name} and /v1/state?at=."""

from __future__ import annotations

import json
import uuid

from api import keys
from ledger import events, records
from projections import fleet
from tests.fleetdata import Log
from tests.projected import live_client, manifests, read, register, submit  # noqa: F401 - fixture

WEB = events.ObjectRef("apps/v1", "Deployment", "web", "apps")


def _healthy(target: str, revision: int = 1, attempt: int = 1) -> events.TargetHealthy:
    return events.TargetHealthy(deployment="web", revision=revision, target=target, objects=[WEB],
                                duration_ms=1200, attempt=attempt)


def _degraded(target: str, revision: int = 1, attempt: int = 1, sequence: int = 1) -> events.TargetDegraded:
    return events.TargetDegraded(deployment="web", revision=revision, target=target, object=WEB,
                                 reason="ProgressDeadlineExceeded", message="no progress", attempt=attempt,
                                 sequence=sequence)


def _states(f: fleet.Fleet, targets: str = "ab") -> list[str]:
    return [f.deployments["web"].rollouts[t].state for t in targets]


def test_an_applied_target_is_progressing_until_a_verdict_makes_it_healthy_or_degraded():
    log = Log()
    log.target("a", env="prod")
    log.target("b", env="prod")
    log.revision("web", "env=prod")
    log.add(events.ApplySucceeded(deployment="web", revision=1, target="a"))
    f = log.add(events.ApplySucceeded(deployment="web", revision=1, target="b"))
    assert _states(f) == ["progressing", "progressing"]
    log.add(_healthy("a"))
    f = log.add(_degraded("b"))
    assert _states(f) == ["healthy", "degraded"]
    b = f.deployments["web"].rollouts["b"]
    assert (b.health, b.reason, b.message) == ("degraded", "ProgressDeadlineExceeded",
                                               "Deployment apps/web: no progress")
    f = log.add(_healthy("b"))
    assert _states(f) == ["healthy", "healthy"]
    assert f.deployments["web"].rollouts["b"].reason == "ProgressDeadlineExceeded"  # the last one, kept


def test_a_verdict_about_another_revision_or_an_earlier_attempt_changes_nothing():
    log = Log()
    log.target("a", env="prod")
    log.revision("web", "env=prod")
    log.add(events.ApplySucceeded(deployment="web", revision=1, target="a"))
    log.revision("web", "env=prod", data="2")
    log.add(events.ApplySucceeded(deployment="web", revision=2, target="a", attempt=1))
    f = log.add(_healthy("a", revision=1))
    assert _states(f, "a") == ["progressing"]
    log.add(_healthy("a", revision=2))
    f = log.add(events.ApplySucceeded(deployment="web", revision=2, target="a", attempt=2))  # a healed drift
    assert _states(f, "a") == ["progressing"]
    f = log.add(_degraded("a", revision=2, attempt=1, sequence=2))
    assert _states(f, "a") == ["progressing"]
    f = log.add(_healthy("a", revision=2, attempt=2))
    assert _states(f, "a") == ["healthy"]


def test_a_new_revision_clears_the_reason_and_a_permanent_failure_gives_one():
    log = Log()
    log.target("a", env="prod")
    log.revision("web", "env=prod")
    log.add(events.ApplySucceeded(deployment="web", revision=1, target="a"))
    f = log.add(_degraded("a"))
    assert f.deployments["web"].rollouts["a"].reason == "ProgressDeadlineExceeded"
    f = log.revision("web", "env=prod", data="2")
    a = f.deployments["web"].rollouts["a"]
    assert (a.state, a.health, a.reason, a.message) == ("pending", None, None, None)
    f = log.add(events.ApplyFailed(deployment="web", revision=2, target="a", error="HTTP 503", retryable=True))
    assert (f.deployments["web"].rollouts["a"].state, f.deployments["web"].rollouts["a"].reason) == ("applying", None)
    f = log.add(events.ApplyFailed(deployment="web", revision=2, target="a", error="HTTP 422: bad", attempt=2))
    a = f.deployments["web"].rollouts["a"]
    assert (a.state, a.reason, a.message) == ("failed", "ApplyFailed", "HTTP 422: bad")


def test_paused_wins_over_health_and_resuming_gives_the_health_back():
    log = Log()
    log.target("a", env="prod")
    log.revision("web", "env=prod")
    log.add(events.ApplySucceeded(deployment="web", revision=1, target="a"))
    log.add(_healthy("a"))
    f = log.add(events.DeploymentPaused(deployment="web", reason="incident"))
    assert _states(f, "a") == ["paused"]
    f = log.add(events.DeploymentResumed(deployment="web"))
    assert _states(f, "a") == ["healthy"]


def test_a_rollback_restores_the_health_settings_of_the_revision_it_restores():
    log = Log()
    log.target("a", env="prod")
    log.add(events.RevisionSubmitted(deployment="web", revision=1, manifests=[], selector="env=prod",
                                     progress_deadline_seconds=30, self_heal=False))
    f = log.add(events.RevisionSubmitted(deployment="web", revision=2, manifests=[], selector="env=prod"))
    assert (f.deployments["web"].revisions[2].progress_deadline_seconds, f.deployments["web"].revisions[2].self_heal) \
        == (600, True)
    f = log.add(events.RolledBack(deployment="web", revision=3, to_revision=1))
    assert (f.deployments["web"].revisions[3].progress_deadline_seconds, f.deployments["web"].revisions[3].self_heal) \
        == (30, False)


def test_health_settings_at_their_defaults_are_not_stored_so_old_events_read_the_same():
    event = events.RevisionSubmitted(deployment="web", revision=1, manifests=[])
    assert "progress_deadline_seconds" not in events.to_data(event) and "self_heal" not in events.to_data(event)
    decoded = events.decode("RevisionSubmitted", json.dumps({"deployment": "web", "revision": 1, "manifests": []}))
    assert isinstance(decoded, events.RevisionSubmitted)
    assert (decoded.progress_deadline_seconds, decoded.self_heal) == (600, True)


async def test_a_revision_takes_its_health_settings_from_the_body_or_the_query_and_refuses_bad_ones(live, db):
    await register(live, "eu-1", region="eu")
    first = await submit(live, "web", selector="region=eu", progress_deadline_seconds=30, self_heal=False)
    yaml_body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: apps\n"
    second = await live.post("/v1/deployments/web/revisions?progress_deadline_seconds=45&self_heal=false",
                             data=yaml_body, headers={"Content-Type": "application/yaml"})
    assert second.status == 201, await second.text()
    third = await submit(live, "web")
    rows = await db.fetch("SELECT data FROM events WHERE type = 'RevisionSubmitted' ORDER BY position")
    stored = [json.loads(r["data"]) for r in rows]
    assert [(d.get("progress_deadline_seconds"), d.get("self_heal")) for d in stored] == [
        (30, False), (45, False), (None, None)]
    history = await read(live, "/v1/deployments/web/revisions", third["position"])
    assert [(r["progress_deadline_seconds"], r["self_heal"]) for r in history["revisions"]] == [
        (30, False), (45, False), (600, True)]
    count = await db.fetchval("SELECT count(*) FROM events")
    for body, field in (({"progress_deadline_seconds": 0}, "$.progress_deadline_seconds"),
                        ({"progress_deadline_seconds": 2**31}, "$.progress_deadline_seconds"),
                        ({"progress_deadline_seconds": "600"}, "$.progress_deadline_seconds"),
                        ({"self_heal": "no"}, "$.self_heal")):
        response = await live.post("/v1/deployments/web/revisions", json={"manifests": manifests(), **body})
        assert response.status == 422, await response.text()
        assert (await response.json())["field"] == field
    for query, field in (("progress_deadline_seconds=0", "progress_deadline_seconds"),
                         ("self_heal=maybe", "self_heal")):
        response = await live.post(f"/v1/deployments/web/revisions?{query}", data=yaml_body,
                                   headers={"Content-Type": "application/yaml"})
        assert response.status == 422 and (await response.json())["field"] == field
    generic = await live.post("/v1/streams/deployment-web/events", json={"events": [{
        "type": "RevisionSubmitted", "data": {"deployment": "web", "revision": 4, "manifests": manifests(),
                                              "progress_deadline_seconds": -1}}]})
    assert generic.status == 422 and (await generic.json())["field"] == "$.events[0].data.progress_deadline_seconds"
    assert await db.fetchval("SELECT count(*) FROM events") == count
    assert first["revision"] == 1


async def test_health_is_ledger_written_a_client_cannot_append_it(live, db):
    await register(live, "eu-1", region="eu")
    await submit(live, "web", selector="region=eu")
    for event in (_healthy("eu-1"), _degraded("eu-1"),
                  events.DriftDetected(deployment="web", revision=1, target="eu-1", object=WEB, fields=["spec"])):
        response = await live.post("/v1/streams/rollout-web/events", json={"events": [{
            "type": events.type_name(event), "data": events.to_data(event)}]})
        assert response.status == 403, await response.text()
    assert await db.fetchval("SELECT count(*) FROM events WHERE stream = 'rollout-web'") == 0


async def test_the_state_per_target_with_its_reason_in_get_and_in_replay_as_it_stood(live):
    store = live.app[keys.STORE]
    for name in ("a", "b", "c"):
        await register(live, name, env="prod")
    await submit(live, "web", selector="env=prod")

    async def append(event: events.Event) -> int:
        result = await store.append("rollout-web", "any", [records.NewEvent(
            uuid.uuid4(), events.type_name(event), events.to_data(event), {"actor": "applier"})])
        return int(result.positions[0])

    for name in ("a", "b"):
        await append(events.ApplySucceeded(deployment="web", revision=1, target=name))
    await append(events.ApplyFailed(deployment="web", revision=1, target="c", error="HTTP 403: forbidden"))
    progressing = await append(_healthy("a"))
    last = await append(_degraded("b"))
    body = await read(live, "/v1/deployments/web", last)
    assert body["summary"] == {"targets": 3, "pending": 0, "applying": 0, "progressing": 0, "healthy": 1,
                               "degraded": 1, "failed": 1, "paused": 0}
    rows = {r["target"]: (r["state"], r["reason"], r["message"]) for r in body["rollouts"]}
    assert rows == {"a": ("healthy", None, None),
                    "b": ("degraded", "ProgressDeadlineExceeded", "Deployment apps/web: no progress"),
                    "c": ("failed", "ApplyFailed", "HTTP 403: forbidden")}
    then = await (await live.get(f"/v1/state?at={progressing - 1}")).json()
    assert {r["target"]: r["state"] for r in then["deployments"][0]["rollouts"]} == {
        "a": "progressing", "b": "progressing", "c": "failed"}
    now = await (await live.get(f"/v1/state?at={last}")).json()
    assert now["deployments"][0]["rollouts"] == body["rollouts"]
    assert {t["name"]: t["rollouts"][0]["state"] for t in now["targets"]} == {
        "a": "healthy", "b": "degraded", "c": "failed"}
