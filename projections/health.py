"""Is a live Kubernetes object done rolling out? Health rules as pure functions over API dicts.

"Applied" (server-side apply answered 200) says nothing about whether a revision runs: a Deployment
whose image never starts is applied everywhere. This module answers the second question for one
object as the API returns it (a dict with ``metadata``, ``spec`` and ``status``), and for a target's
objects together (:func:`aggregate`). It does no I/O and never reads the clock, so the applier,
replay and the API can all ask it and agree.

The rules are ported from the two tools platform teams already trust, and each rule names its source
beside it:

- Flux's **kstatus** (kubernetes-sigs/cli-utils ``pkg/kstatus/status``: ``status.go`` ``Compute``,
  ``generic.go`` ``checkGenericProperties``, ``core.go`` one function per kind), which gives the
  reasons (``LessReplicas``, ``LatestGenerationNotObserved`` ...) and the order of the checks;
- Argo CD's **gitops-engine** (``pkg/health/health_*.go``), which gives the ``Healthy / Progressing
  / Degraded / Suspended / Unknown`` vocabulary and its messages.

Where the two disagree, the choice is the one that tells a deployment tool the truth about "does the
new revision run"; docs/health.md lists every divergence. The ones that matter:

- a running Job is ``progressing`` until ``Complete`` (gitops-engine), not current (kstatus);
- a Pod in phase ``Failed`` is ``degraded`` (gitops-engine), not current (kstatus);
- a container in ``CrashLoopBackOff`` degrades a Pod whatever its restart policy (kstatus);
- a Service of type LoadBalancer needs an ingress address (gitops-engine), not only a cluster IP;
- a Deployment needs ``Progressing`` = ``NewReplicaSetAvailable`` and ``Available`` = ``True``
  besides its counters (kstatus), and ``spec.paused`` makes it ``suspended`` (gitops-engine);
- a StatefulSet checks revisions unless a partition is set (kstatus), and ``OnDelete`` still waits
  for ready pods (gitops-engine's order).

A status of the wrong shape (a count that is not an integer, conditions that are not a list) gives
``unknown`` with a message naming the field, never an exception: the object came from a cluster, and
a cluster is input.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import msgspec

from ledger import events


class Status(enum.StrEnum):
    """gitops-engine ``HealthStatusCode`` (health.go), lower-case; kstatus names in comments."""

    HEALTHY = "healthy"  # kstatus Current
    PROGRESSING = "progressing"  # kstatus InProgress, Terminating
    DEGRADED = "degraded"  # kstatus Failed
    SUSPENDED = "suspended"  # gitops-engine only: paused Deployment, suspended Job
    UNKNOWN = "unknown"  # the status could not be read


class Health(msgspec.Struct, frozen=True):
    """One verdict: ``reason`` is a CamelCase word (kstatus' condition reasons), ``message`` prose."""

    status: Status
    reason: str = ""
    message: str = ""


class Verdict(msgspec.Struct, frozen=True):
    """The health of a target's objects together, naming the object that decided it."""

    status: Status
    object: events.ObjectRef | None = None
    reason: str = ""
    message: str = ""
    objects: int = 0


class _Malformed(Exception):
    """A status field of the wrong type: the verdict becomes ``unknown``."""


_MISSING: Final = object()


def _field(obj: Mapping[str, Any], path: str) -> Any:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return _MISSING
        node = node.get(part, _MISSING)
        if node is _MISSING or node is None:
            return _MISSING
    return node


def _int(obj: Mapping[str, Any], path: str, default: int) -> int:
    """kstatus ``GetIntField``, but a value of another type is malformed, not the default."""
    value = _field(obj, path)
    if value is _MISSING:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Malformed(f"{path} is not an integer: {value!r}")
    return value


def _has(obj: Mapping[str, Any], path: str) -> bool:
    return _field(obj, path) is not _MISSING


def _str(obj: Mapping[str, Any], path: str, default: str = "") -> str:
    value = _field(obj, path)
    if value is _MISSING:
        return default
    if not isinstance(value, str):
        raise _Malformed(f"{path} is not a string: {value!r}")
    return value


def _bool(obj: Mapping[str, Any], path: str) -> bool:
    value = _field(obj, path)
    if value is _MISSING:
        return False
    if not isinstance(value, bool):
        raise _Malformed(f"{path} is not a boolean: {value!r}")
    return value


def _list(obj: Mapping[str, Any], path: str) -> list[Any]:
    value = _field(obj, path)
    if value is _MISSING:
        return []
    if not isinstance(value, list):
        raise _Malformed(f"{path} is not a list: {value!r}")
    return value


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """kstatus ``GetObjectWithConditions`` (util.go): type, status, reason, message."""
    found = _list(obj, "status.conditions")
    for item in found:
        if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
            raise _Malformed(f"status.conditions holds a condition without a type: {item!r}")
    return found


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in _conditions(obj) if c.get("type") == kind), None)


