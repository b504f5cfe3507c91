"""The health rules (projections/health.py), table-driven over kstatus' and gitops-engine's own cases.

tests/data/health/ holds the objects those projects test with (see its NOTICE). A case whose verdict
agrees with its source is checked against the source's verdict itself; a case where we chose the
other project's rule carries a note saying so, and is checked against the verdict we chose. The
cases below the ported ones cover rules the fixtures leave out (partitions, revisions, malformed
statuses, the aggregate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ledger import events
from projections import health

DATA = Path(__file__).parent / "data" / "health"
KSTATUS = {"Current": "healthy", "InProgress": "progressing", "Failed": "degraded"}

_kstatus_cases: list[dict[str, Any]] = yaml.safe_load((DATA / "kstatus.yaml").read_text())
_argo_cases: list[dict[str, Any]] = yaml.safe_load((DATA / "gitops-engine" / "cases.yaml").read_text())


def test_the_ported_cases_are_all_there() -> None:
    assert len(_kstatus_cases) == 56
    assert len(_argo_cases) == 29
    assert all("source" in case for case in _kstatus_cases + _argo_cases)


@pytest.mark.parametrize("case", _kstatus_cases, ids=[c["case"] for c in _kstatus_cases])
def test_kstatus_cases(case: dict[str, Any]) -> None:
    verdict = health.assess(case["object"])
    if "note" not in case:
        assert verdict.status == KSTATUS[case["kstatus"]["status"]]
        if case["kstatus"]["reason"]:
            assert verdict.reason == case["kstatus"]["reason"]
    assert (verdict.status.value, verdict.reason) == (case["expect"]["status"], case["expect"]["reason"])


@pytest.mark.parametrize("case", _argo_cases, ids=[c["file"] for c in _argo_cases])
def test_gitops_engine_cases(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((DATA / "gitops-engine" / case["file"]).read_text())
    verdict = health.assess(obj)
    if "note" not in case:
        assert verdict.status == case["gitops_engine"].lower()
    assert (verdict.status.value, verdict.reason) == (case["expect"]["status"], case["expect"]["reason"])
    if verdict.status is health.Status.DEGRADED:
        assert verdict.message


def deployment(generation: int = 1, spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "generation": generation},
        "spec": {"replicas": 2, "progressDeadlineSeconds": 600, **(spec or {})},
        "status": status,
    }


AVAILABLE = [
    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
]
DONE: dict[str, Any] = {
    "observedGeneration": 1,
    "replicas": 2,
    "updatedReplicas": 2,
    "readyReplicas": 2,
    "availableReplicas": 2,
}


def statefulset(spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "apps", "generation": 2},
        "spec": {"replicas": 3, **(spec or {})},
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "readyReplicas": 3,
            "currentReplicas": 3,
            **status,
        },
    }


def daemonset(spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "apps", "generation": 1},
        "spec": spec or {},
        "status": {
            "observedGeneration": 1,
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "updatedNumberScheduled": 3,
            "numberAvailable": 3,
            "numberReady": 3,
            **status,
        },
    }


def widget(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "apps", "generation": 1},
        "status": status,
    }


RULES: list[tuple[str, dict[str, Any], str, str]] = [
    ("deployment available", deployment(**DONE, conditions=AVAILABLE), "healthy", ""),
    (
        "deployment generation not observed",
        deployment(2, **DONE, conditions=AVAILABLE),
        "progressing",
        "LatestGenerationNotObserved",
    ),
    (
        "deployment new pods not updated",
        deployment(**{**DONE, "updatedReplicas": 1}, conditions=AVAILABLE),
        "progressing",
        "LessUpdated",
    ),
    (
        "deployment new pods not available",
        deployment(**{**DONE, "availableReplicas": 1}, conditions=AVAILABLE),
        "progressing",
        "LessAvailable",
    ),
    (
        "deployment pods not ready",
        deployment(**{**DONE, "readyReplicas": 1}, conditions=AVAILABLE),
        "progressing",
        "LessReady",
    ),
    (
        "deployment past its progress deadline",
        deployment(
            **{**DONE, "availableReplicas": 0, "readyReplicas": 0},
            conditions=[
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "web-1" has timed out progressing.',
                }
            ],
        ),
        "degraded",
        "ProgressDeadlineExceeded",
    ),
    ("deployment paused", deployment(2, {"paused": True}, **DONE), "suspended", "DeploymentPaused"),
    (
        "deployment being deleted",
        {
            **deployment(**DONE, conditions=AVAILABLE),
            "metadata": {"name": "web", "generation": 1, "deletionTimestamp": "2026-01-01T00:00:00Z"},
        },
        "progressing",
        "Terminating",
    ),
    (
        "statefulset rolled out",
        statefulset(updateRevision="db-2", currentRevision="db-2", updatedReplicas=3),
        "healthy",
        "",
    ),
    (
        "statefulset revision mismatch",
        statefulset(updateRevision="db-2", currentRevision="db-1", updatedReplicas=1),
        "progressing",
        "RevisionMismatch",
    ),
    (
        "statefulset partition pending",
        statefulset(
            {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}},
            updateRevision="db-2",
            currentRevision="db-1",
            updatedReplicas=1,
        ),
        "progressing",
        "PartitionRollout",
    ),
    (
        "statefulset partition complete",
        statefulset(
            {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}},
            updateRevision="db-2",
            currentRevision="db-1",
            updatedReplicas=2,
        ),
        "healthy",
        "",
    ),
    (
        "statefulset ondelete waits for ready pods",
        statefulset({"updateStrategy": {"type": "OnDelete"}}, readyReplicas=2),
        "progressing",
        "LessReady",
    ),
    (
        "statefulset ondelete ignores revisions",
        statefulset({"updateStrategy": {"type": "OnDelete"}}, updateRevision="db-2", currentRevision="db-1"),
        "healthy",
        "",
    ),
    (
        "statefulset never observed",
        {**statefulset(), "status": {}},
        "progressing",
        "LatestGenerationNotObserved",
    ),
    ("daemonset rolled out", daemonset(), "healthy", ""),
    ("daemonset pods not updated", daemonset(updatedNumberScheduled=1), "progressing", "LessUpdated"),
    (
        "daemonset ondelete does not wait for updates",
        daemonset({"updateStrategy": {"type": "OnDelete"}}, updatedNumberScheduled=1),
        "healthy",
        "",
    ),
    (
        "daemonset ondelete still waits for available pods",
        daemonset({"updateStrategy": {"type": "OnDelete"}}, numberAvailable=2),
        "progressing",
        "LessAvailable",
    ),
    (
        "daemonset generation ahead",
        {**daemonset(), "metadata": {"name": "agent", "generation": 2}},
        "progressing",
        "LatestGenerationNotObserved",
    ),
    (
        "pvc lost",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "d"},
            "status": {"phase": "Lost"},
        },
        "degraded",
        "ClaimLost",
    ),
    (
        "pvc strange phase",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "d"},
            "status": {"phase": "Weird"},
        },
        "unknown",
        "UnknownPhase",
    ),
    ("custom resource ready", widget(conditions=[{"type": "Ready", "status": "True"}]), "healthy", ""),
    (
        "custom resource not ready",
        widget(conditions=[{"type": "Ready", "status": "False", "reason": "Waiting"}]),
        "progressing",
        "Waiting",
    ),
    (
        "custom resource stalled",
        widget(
            conditions=[
                {"type": "Ready", "status": "False"},
                {"type": "Stalled", "status": "True", "reason": "InstallFailed", "message": "chart failed"},
            ]
        ),
        "degraded",
        "InstallFailed",
    ),
    (
        "custom resource reconciling",
        widget(conditions=[{"type": "Reconciling", "status": "True", "reason": "Busy"}]),
        "progressing",
        "Busy",
    ),
    (
        "configmap",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}},
        "healthy",
        "",
    ),
    (
        "a count that is not a number",
        deployment(**{**DONE, "readyReplicas": "two"}),
        "unknown",
        "MalformedStatus",
    ),
    ("conditions that are not a list", widget(conditions={"Ready": True}), "unknown", "MalformedStatus"),
    ("a condition without a type", widget(conditions=[{"status": "True"}]), "unknown", "MalformedStatus"),
]


@pytest.mark.parametrize(("obj", "status", "reason"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_rules_the_fixtures_leave_out(obj: dict[str, Any], status: str, reason: str) -> None:
    verdict = health.assess(obj)
    assert (verdict.status.value, verdict.reason) == (status, reason)
    if status in ("degraded", "unknown"):
        assert verdict.message


def test_unknown_names_the_malformed_field() -> None:
    verdict = health.assess(deployment(**{**DONE, "readyReplicas": "two"}))
    assert "status.readyReplicas" in verdict.message


def _ref(kind: str, name: str) -> events.ObjectRef:
    return events.ObjectRef(api_version="v1", kind=kind, name=name, namespace="apps")


HEALTHY_CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
PROGRESSING = deployment(**{**DONE, "readyReplicas": 1}, conditions=AVAILABLE)
DEGRADED = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "j"},
    "status": {
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ]
    },
}


def test_aggregate_of_healthy_objects_is_healthy() -> None:
    verdict = health.aggregate([(_ref("ConfigMap", "a"), HEALTHY_CM), (_ref("ConfigMap", "b"), HEALTHY_CM)])
    assert verdict == health.Verdict(health.Status.HEALTHY, objects=2)


def test_aggregate_names_the_degraded_object_even_after_a_progressing_one() -> None:
    verdict = health.aggregate(
        [
            (_ref("Deployment", "web"), PROGRESSING),
            (_ref("Job", "migrate"), DEGRADED),
            (_ref("ConfigMap", "c"), HEALTHY_CM),
        ]
    )
    assert verdict.status is health.Status.DEGRADED
    assert verdict.object == _ref("Job", "migrate")
    assert (verdict.reason, verdict.message) == (
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    )
    assert verdict.objects == 3


def test_aggregate_is_progressing_while_anything_is_pending() -> None:
    verdict = health.aggregate(
        [(_ref("ConfigMap", "c"), HEALTHY_CM), (_ref("Deployment", "web"), PROGRESSING)]
    )
    assert (verdict.status, verdict.object, verdict.reason) == (
        health.Status.PROGRESSING,
        _ref("Deployment", "web"),
        "LessReady",
    )


def test_aggregate_counts_a_missing_object_and_an_unknown_one_as_progressing() -> None:
    missing = health.aggregate([(_ref("ConfigMap", "c"), None)])
    assert (missing.status, missing.reason) == (health.Status.PROGRESSING, "NotFound")
    unknown = health.aggregate([(_ref("Deployment", "web"), deployment(**{**DONE, "replicas": "x"}))])
    assert (unknown.status, unknown.reason) == (health.Status.PROGRESSING, "MalformedStatus")


def test_aggregate_is_suspended_when_only_suspended_objects_remain() -> None:
    paused = deployment(spec={"paused": True})
    verdict = health.aggregate([(_ref("ConfigMap", "c"), HEALTHY_CM), (_ref("Deployment", "web"), paused)])
    assert (verdict.status, verdict.object) == (health.Status.SUSPENDED, _ref("Deployment", "web"))
    pending = health.aggregate(
        [(_ref("Deployment", "web"), paused), (_ref("Deployment", "api"), PROGRESSING)]
    )
    assert pending.status is health.Status.PROGRESSING


def test_an_empty_target_is_healthy() -> None:
    assert health.aggregate([]).status is health.Status.HEALTHY


def test_ref_names_an_object_as_events_do() -> None:
    assert health.ref(PROGRESSING) == events.ObjectRef(
        api_version="apps/v1", kind="Deployment", name="web", namespace="apps"
    )
    assert health.ref(HEALTHY_CM).namespace is None
