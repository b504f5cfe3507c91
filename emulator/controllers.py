"""Workload controllers: status moves as it does on a real cluster, on timers.

Without them every object would stay as applied, and nothing could tell "applied" from "running".
When a Deployment, StatefulSet, DaemonSet, Job, Pod, PersistentVolumeClaim or LoadBalancer Service
is created or its spec changes (its ``metadata.generation`` moves), the cluster's controllers

1. observe it on the next event-loop turn, as kube-controller-manager does after its watch event:
   ``status.observedGeneration`` catches up and the rollout shows as in progress (pods created, not
   ready; ``Progressing`` = ``ReplicaSetUpdated``);
2. finish it ``rollout_delay`` seconds later (per cluster, see :class:`Settings`): replicas ready and
   available, ``Available`` = ``True``, ``Progressing`` = ``NewReplicaSetAvailable``; a Job completes,
   a PVC binds, a LoadBalancer Service gets an ingress address.

**Crash-looping images.** A container image whose tag ends in ``:crashloop`` (``nginx:crashloop``,
``registry.local/app:crashloop``) never becomes ready: a Deployment's pods stay unavailable and, after
``spec.progressDeadlineSeconds`` (600 by default, small values honoured, so tests can use 1), its
``Progressing`` condition turns ``False`` with reason ``ProgressDeadlineExceeded``; a Job fails
(``Failed``, ``BackoffLimitExceeded``) after the delay; a Pod shows ``CrashLoopBackOff``; StatefulSets
and DaemonSets stay not ready.

Decisions:

- **Timers, not loops.** One ``call_at`` handle per object with a pending step, none for a settled
  one: 1,000 idle clusters cost nothing, a rollout to 1,000 clusters costs 2 callbacks per object.
  A new generation cancels the pending step; a step whose object was deleted, replaced (another
  uid) or changed again (another generation) does nothing.
- **Status goes through the status subresource** as field manager ``kube-controller-manager``, so
  resourceVersion, managedFields and watch events are exactly those of any other status write.
- **Only spec changes trigger**, and an out-of-band write that carries a status
  (``Cluster.put_object`` / ``patch_object`` with ``status``) is taken as the status a test wants:
  the controllers leave that object alone until its next spec change. ``Settings.enabled = False``
  (admin setting ``controllers: false``) switches them off for the whole cluster.
- Without a running event loop (a cluster used from plain synchronous code) nothing is scheduled.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from emulator import clock
from emulator.catalog import ResourceType

log = logging.getLogger(__name__)

MANAGER = "kube-controller-manager"
CRASHLOOP_TAG = ":crashloop"
DEFAULT_PROGRESS_DEADLINE = 600
DEFAULT_BACKOFF_LIMIT = 6
KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod", "PersistentVolumeClaim", "Service"}
)

Key = tuple[ResourceType, str, str]  # type, namespace ("" when cluster-scoped), name
Status = dict[str, Any]


@dataclass(slots=True)
class Settings:
    """Per-cluster controller behaviour (also settable over the admin API)."""

    rollout_delay: float = 0.0  # seconds from observing a new generation to "ready"
    enabled: bool = True
    nodes: int = 1  # how many pods a DaemonSet schedules

    def update(self, changes: Mapping[str, Any]) -> None:
        unknown = set(changes) - {"rollout_delay", "enabled", "nodes"}
        if unknown:
            raise ValueError(f"unknown controller settings: {sorted(unknown)}")
        delay = float(changes.get("rollout_delay", self.rollout_delay))
        nodes = int(changes.get("nodes", self.nodes))
        if delay < 0:
            raise ValueError("rollout_delay must be >= 0")
        if nodes < 0:
            raise ValueError("nodes must be >= 0")
        enabled = changes.get("enabled", self.enabled)
        if not isinstance(enabled, bool):
            raise ValueError("enabled must be true or false")
        self.rollout_delay, self.nodes, self.enabled = delay, nodes, enabled


class Host(Protocol):
    """What the controllers need from their cluster."""

    def live(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None: ...

    def set_status(self, rt: ResourceType, namespace: str, name: str, status: Status) -> None: ...


now = clock.now_rfc3339


def _get(obj: Mapping[str, Any], path: str, default: Any = None) -> Any:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node if node is not None else default


def _count(obj: Mapping[str, Any], path: str, default: int) -> int:
    value = _get(obj, path, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def crashloops(pod_spec: Any) -> bool:
    """True if any (init) container's image tag ends in ``:crashloop``."""
    if not isinstance(pod_spec, Mapping):
        return False
    for group in ("initContainers", "containers"):
        for container in pod_spec.get(group) or ():
            image = container.get("image") if isinstance(container, Mapping) else None
            if isinstance(image, str) and image.endswith(CRASHLOOP_TAG):
                return True
    return False