def _text(condition: Mapping[str, Any], key: str) -> str:
    value = condition.get(key)
    return value if isinstance(value, str) else ""


def healthy(message: str = "") -> Health:
    return Health(Status.HEALTHY, "", message)


def progressing(reason: str, message: str) -> Health:
    return Health(Status.PROGRESSING, reason, message)


def degraded(reason: str, message: str) -> Health:
    return Health(Status.DEGRADED, reason, message)


# --------------------------------------------------------------------------- generic rules


def _generic(obj: Mapping[str, Any]) -> Health | None:
    """kstatus generic.go ``checkGenericProperties``: deletion, generation, Reconciling/Stalled."""
    if _has(obj, "metadata.deletionTimestamp"):
        # kstatus Terminating; gitops-engine health.go "Pending deletion" (Progressing)
        return progressing("Terminating", "Resource scheduled for deletion")
    generation = _int(obj, "metadata.generation", -1)
    if generation >= 0 and _has(obj, "status.observedGeneration"):
        observed = _int(obj, "status.observedGeneration", 0)
        if observed != generation:  # kstatus generic.go checkGeneration
            kind = _str(obj, "kind")
            return progressing(
                "LatestGenerationNotObserved",
                f"{kind} generation is {generation}, but latest observed generation is {observed}",
            )
    for condition in _conditions(obj):
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Reconciling":
            return progressing(_text(condition, "reason"), _text(condition, "message"))
        if condition.get("type") == "Stalled":
            return degraded(_text(condition, "reason") or "Stalled", _text(condition, "message"))
    return None


def _ready_condition(obj: Mapping[str, Any]) -> Health | None:
    """kstatus status.go ``checkReadyCondition``: custom resources that publish ``Ready``.

    ``Ready=False`` is progressing, not failed: controllers set it while they reconcile, and a
    resource that has really failed says so with ``Stalled=True`` (checked generically).
    """
    condition = _condition(obj, "Ready")
    if condition is None:
        return None
    match condition.get("status"):
        case "True":
            return healthy("Resource is Ready")
        case "False" | "Unknown":
            return progressing(_text(condition, "reason") or "NotReady", _text(condition, "message"))
    return None


# --------------------------------------------------------------------------- one rule per kind


