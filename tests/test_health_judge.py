"""The follower's decision, pure: which health event a verdict about an apply's objects calls for,
and which kinds need watching at all."""

from __future__ import annotations

import pytest

from handlers import follow, followed
from ledger import events
from projections import health

WEB = events.ObjectRef("apps/v1", "Deployment", "web", "apps")
CM = events.ObjectRef("v1", "ConfigMap", "settings", "apps")


def applied(verdict: followed.Verdict = "", sequence: int = 0) -> followed.Applied:
    return followed.Applied(revision=3, attempt=2, objects=[CM, WEB], at=1000.0, sequence=sequence, verdict=verdict)


def judge(found: followed.Applied, status: health.Status, now: float = 1010.0, **kw: str) -> events.Event | None:
    verdict = health.Verdict(status, WEB if status is not health.Status.HEALTHY else None, objects=2, **kw)
    return follow.judge("web", "eu-1", found, verdict, deadline=60, now=now)


def test_healthy_objects_make_a_healthy_target_once_numbered_after_what_was_recorded():
    event = judge(applied(), health.Status.HEALTHY)
    assert event == events.TargetHealthy(deployment="web", revision=3, target="eu-1", objects=[CM, WEB],
                                         duration_ms=10_000, attempt=2, sequence=1)
    assert judge(applied("healthy", 1), health.Status.HEALTHY) is None
    again = judge(applied("degraded", 1), health.Status.HEALTHY)
    assert isinstance(again, events.TargetHealthy) and again.sequence == 2


def test_a_degraded_object_makes_a_degraded_target_with_the_rules_reason():
    event = judge(applied(), health.Status.DEGRADED, reason="ProgressDeadlineExceeded", message="timed out")
    assert event == events.TargetDegraded(deployment="web", revision=3, target="eu-1", object=WEB,
                                          reason="ProgressDeadlineExceeded", message="timed out", attempt=2,
                                          sequence=1)
    assert judge(applied("degraded", 1), health.Status.DEGRADED, reason="X") is None
    later = judge(applied("healthy", 1), health.Status.DEGRADED, reason="X")
    assert isinstance(later, events.TargetDegraded) and later.sequence == 2


def test_progressing_is_degraded_only_once_the_deadline_has_passed_and_only_before_any_verdict():
    assert judge(applied(), health.Status.PROGRESSING, now=1059.9, reason="LessReady") is None
    event = judge(applied(), health.Status.PROGRESSING, now=1060.0, reason="LessReady", message="0 of 1 ready")
    assert isinstance(event, events.TargetDegraded)
    assert (event.reason, event.object, event.message) == (
        follow.DEADLINE_REASON, WEB, "not healthy 60s after it was applied: LessReady: 0 of 1 ready")
    assert judge(applied("healthy", 1), health.Status.PROGRESSING, now=5000.0) is None  # a pod restarting


def test_suspended_objects_count_as_done():
    assert isinstance(judge(applied(), health.Status.SUSPENDED), events.TargetHealthy)


@pytest.mark.parametrize(("ref", "watched"), [
    (WEB, True),
    (events.ObjectRef("batch/v1", "Job", "j", "apps"), True),
    (events.ObjectRef("v1", "Service", "s", "apps"), True),
    (events.ObjectRef("v1", "PersistentVolumeClaim", "p", "apps"), True),
    (events.ObjectRef("example.com/v1", "Widget", "w", "apps"), True),  # a custom resource: Ready
    (CM, False),
    (events.ObjectRef("v1", "Namespace", "apps"), False),
    (events.ObjectRef("rbac.authorization.k8s.io/v1", "Role", "r", "apps"), False),
    (events.ObjectRef("networking.k8s.io/v1", "Ingress", "i", "apps"), False),
])
def test_only_kinds_whose_health_needs_their_status_are_watched(ref: events.ObjectRef, watched: bool):
    assert follow.watched(ref) is watched


def test_the_id_of_a_health_event_names_the_apply_and_its_place_among_its_verdicts():
    ids = {follow.event_id("web", 3, "eu-1", 2, n) for n in (1, 2)}
    ids |= {follow.event_id("web", 3, "eu-1", 1, 1), follow.event_id("web", 3, "eu-2", 2, 1)}
    assert len(ids) == 4
    assert follow.event_id("web", 3, "eu-1", 2, 1) == follow.event_id("web", 3, "eu-1", 2, 1)