def _hash(value: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(value, order="sorted")).hexdigest()[:10]


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    stamp = now()
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def _with_condition(status: Status, condition: dict[str, str]) -> Status:
    kept = [c for c in status.get("conditions") or () if c.get("type") != condition["type"]]
    return {**status, "conditions": [*kept, condition]}


Step = Callable[[dict[str, Any]], "Status | None"]


class Controllers:
    """The controllers of one cluster: a pending step per object, on the running loop."""

    def __init__(self, host: Host, settings: Settings | None = None) -> None:
        self.host = host
        self.settings = settings or Settings()
        self._timers: dict[Key, asyncio.Handle] = {}

    def pending(self) -> int:
        return len(self._timers)

    def cancel_all(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def forget(self, rt: ResourceType, namespace: str, name: str) -> None:
        handle = self._timers.pop((rt, namespace, name), None)
        if handle is not None:
            handle.cancel()

    def observe(self, rt: ResourceType, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> None:
        """Called after every stored write: react to a new object or a new generation."""
        if not self.settings.enabled or rt.kind not in KINDS:
            return
        meta = new.get("metadata") or {}
        if old is not None and (old.get("metadata") or {}).get("generation") == meta.get("generation"):
            return
        if meta.get("deletionTimestamp"):
            return
        plan = self._plan(rt, old, new)
        if plan:
            self._run(rt, str(meta.get("namespace") or ""), str(meta.get("name")), new, plan, None)

    # ------------------------------------------------------------------ scheduling

    def _run(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        obj: Mapping[str, Any],
        plan: list[tuple[float, Step]],
        start: float | None,
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        key = (rt, namespace, name)
        self.forget(rt, namespace, name)
        meta = obj.get("metadata") or {}
        identity = (meta.get("uid"), meta.get("generation"))
        begun = loop.time() if start is None else start
        offset = plan[0][0]
        self._timers[key] = loop.call_at(begun + offset, self._fire, key, identity, plan, begun)

    def _fire(
        self, key: Key, identity: tuple[Any, Any], plan: list[tuple[float, Step]], start: float
    ) -> None:
        self._timers.pop(key, None)
        rt, namespace, name = key
        live = self.host.live(rt, namespace, name)
        if live is None or not self.settings.enabled:
            return
        meta = live.get("metadata") or {}
        if (meta.get("uid"), meta.get("generation")) != identity:
            return
        _offset, step = plan[0]
        try:
            status = step(live)
            if status is not None:
                self.host.set_status(rt, namespace, name, status)
        except Exception:  # a controller bug must not take the cluster down
            log.exception("emulated %s controller failed on %s/%s", rt.kind, namespace, name)
            return
        if len(plan) > 1:
            after = self.host.live(rt, namespace, name)
            if after is not None:
                self._run(rt, namespace, name, after, plan[1:], start)

    # ------------------------------------------------------------------ plans per kind

    def _plan(
        self, rt: ResourceType, old: Mapping[str, Any] | None, new: Mapping[str, Any]
    ) -> list[tuple[float, Step]]:
        delay = self.settings.rollout_delay
        previous: Status = dict(new.get("status") or {})
        match rt.kind:
            case "Deployment":
                return self._deployment(new, previous, delay)
            case "StatefulSet":
                return self._statefulset(new, previous, delay, created=old is None)
            case "DaemonSet":
                return self._daemonset(new, previous, delay, created=old is None)
            case "Job":
                return self._job(new, previous, delay)
            case "Pod":
                return self._pod(new, delay)
            case "PersistentVolumeClaim":
                return [(delay, _bind_claim)]
            case "Service":
                return [(delay, _load_balance)] if _get(new, "spec.type") == "LoadBalancer" else []
        return []

    def _deployment(self, obj: Mapping[str, Any], previous: Status, delay: float) -> list[tuple[float, Step]]:
        replicas = _count(obj, "spec.replicas", 1)
        replica_set = f"{_get(obj, 'metadata.name')}-{_hash(_get(obj, 'spec.template'))}"
        old = min(_count(previous, "availableReplicas", 0), replicas) if previous else 0

        def observe(live: dict[str, Any]) -> Status:
            status = dict(live.get("status") or {})
            status["observedGeneration"] = _get(live, "metadata.generation")
            if _get(live, "spec.paused") is True:
                return _with_condition(
                    status, _condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
                )
            status.update(
                replicas=replicas + old,
                updatedReplicas=replicas,
                readyReplicas=old,
                availableReplicas=old,
                unavailableReplicas=replicas,
            )
            available = (
                _condition(
                    "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
                )
                if old >= replicas
                else _condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                )
            )
            status = _with_condition(status, available)
            return _with_condition(
                status,
                _condition(
                    "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{replica_set}" is progressing.'
                ),
            )

        def complete(live: dict[str, Any]) -> Status:
            status = {
                **(live.get("status") or {}),
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
            status.pop("unavailableReplicas", None)
            status = _with_condition(
                status,
                _condition(
                    "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
                ),
            )
            return _with_condition(
                status,
                _condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{replica_set}" has successfully progressed.',
                ),
            )

        def exceed(live: dict[str, Any]) -> Status:
            return _with_condition(
                dict(live.get("status") or {}),
                _condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{replica_set}" has timed out progressing.',
                ),
            )

        plan: list[tuple[float, Step]] = [(0.0, observe)]
        if _get(obj, "spec.paused") is True:
            return plan
        deadline = float(_count(obj, "spec.progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE))
        if replicas > 0 and crashloops(_get(obj, "spec.template.spec")):
            return [*plan, (deadline, exceed)]
        if replicas > 0 and deadline < delay:
            plan.append((deadline, exceed))
        return [*plan, (delay, complete)]

    def _statefulset(
        self, obj: Mapping[str, Any], previous: Status, delay: float, *, created: bool
    ) -> list[tuple[float, Step]]:
        replicas = _count(obj, "spec.replicas", 1)
        revision = f"{_get(obj, 'metadata.name')}-{_hash(_get(obj, 'spec.template'))}"
        current_revision = revision if created else str(previous.get("currentRevision") or revision)
        ready_before = 0 if created else min(_count(previous, "readyReplicas", 0), replicas)
        strategy = _get(obj, "spec.updateStrategy.type", "RollingUpdate")
        partition = _count(obj, "spec.updateStrategy.rollingUpdate.partition", 0)

        def observe(live: dict[str, Any]) -> Status:
            return {
                **(live.get("status") or {}),
                "observedGeneration": _get(live, "metadata.generation"),
                "replicas": replicas,
                "readyReplicas": ready_before,
                "availableReplicas": ready_before,
                "currentReplicas": 0 if created else _count(previous, "currentReplicas", replicas),
                "updatedReplicas": 0,
                "currentRevision": current_revision,
                "updateRevision": revision,
                "collisionCount": 0,
            }

        def complete(live: dict[str, Any]) -> Status:
            status = {**(live.get("status") or {}), "readyReplicas": replicas, "availableReplicas": replicas}
            if created or (strategy != "OnDelete" and partition == 0) or revision == current_revision:
                status.update(currentReplicas=replicas, updatedReplicas=replicas, currentRevision=revision)
            elif strategy != "OnDelete":  # pods from the partition up are updated
                updated = max(replicas - partition, 0)
                status.update(currentReplicas=replicas - updated, updatedReplicas=updated)
            return status

        plan: list[tuple[float, Step]] = [(0.0, observe)]
        if replicas > 0 and crashloops(_get(obj, "spec.template.spec")):
            return plan
        return [*plan, (delay, complete)]

    def _daemonset(
        self, obj: Mapping[str, Any], previous: Status, delay: float, *, created: bool
    ) -> list[tuple[float, Step]]:
        nodes = self.settings.nodes
        ready_before = 0 if created else min(_count(previous, "numberReady", 0), nodes)
        on_delete = _get(obj, "spec.updateStrategy.type") == "OnDelete"

        def observe(live: dict[str, Any]) -> Status:
            return {
                **(live.get("status") or {}),
                "observedGeneration": _get(live, "metadata.generation"),
                "desiredNumberScheduled": nodes,
                "currentNumberScheduled": nodes,
                "numberMisscheduled": 0,
                "updatedNumberScheduled": 0
                if created or not on_delete
                else _count(previous, "updatedNumberScheduled", 0),
                "numberReady": ready_before,
                "numberAvailable": ready_before,
                "numberUnavailable": nodes - ready_before,
            }

        def complete(live: dict[str, Any]) -> Status:
            status = {**(live.get("status") or {}), "numberReady": nodes, "numberAvailable": nodes}
            status.pop("numberUnavailable", None)
            if created or not on_delete:
                status["updatedNumberScheduled"] = nodes
            return status

        plan: list[tuple[float, Step]] = [(0.0, observe)]
        if nodes > 0 and crashloops(_get(obj, "spec.template.spec")):
            return plan
        return [*plan, (delay, complete)]

    def _job(self, obj: Mapping[str, Any], previous: Status, delay: float) -> list[tuple[float, Step]]:
        parallelism = _count(obj, "spec.parallelism", 1)
        completions = _count(obj, "spec.completions", parallelism)
        backoff = _count(obj, "spec.backoffLimit", DEFAULT_BACKOFF_LIMIT)
        if any(c.get("type") in ("Complete", "Failed") for c in previous.get("conditions") or ()):
            return []  # a finished Job stays finished

        def start(live: dict[str, Any]) -> Status:
            status = dict(live.get("status") or {})
            if _get(live, "spec.suspend") is True:
                status.pop("active", None)
                return _with_condition(
                    status, _condition("Suspended", "True", "JobSuspended", "Job suspended")
                )
            if any(c.get("type") == "Suspended" for c in status.get("conditions") or ()):
                status = _with_condition(
                    status, _condition("Suspended", "False", "JobResumed", "Job resumed")
                )
            status.setdefault("startTime", now())
            return {**status, "active": parallelism, "ready": 0}

        def finish(live: dict[str, Any]) -> Status:
            status = dict(live.get("status") or {})
            status.pop("active", None)
            if crashloops(_get(live, "spec.template.spec")):
                message = "Job has reached the specified backoff limit"
                status = {**status, "failed": backoff + 1, "ready": 0}
                status = _with_condition(
                    status, _condition("FailureTarget", "True", "BackoffLimitExceeded", message)
                )
                return _with_condition(status, _condition("Failed", "True", "BackoffLimitExceeded", message))
            message = "Reached expected number of succeeded pods"
            status = {**status, "succeeded": completions, "ready": 0, "completionTime": now()}
            status = _with_condition(
                status, _condition("SuccessCriteriaMet", "True", "CompletionsReached", message)
            )
            return _with_condition(status, _condition("Complete", "True", "CompletionsReached", message))

        if _get(obj, "spec.suspend") is True:
            return [(0.0, start)]
        return [(0.0, start), (delay, finish)]

    def _pod(self, obj: Mapping[str, Any], delay: float) -> list[tuple[float, Step]]:
        spec = _get(obj, "spec", {})
        restart = _get(obj, "spec.restartPolicy", "Always")
        failing = crashloops(spec)
        containers = [c for c in (spec.get("containers") or ()) if isinstance(c, Mapping)]

        def run(live: dict[str, Any]) -> Status:
            status: Status = {**(live.get("status") or {}), "startTime": now()}
            if failing and restart == "Never":
                return {**status, "phase": "Failed", "message": "container exited with code 1"}
            if not failing and restart != "Always":
                return {**status, "phase": "Succeeded"}
            statuses = []
            for container in containers:
                state: dict[str, Any] = (
                    {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off restarting failed container {container.get('name')}",
                        }
                    }
                    if failing
                    else {"running": {"startedAt": now()}}
                )
                statuses.append(
                    {
                        "name": container.get("name"),
                        "image": container.get("image"),
                        "ready": not failing,
                        "restartCount": 5 if failing else 0,
                        "started": not failing,
                        "state": state,
                    }
                )
            ready = "False" if failing else "True"
            status = {**status, "phase": "Running", "containerStatuses": statuses}
            return _with_condition(
                status, _condition("Ready", ready, "" if ready == "True" else "ContainersNotReady", "")
            )

        return [(delay, run)]


def _bind_claim(live: dict[str, Any]) -> Status:
    storage = _get(live, "spec.resources.requests.storage", "1Gi")
    return {
        **(live.get("status") or {}),
        "phase": "Bound",
        "accessModes": _get(live, "spec.accessModes", ["ReadWriteOnce"]),
        "capacity": {"storage": storage},
    }


def _load_balance(live: dict[str, Any]) -> Status:
    address = int(_hash(_get(live, "metadata.uid")), 16) % 250 + 1
    return {
        **(live.get("status") or {}),
        "loadBalancer": {"ingress": [{"ip": f"192.0.2.{address}", "ipMode": "VIP"}]},
    }