def _deployment(obj: Mapping[str, Any]) -> Health:
    """kstatus core.go ``deploymentConditions`` with gitops-engine health_deployment.go."""
    spec_replicas = _int(obj, "spec.replicas", 1)  # both: the controller's default
    replicas = _int(obj, "status.replicas", 0)
    updated = _int(obj, "status.updatedReplicas", 0)
    ready = _int(obj, "status.readyReplicas", 0)
    available_replicas = _int(obj, "status.availableReplicas", 0)
    # kstatus: without progressDeadlineSeconds the controller sets no Progressing condition.
    progressed = (
        not _has(obj, "spec.progressDeadlineSeconds")
        or _int(obj, "spec.progressDeadlineSeconds", 0) == 2**31 - 1
    )
    available = False
    for condition in _conditions(obj):
        if condition.get("type") == "Progressing":
            if condition.get("reason") == "ProgressDeadlineExceeded":  # both
                name = _str(obj, "metadata.name")
                return degraded(
                    "ProgressDeadlineExceeded",
                    _text(condition, "message") or f"Deployment {name!r} exceeded its progress deadline",
                )
            if condition.get("status") == "True" and condition.get("reason") == "NewReplicaSetAvailable":
                progressed = True
        elif condition.get("type") == "Available" and condition.get("status") == "True":
            available = True
    if spec_replicas > replicas:  # kstatus tooFewReplicas
        return progressing("LessReplicas", f"Replicas: {replicas}/{spec_replicas}")
    if spec_replicas > updated:  # kstatus tooFewUpdated; gitops-engine "new replicas have been updated"
        return progressing(
            "LessUpdated",
            f"Waiting for rollout to finish: {updated} out of {spec_replicas} new replicas have been updated",
        )
    if replicas > spec_replicas:  # kstatus extraPods; gitops-engine "old replicas pending termination"
        return progressing(
            "ExtraPods",
            f"Waiting for rollout to finish: {replicas - spec_replicas} old replicas are pending termination",
        )
    if updated > available_replicas:  # kstatus tooFewAvailable
        return progressing(
            "LessAvailable",
            f"Waiting for rollout to finish: {available_replicas} of {updated} updated replicas are available",
        )
    if spec_replicas > ready:  # kstatus tooFewReady
        return progressing("LessReady", f"Ready: {ready}/{spec_replicas}")
    if not progressed:  # kstatus
        return progressing("ReplicaSetNotAvailable", "ReplicaSet not Available")
    if not available:  # kstatus
        return progressing("DeploymentNotAvailable", "Deployment not Available")
    return healthy(f"Deployment is available. Replicas: {replicas}")


def _statefulset(obj: Mapping[str, Any]) -> Health:
    """gitops-engine health_statefulset.go's order, kstatus core.go ``stsConditions``' reasons."""
    generation = _int(obj, "metadata.generation", 0)
    observed = _int(obj, "status.observedGeneration", 0)
    if observed == 0 or generation > observed:  # gitops-engine
        return progressing(
            "LatestGenerationNotObserved", "Waiting for statefulset spec update to be observed"
        )
    spec_replicas = _int(obj, "spec.replicas", 1)
    replicas = _int(obj, "status.replicas", 0)
    ready = _int(obj, "status.readyReplicas", 0)
    updated = _int(obj, "status.updatedReplicas", 0)
    current = _int(obj, "status.currentReplicas", 0)
    if spec_replicas > replicas:  # kstatus
        return progressing("LessReplicas", f"Replicas: {replicas}/{spec_replicas}")
    if spec_replicas > ready:  # both
        return progressing("LessReady", f"Waiting for {spec_replicas - ready} pods to be ready")
    if replicas > spec_replicas:  # kstatus
        return progressing("ExtraPods", f"Pending termination: {replicas - spec_replicas}")
    if _str(obj, "spec.updateStrategy.type") == "OnDelete":  # both: pods update when deleted by hand
        return healthy(f"StatefulSet is using the OnDelete update strategy; {ready} ready pods")
    if _has(obj, "spec.updateStrategy.rollingUpdate.partition"):  # both
        partition = _int(obj, "spec.updateStrategy.rollingUpdate.partition", 0)
        if updated < spec_replicas - partition:
            return progressing(
                "PartitionRollout",
                f"Waiting for partitioned roll out to finish: {updated} out of {spec_replicas - partition}"
                " new pods have been updated",
            )
        return healthy(f"Partitioned roll out complete: {updated} new pods have been updated")
    if spec_replicas > current:  # kstatus
        return progressing("LessCurrent", f"current: {current}/{spec_replicas}")
    update_revision = _str(obj, "status.updateRevision")
    current_revision = _str(obj, "status.currentRevision")
    if update_revision != current_revision:  # both
        return progressing(
            "RevisionMismatch",
            f"Waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}",
        )
    return healthy(f"StatefulSet rolling update complete {current} pods at revision {current_revision}")


def _daemonset(obj: Mapping[str, Any]) -> Health:
    """kstatus core.go ``daemonsetConditions`` (and ``checkGenerationSet``), gitops-engine OnDelete."""
    if not _has(obj, "status.observedGeneration"):  # kstatus: set once the controller acted
        return progressing("NoObservedGeneration", "DaemonSet status.observedGeneration not found")
    generation = _int(obj, "metadata.generation", 0)
    observed = _int(obj, "status.observedGeneration", 0)
    if generation > observed:  # gitops-engine; kstatus' generic check already caught !=
        return progressing(
            "LatestGenerationNotObserved",
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        )
    desired = _int(obj, "status.desiredNumberScheduled", -1)
    if desired == -1:
        return progressing("NoDesiredNumber", "Missing .status.desiredNumberScheduled")
    current = _int(obj, "status.currentNumberScheduled", 0)
    updated = _int(obj, "status.updatedNumberScheduled", 0)
    available = _int(obj, "status.numberAvailable", 0)
    ready = _int(obj, "status.numberReady", 0)
    on_delete = _str(obj, "spec.updateStrategy.type") == "OnDelete"
    if desired > current:  # kstatus
        return progressing("LessCurrent", f"Current: {current}/{desired}")
    # gitops-engine: with OnDelete, pods are replaced only when deleted by hand, so "updated" lags
    if desired > updated and not on_delete:
        return progressing(
            "LessUpdated",
            f"Waiting for daemon set rollout to finish: {updated} out of {desired} new pods have been updated",
        )
    if desired > available:  # both
        return progressing(
            "LessAvailable",
            f"Waiting for daemon set rollout to finish: {available} of {desired} updated pods are available",
        )
    if desired > ready:  # kstatus
        return progressing("LessReady", f"Ready: {ready}/{desired}")
    return healthy(f"All replicas scheduled as expected. Replicas: {desired}")


def _replicaset(obj: Mapping[str, Any]) -> Health:
    """kstatus core.go ``replicasetConditions``."""
    failure = _condition(obj, "ReplicaFailure")
    if failure is not None and failure.get("status") == "True":
        return progressing("ReplicaFailure", "Replica Failure condition. Check Pods")
    spec_replicas = _int(obj, "spec.replicas", 1)
    replicas = _int(obj, "status.replicas", 0)
    ready = _int(obj, "status.readyReplicas", 0)
    available = _int(obj, "status.availableReplicas", 0)
    labelled = _int(obj, "status.fullyLabeledReplicas", 0)
    if spec_replicas > labelled:
        return progressing("LessLabelled", f"Labelled: {labelled}/{spec_replicas}")
    if spec_replicas > available:
        return progressing("LessAvailable", f"Available: {available}/{spec_replicas}")
    if spec_replicas > ready:
        return progressing("LessReady", f"Ready: {ready}/{spec_replicas}")
    if replicas > spec_replicas:
        return progressing("ExtraPods", f"Pending termination: {replicas - spec_replicas}")
    return healthy(f"ReplicaSet is available. Replicas: {replicas}")


def _job(obj: Mapping[str, Any]) -> Health:
    """gitops-engine health_job.go (running = progressing), kstatus core.go ``jobConditions``' reasons.

    Unlike gitops-engine, a condition counts only when its status is ``True`` (kstatus): a Job
    listing ``Failed: False`` has not failed.
    """
    parallelism = _int(obj, "spec.parallelism", 1)
    completions = _int(obj, "spec.completions", parallelism)
    succeeded = _int(obj, "status.succeeded", 0)
    failed = _int(obj, "status.failed", 0)
    active = _int(obj, "status.active", 0)
    for condition in _conditions(obj):
        if condition.get("status") != "True":
            continue
        match condition.get("type"):
            case "Failed":
                message = _text(condition, "message") or f"Job Failed. failed: {failed}/{completions}"
                return degraded(_text(condition, "reason") or "JobFailed", message)
            case "Complete":
                return healthy(f"Job Completed. succeeded: {succeeded}/{completions}")
            case "Suspended" if _bool(obj, "spec.suspend"):
                return Health(
                    Status.SUSPENDED, "JobSuspended", _text(condition, "message") or "Job is suspended"
                )
    if not _has(obj, "status.startTime"):
        return progressing("JobNotStarted", "Job not started")
    return progressing(
        "JobRunning", f"Job in progress. success: {succeeded}, active: {active}, failed: {failed}"
    )


def _pvc(obj: Mapping[str, Any]) -> Health:
    """gitops-engine health_pvc.go (Lost is degraded), kstatus core.go ``pvcConditions`` (reason)."""
    phase = _str(obj, "status.phase")
    match phase:
        case "Bound":
            return healthy("PVC is Bound")
        case "Lost":
            return degraded("ClaimLost", "PVC lost its volume")
        case "Pending" | "":
            return progressing("NotBound", f"PVC is not Bound. phase: {phase or 'unknown'}")
    return Health(Status.UNKNOWN, "UnknownPhase", f"PVC phase {phase!r} is not known")


def _service(obj: Mapping[str, Any]) -> Health:
    """gitops-engine health_service.go: a LoadBalancer waits for an ingress address."""
    if _str(obj, "spec.type", "ClusterIP") == "LoadBalancer" and not _list(
        obj, "status.loadBalancer.ingress"
    ):
        return progressing("NoIngressAddress", "Service of type LoadBalancer has no ingress address yet")
    return healthy("Service is ready")


def _waiting(obj: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(container, reason, message) of every container waiting with a reason."""
    found: list[tuple[str, str, str]] = []
    for item in _list(obj, "status.containerStatuses"):
        waiting = _field(item, "state.waiting") if isinstance(item, Mapping) else _MISSING
        if not isinstance(waiting, Mapping) or not isinstance(waiting.get("reason"), str):
            continue
        detail = waiting.get("message")
        found.append(
            (str(item.get("name", "?")), waiting["reason"], detail if isinstance(detail, str) else "")
        )
    return found


def _failing(reason: str) -> bool:
    """gitops-engine health_pod.go: waiting reasons that mean the container cannot start."""
    return reason.startswith("Err") or reason.endswith("Error") or reason.endswith("BackOff")


def _pod(obj: Mapping[str, Any]) -> Health:
    """gitops-engine health_pod.go with kstatus core.go ``podConditions``' crash-loop rule."""
    restart = _str(obj, "spec.restartPolicy", "Always")
    phase = _str(obj, "status.phase")
    message = _str(obj, "status.message")
    waiting = _waiting(obj)
    looping = [(name, detail) for name, reason, detail in waiting if reason == "CrashLoopBackOff"]
    if looping and (phase == "Running" or restart == "Always"):  # kstatus (any policy), gitops-engine
        names = ", ".join(name for name, _ in looping)
        details = ", ".join(detail for _, detail in looping if detail)
        return degraded("ContainerCrashLooping", details or f"Containers in CrashLoop state: {names}")
    failing = [
        detail or f"container {name!r}: {reason}" for name, reason, detail in waiting if _failing(reason)
    ]
    if restart == "Always" and failing:  # gitops-engine: not for OnFailure/Never (hook) pods
        return degraded("ContainerFailing", ", ".join(failing))
    match phase:
        case "":
            return progressing("PodNotObserved", "Pod phase not available")  # kstatus
        case "Pending":
            return progressing("PodPending", message or "Pod is in the Pending phase")
        case "Succeeded":
            return healthy(message or "Pod has completed successfully")
        case "Failed":
            return degraded("PodFailed", message or _pod_failure(obj))  # gitops-engine
        case "Running":
            ready = _condition(obj, "Ready")
            if restart == "Always":
                if ready is not None and ready.get("status") == "True":
                    return healthy(message or "Pod is Ready")
                for item in _list(obj, "status.containerStatuses"):
                    if isinstance(item, Mapping) and _has(item, "lastState.terminated"):
                        return degraded(
                            "ContainerTerminated", message or f"container {item.get('name')!r} terminated"
                        )
                return progressing("PodRunningNotReady", message or "Pod is running but is not Ready")
            # gitops-engine: OnFailure/Never pods have a finite life; done only when Succeeded
            return progressing("PodRunning", message or "Pod is running")
    return Health(Status.UNKNOWN, "UnknownPhase", f"Pod phase {phase!r} is not known")


def _pod_failure(obj: Mapping[str, Any]) -> str:
    """gitops-engine health_pod.go ``getFailMessage``."""
    statuses = _list(obj, "status.initContainerStatuses") + _list(obj, "status.containerStatuses")
    for item in statuses:
        terminated = _field(item, "state.terminated") if isinstance(item, Mapping) else _MISSING
        if not isinstance(terminated, Mapping):
            continue
        if isinstance(terminated.get("message"), str) and terminated["message"]:
            return str(terminated["message"])
        if terminated.get("reason") == "OOMKilled":
            return "OOMKilled"
        code = terminated.get("exitCode")
        if isinstance(code, int) and code != 0:
            return f"container {item.get('name')!r} failed with exit code {code}"
    return "Pod failed"


def _crd(obj: Mapping[str, Any]) -> Health:
    """kstatus core.go ``CRDConditions``."""
    for condition in _conditions(obj):
        kind, status = condition.get("type"), condition.get("status")
        if kind == "NamesAccepted" and status == "False":
            return degraded(_text(condition, "reason"), _text(condition, "message"))
        if kind == "Established":
            if status == "False" and condition.get("reason") != "Installing":
                return degraded(_text(condition, "reason"), _text(condition, "message"))
            if status == "True":
                return healthy("CRD is established")
    return progressing("Installing", "Install in progress")


_Rule = Callable[[Mapping[str, Any]], Health]

# kstatus core.go ``legacyTypes``: keyed by API group and kind, any version.
_RULES: Final[dict[tuple[str, str], _Rule]] = {
    ("apps", "Deployment"): _deployment,
    ("extensions", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("extensions", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("extensions", "ReplicaSet"): _replicaset,
    ("batch", "Job"): _job,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Service"): _service,
    ("", "Pod"): _pod,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
}


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def has_rule(api_version: str, kind: str) -> bool:
    """Whether ``kind`` has a rule of its own here (any other kind: generic checks, Ready condition)."""
    return (_group(api_version), kind) in _RULES


def assess(obj: Mapping[str, Any]) -> Health:
    """The health of one live object (kstatus status.go ``Compute``)."""
    try:
        kind = _str(obj, "kind")
        rule = _RULES.get((_group(_str(obj, "apiVersion")), kind))
        if rule is _deployment and _bool(obj, "spec.paused"):  # gitops-engine, before anything else
            return Health(Status.SUSPENDED, "DeploymentPaused", "Deployment is paused")
        generic = _generic(obj)
        if generic is not None:
            return generic
        if rule is not None:
            return rule(obj)
        # kstatus: a Ready condition decides for kinds without rules; without one, the object is
        # current once applied (gitops-engine has no rule for them either).
        return _ready_condition(obj) or healthy("Resource is current")
    except _Malformed as exc:  # gitops-engine health.go: a failed check is Unknown
        return Health(Status.UNKNOWN, "MalformedStatus", str(exc))


def ref(obj: Mapping[str, Any]) -> events.ObjectRef:
    """How an event names ``obj``."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    namespace = meta.get("namespace")
    return events.ObjectRef(
        api_version=str(obj.get("apiVersion", "")),
        kind=str(obj.get("kind", "")),
        name=str(meta.get("name", "")),
        namespace=namespace if isinstance(namespace, str) and namespace else None,
    )


def aggregate(objects: Iterable[tuple[events.ObjectRef, Mapping[str, Any] | None]]) -> Verdict:
    """The health of a target's objects: every one healthy → healthy; any degraded → degraded.

    ``objects`` pairs each applied object with its live state, or None when the cluster no longer
    has it (kstatus NotFound: progressing, the applier's drift handling puts it back). The first
    degraded object in the given order decides a degraded verdict; otherwise the first that is not
    healthy names why the target is still progressing. ``unknown`` counts as progressing (the
    revision's progress deadline bounds it); ``suspended`` objects (a paused Deployment, a
    suspended Job, as the manifests asked) make the verdict ``suspended`` once nothing else is
    pending, because waiting on them would never end.
    """
    count = 0
    first: dict[Status, tuple[events.ObjectRef, Health]] = {}
    for object_ref, live in objects:
        count += 1
        health = (
            assess(live) if live is not None else progressing("NotFound", "object not found on the cluster")
        )
        status = Status.PROGRESSING if health.status is Status.UNKNOWN else health.status
        first.setdefault(status, (object_ref, health))
    for status in (Status.DEGRADED, Status.PROGRESSING, Status.SUSPENDED):
        if status in first:
            object_ref, health = first[status]
            return Verdict(status, object_ref, health.reason, health.message, objects=count)
    return Verdict(Status.HEALTHY, objects=count)
