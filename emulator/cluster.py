"""One emulated cluster: its objects and the rules for changing them.

Everything that mutates state is synchronous and runs to completion inside
one event-loop step, so concurrent HTTP requests never interleave halfway
through a write, just as etcd transactions do not.  The HTTP layer
(:mod:`emulator.api`) only parses requests and calls these methods; tests call
the same methods (``put_object``, ``patch_object``, ``get``, ``objects``) to
look at or tamper with a cluster out of band.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import random
import string
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from emulator import clock, controllers, ownership, validation, watches
from emulator.catalog import DEFAULT_CATALOG, NAMESPACE, Catalog, ResourceType
from emulator.codec import clone, clone_dict
from emulator.faults import Fault, FaultSet
from emulator.fieldpaths import strip_nulls
from emulator.ownership import Managers, apply_config, fields_signature, record_update
from emulator.patches import JSON_PATCH, json_patch, merge_patch
from emulator.requestlog import RequestLog
from emulator.status import (
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    namespace_not_found,
    not_found,
    stale_update,
    success_status,
)

BUILTIN_NAMESPACES: tuple[str, ...] = ("default", "kube-system", "kube-public", "kube-node-lease")
OUT_OF_BAND_MANAGER = "emulator-manual"
DEFAULT_BOOKMARK_INTERVAL = 60.0  # the apiserver sends a bookmark about once a minute
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
_METADATA_ORDER = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
)
_cluster_ips = itertools.count(1)

Predicate = Callable[[Mapping[str, Any]], bool]


now_rfc3339 = clock.now_rfc3339


@dataclass(slots=True)
class StoredObject:
    obj: dict[str, Any]
    managers: Managers


def _spec_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything whose change bumps ``metadata.generation``."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _volatile_free(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": meta}


class Cluster:
    """State of one emulated API server.

    The read helpers return deep copies; mutate the cluster only through the
    write methods so resourceVersion, generation and field ownership stay right.
    """

    def __init__(
        self, name: str, catalog: Catalog = DEFAULT_CATALOG, *, request_log_limit: int = 10_000
    ) -> None:
        self.name = name
        self.catalog = catalog
        self.faults = FaultSet()
        self.requests = RequestLog(request_log_limit)
        self._down = False
        self._hands_off = False
        self._rv = 0
        self._store: dict[ResourceType, dict[tuple[str, str], StoredObject]] = {}
        self.hub = watches.Hub()
        self.controllers = controllers.Controllers(self)
        self.bookmark_interval = DEFAULT_BOOKMARK_INTERVAL
        self._seed()

    def _seed(self) -> None:
        self._store = {rt: {} for rt in self.catalog}
        for ns in BUILTIN_NAMESPACES:
            self.create(NAMESPACE, None, {"metadata": {"name": ns}}, manager="kube-apiserver")

    # ------------------------------------------------------------- behaviour

    @property
    def down(self) -> bool:
        """A down cluster drops every connection, open watches included."""
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        self._down = value
        if value:
            self.hub.drop_all()

    def settings(self) -> dict[str, Any]:
        """How this cluster behaves: controller timing, bookmarks, watch history."""
        return {
            "rollout_delay": self.controllers.settings.rollout_delay,
            "controllers": self.controllers.settings.enabled,
            "nodes": self.controllers.settings.nodes,
            "bookmark_interval": self.bookmark_interval,
            "watch_history": self.hub.history,
        }

    def configure(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change some settings (names as in :meth:`settings`); ValueError names a bad one."""
        unknown = set(changes) - set(self.settings())
        if unknown:
            raise ValueError(f"unknown cluster settings: {sorted(unknown)}")
        interval = float(changes.get("bookmark_interval", self.bookmark_interval))
        if interval <= 0:
            raise ValueError("bookmark_interval must be > 0")
        history = changes.get("watch_history", self.hub.history)
        if isinstance(history, bool) or not isinstance(history, int):
            raise ValueError("watch_history must be an integer")
        renamed = {"enabled" if k == "controllers" else k: v for k, v in changes.items()}
        self.controllers.settings.update(
            {k: v for k, v in renamed.items() if k in ("rollout_delay", "enabled", "nodes")}
        )
        self.hub.history = history
        self.bookmark_interval = interval
        return self.settings()

    def drop_watches(self) -> int:
        """Cut every open watch connection (as a restarting apiserver or load balancer would)."""
        return self.hub.drop_all()

    def compact(self) -> str:
        """Forget the change history up to now: watches from an older resourceVersion get 410."""
        self.hub.compact(self._rv)
        return self.resource_version

    # ---------------------------------------------------- controller host

    def live(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        stored = self._store[rt].get(self._key(rt, namespace or None, name))
        return stored.obj if stored else None

    def set_status(self, rt: ResourceType, namespace: str, name: str, status: dict[str, Any]) -> None:
        """A controller's status write: like PUT .../status, without re-validating the object.

        Only the status subtree is compared and re-owned, so the cost of the controllers stays
        proportional to what they write (the fan-out benchmark rolls out to 1,000 clusters).
        """
        key = self._key(rt, namespace or None, name)
        stored = self._store[rt].get(key)
        if stored is None:
            return
        old = stored.obj
        if old.get("status") == status:
            return
        managers, touched = ownership.record_status_update(
            stored.managers,
            old.get("status") or {},
            status,
            controllers.MANAGER,
            api_version=rt.api_version,
            now=now_rfc3339(),
        )
        self._rv += 1
        kept = {
            (m["manager"], m["operation"], m.get("subresource", "")): m
            for m in old["metadata"].get("managedFields") or ()
        }
        managed = [kept[k] if k in kept and k not in touched else e.managed_field() for k, e in managers.items()]
        meta = {**old["metadata"], "resourceVersion": str(self._rv), "managedFields": managed}
        new = {**old, "metadata": meta, "status": status}
        self._store[rt][key] = StoredObject(new, managers)
        self.hub.publish(watches.Change(self._rv, watches.MODIFIED, rt, new, old))

    # ------------------------------------------------------------------ reads

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> tuple[str, str]:
        return ((namespace or "") if rt.namespaced else "", name)

    def _stored(self, rt: ResourceType, namespace: str | None, name: str) -> StoredObject:
        stored = self._store[rt].get(self._key(rt, namespace, name))
        if stored is None:
            raise not_found(rt, name)
        return stored

    def read(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        """The live object (not a copy: callers must not mutate it)."""
        return self._stored(rt, namespace, name).obj

    def select(
        self, rt: ResourceType, namespace: str | None, predicate: Predicate | None = None
    ) -> list[dict[str, Any]]:
        """Live objects (not copies) in etcd order: by namespace, then name."""
        bucket = self._store[rt]
        keys = (
            sorted(bucket)
            if namespace is None or not rt.namespaced
            else sorted(k for k in bucket if k[0] == namespace)
        )
        objs = (bucket[k].obj for k in keys)
        return [o for o in objs if predicate is None or predicate(o)]

    def namespace_exists(self, namespace: str) -> bool:
        return ("", namespace) in self._store[NAMESPACE]

    def managers(self, rt: ResourceType, namespace: str | None, name: str) -> Managers:
        return self._stored(rt, namespace, name).managers

    # ------------------------------------------------------------ test helpers

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A deep copy of one object, or None if it does not exist."""
        rt = self.catalog.require(api_version, kind)
        stored = self._store[rt].get(self._key(rt, namespace, name))
        return clone(stored.obj) if stored else None

    def objects(
        self, api_version: str | None = None, kind: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Deep copies of all objects, optionally filtered by apiVersion, kind and namespace."""
        result: list[dict[str, Any]] = []
        for rt, bucket in self._store.items():
            if (api_version and rt.api_version != api_version) or (kind and rt.kind != kind):
                continue
            for (ns, _name), stored in sorted(bucket.items()):
                if namespace is None or ns == namespace:
                    result.append(clone(stored.obj))
        return result

    def applied_config(
        self, api_version: str, kind: str, namespace: str | None, name: str, manager: str
    ) -> dict[str, Any] | None:
        """The configuration ``manager`` last server-side applied to an object."""
        rt = self.catalog.require(api_version, kind)
        stored = self._store[rt].get(self._key(rt, namespace, name))
        entry = stored.managers.get((manager, "Apply", "")) if stored else None
        return clone(entry.applied) if entry and entry.applied is not None else None

    def put_object(self, obj: Mapping[str, Any], *, manager: str = OUT_OF_BAND_MANAGER) -> dict[str, Any]:
        """Create or replace an object out of band (status included), like a manual edit."""
        rt = self.catalog.require(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace"), str(meta.get("name", ""))
        stored = self._store[rt].get(self._key(rt, namespace, name))
        with self._status_by_hand("status" in obj):
            if stored is None:
                return clone_dict(self.create(rt, namespace, dict(obj), manager=manager, keep_status=True))
            return clone_dict(
                self._update(rt, namespace, name, lambda _old: clone(obj), manager=manager, keep_status=True)
            )

    @contextlib.contextmanager
    def _status_by_hand(self, given: bool) -> Iterator[None]:
        """An out-of-band write that sets a status is the status a test wants: controllers keep off."""
        self._hands_off = given
        try:
            yield
        finally:
            self._hands_off = False

    def patch_object(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        manager: str = OUT_OF_BAND_MANAGER,
    ) -> dict[str, Any]:
        """JSON-merge-patch an object out of band (status included), like ``kubectl edit``."""
        rt = self.catalog.require(api_version, kind)
        with self._status_by_hand("status" in patch):
            return clone_dict(
                self._update(
                    rt,
                    namespace,
                    name,
                    lambda old: merge_patch(old, dict(patch)),
                    manager=manager,
                    keep_status=True,
                )
            )

    def delete_object(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """Remove an object immediately (finalizers ignored); False if it did not exist."""
        rt = self.catalog.require(api_version, kind)
        key = self._key(rt, namespace, name)
        if key not in self._store[rt]:
            return False
        self._remove(rt, key)
        return True

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"metadata": {"name": name}}
        if labels:
            body["metadata"]["labels"] = dict(labels)
        return clone_dict(self.create(NAMESPACE, None, body, manager=OUT_OF_BAND_MANAGER))

    def add_fault(self, fault: Fault | None = None, **kwargs: Any) -> Fault:
        """Add a fault (a :class:`Fault`, or its fields as keyword arguments)."""
        return self.faults.add(fault if fault is not None else Fault(**kwargs))

    def clear_faults(self) -> None:
        self.faults.clear()

    def reset(self) -> None:
        """Forget all objects, faults and logged requests; back to a fresh cluster.

        Open watches are cut and the history is compacted, so no watch resumes across a reset.
        """
        self.faults.clear()
        self.requests.clear()
        self.down = False
        self.controllers.cancel_all()
        self.hub.drop_all()
        self._seed()
        self.hub.compact(self._rv)

    # ----------------------------------------------------------------- writes

    def _check_gvk(self, rt: ResourceType, body: Mapping[str, Any], *, required: bool) -> None:
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if required and (not api_version or not kind):
            raise bad_request("apiVersion and kind must be set in the body of an apply request")
        if api_version is not None and api_version != rt.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({rt.api_version})"
            )
        if kind is not None and kind != rt.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")

    def _metadata(self, body: Mapping[str, Any]) -> dict[str, Any]:
        meta = body.get("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        return meta

    def _check_identity(
        self, rt: ResourceType, namespace: str | None, name: str | None, meta: Mapping[str, Any]
    ) -> None:
        body_ns = meta.get("namespace")
        if rt.namespaced and body_ns and namespace and body_ns != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        body_name = meta.get("name")
        if name is not None and body_name and body_name != name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )

    def _require_namespace(self, rt: ResourceType, namespace: str | None) -> None:
        if not rt.namespaced:
            return
        if not namespace:
            raise bad_request("the server could not find the requested resource: namespace is required")
        if not self.namespace_exists(namespace):
            raise namespace_not_found(namespace)

    def _normalize(
        self, rt: ResourceType, obj: dict[str, Any], namespace: str | None, name: str
    ) -> dict[str, Any]:
        """A client-supplied body with identity filled in and server metadata stripped."""
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        meta = obj.setdefault("metadata", {})
        for key in _SERVER_METADATA:
            meta.pop(key, None)
        meta["name"] = name
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    def _apply_type_rules(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Conversions and defaults the real API server applies on every write."""
        meta = obj["metadata"]
        if rt.kind == "Secret":
            string_data = obj.pop("stringData", None)
            if string_data:
                data = obj.setdefault("data", {})
                for key, value in string_data.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()
            obj.setdefault("type", "Opaque")
        elif rt.kind == "Namespace":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        elif rt.kind in ("Deployment", "StatefulSet"):
            spec = obj.get("spec")
            if isinstance(spec, dict):
                spec.setdefault("replicas", 1)
                if rt.kind == "Deployment":
                    spec.setdefault("progressDeadlineSeconds", controllers.DEFAULT_PROGRESS_DEADLINE)
        elif rt.kind == "Service":
            spec = obj.setdefault("spec", {})
            if isinstance(spec, dict):
                spec.setdefault("type", "ClusterIP")
                old_spec = (old or {}).get("spec") or {}
                if "clusterIP" not in spec and "clusterIP" in old_spec:  # allocated IPs are kept
                    spec["clusterIP"] = old_spec["clusterIP"]
                    spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
                if spec.get("type") != "ExternalName" and "clusterIP" not in spec:
                    n = next(_cluster_ips)
                    spec["clusterIP"] = f"10.96.{(n // 250) % 250}.{n % 250 + 1}"
                    spec["clusterIPs"] = [spec["clusterIP"]]

    def _finish_write(
        self,
        rt: ResourceType,
        old: StoredObject | None,
        new: dict[str, Any],
        managers: Managers,
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        """Validate, stamp server metadata and store ``new`` (unless nothing changed)."""
        self._apply_type_rules(rt, new, old.obj if old else None)
        validation.check_types(rt, new)
        validation.check_object(rt, new)
        meta = new["metadata"]
        if old is not None:
            old_meta = old.obj["metadata"]
            for field in (
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            if fields_signature(managers) == fields_signature(old.managers):
                meta["resourceVersion"] = old_meta.get("resourceVersion")
                if _volatile_free(new) == _volatile_free(old.obj):
                    return old.obj  # a no-op write does not bump resourceVersion
            if _spec_part(new) != _spec_part(old.obj):
                meta["generation"] = int(old_meta.get("generation", 0)) + 1
        else:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
        if dry_run:
            meta["resourceVersion"] = old.obj["metadata"]["resourceVersion"] if old else ""
            if not meta["resourceVersion"]:
                del meta["resourceVersion"]
        else:
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
        if managers:
            meta["managedFields"] = [entry.managed_field() for entry in managers.values()]
        else:
            meta.pop("managedFields", None)
        new["metadata"] = {k: meta[k] for k in _METADATA_ORDER if k in meta} | meta
        if dry_run:
            return new
        key = self._key(rt, meta.get("namespace"), meta["name"])
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(rt, key)  # last finalizer removed from an object being deleted
            return new
        self._store[rt][key] = StoredObject(new, managers)
        previous = old.obj if old else None
        self.hub.publish(
            watches.Change(self._rv, watches.MODIFIED if old else watches.ADDED, rt, new, previous)
        )
        if self._hands_off:
            self.controllers.forget(rt, meta.get("namespace") or "", meta["name"])
        else:
            self.controllers.observe(rt, previous, new)
        return new

    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        body: dict[str, Any],
        *,
        manager: str,
        dry_run: bool = False,
        keep_status: bool = False,
    ) -> dict[str, Any]:
        """POST: create a new object (409 AlreadyExists if present)."""
        self._check_gvk(rt, body, required=False)
        meta = self._metadata(body)
        self._check_identity(rt, namespace, None, meta)
        namespace = namespace or meta.get("namespace")
        name = meta.get("name")
        if not name and meta.get("generateName"):
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            name = f"{meta['generateName']}{suffix}"
        if not name:
            raise invalid(
                rt,
                "",
                [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value: name or generateName is required",
                        "field": "metadata.name",
                    }
                ],
            )
        if not isinstance(name, str):
            raise bad_request("metadata.name must be a string")
        self._require_namespace(rt, namespace)
        if self._key(rt, namespace, name) in self._store[rt]:
            raise already_exists(rt, name)
        obj = self._normalize(rt, clone(body), namespace, name)
        validation.check_types(rt, obj)
        status = obj.pop("status", None)
        managers = record_update(None, obj, {}, manager, api_version=rt.api_version, now=now_rfc3339())
        if keep_status and status is not None:
            obj["status"] = status
        elif rt.has_status and rt.default_status is not None:
            obj["status"] = clone(rt.default_status)
        elif not rt.has_status and status is not None:
            obj["status"] = status
        return self._finish_write(rt, None, obj, managers, dry_run=dry_run)

    def apply(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        *,
        manager: str,
        force: bool = False,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Server-side apply; creates the object if missing. Returns (object, created)."""
        if not manager:
            raise bad_request("fieldManager is required for apply requests")
        self._check_gvk(rt, body, required=True)
        config = strip_nulls(body)
        meta = self._metadata(config)
        self._check_identity(rt, namespace, name, meta)
        precondition = meta.get("resourceVersion")
        self._normalize(rt, config, namespace, name)
        if rt.has_status:
            config.pop("status", None)
        validation.check_types(rt, config)
        key = self._key(rt, namespace, name)
        old = self._store[rt].get(key)
        now = now_rfc3339()
        if old is None:
            self._require_namespace(rt, namespace)
            validation.check_name(rt, name)
            if precondition:
                raise not_found(rt, name)
            live: dict[str, Any] = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": {"name": name}}
            if rt.namespaced:
                live["metadata"]["namespace"] = namespace
            managers = apply_config(
                live, {}, manager, config, force=force, api_version=rt.api_version, now=now
            )
            if rt.has_status and rt.default_status is not None:
                live["status"] = clone(rt.default_status)
            return self._finish_write(rt, None, live, managers, dry_run=dry_run), True
        if precondition and precondition != old.obj["metadata"].get("resourceVersion"):
            raise stale_update(rt, name)
        live = clone(old.obj)
        managers = apply_config(
            live, old.managers, manager, config, force=force, api_version=rt.api_version, now=now
        )
        return self._finish_write(rt, old, live, managers, dry_run=dry_run), False

    def _update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        transform: Callable[[dict[str, Any]], Any],
        *,
        manager: str,
        dry_run: bool = False,
        keep_status: bool = False,
        status_only: bool = False,
    ) -> dict[str, Any]:
        """Read-modify-write of an existing object through ``transform(copy_of_live)``."""
        old = self._stored(rt, namespace, name)
        new = transform(clone(old.obj))
        if not isinstance(new, dict):
            raise bad_request("the result of the update must be an object")
        self._check_gvk(rt, new, required=False)
        meta = self._metadata(new)
        self._check_identity(rt, namespace, name, meta)
        precondition = meta.get("resourceVersion")
        if precondition and precondition != old.obj["metadata"].get("resourceVersion"):
            raise stale_update(rt, name)
        new = self._normalize(rt, new, namespace, name)
        validation.check_types(rt, new)
        if status_only:
            status = new.get("status")
            new = clone(old.obj)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif rt.has_status and not keep_status:
            if "status" in old.obj:
                new["status"] = clone(old.obj["status"])
            else:
                new.pop("status", None)
        managers = record_update(
            old.obj,
            new,
            old.managers,
            manager,
            api_version=rt.api_version,
            now=now_rfc3339(),
            subresource="status" if status_only else "",
        )
        return self._finish_write(rt, old, new, managers, dry_run=dry_run)

    def replace(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        *,
        manager: str,
        dry_run: bool = False,
        status_only: bool = False,
    ) -> dict[str, Any]:
        """PUT: replace an existing object (404 if missing, 409 on a stale resourceVersion)."""
        if not isinstance(body.get("metadata", {}), dict):
            raise bad_request("metadata must be an object")
        return self._update(
            rt,
            namespace,
            name,
            lambda _old: clone(body),
            manager=manager,
            dry_run=dry_run,
            status_only=status_only,
        )

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        manager: str,
        dry_run: bool = False,
        status_only: bool = False,
    ) -> dict[str, Any]:
        """JSON merge patch / strategic merge patch (approximated) / JSON patch."""
        if patch_type == JSON_PATCH:
            return self._update(
                rt,
                namespace,
                name,
                lambda old: json_patch(old, patch),
                manager=manager,
                dry_run=dry_run,
                status_only=status_only,
            )
        if not isinstance(patch, dict):
            raise bad_request("a merge patch body must be an object")
        return self._update(
            rt,
            namespace,
            name,
            lambda old: merge_patch(old, patch),
            manager=manager,
            dry_run=dry_run,
            status_only=status_only,
        )

    def apply_status(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        *,
        manager: str,
        force: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Server-side apply to the status subresource (only ``status`` is taken from the body)."""
        if not manager:
            raise bad_request("fieldManager is required for apply requests")
        self._check_gvk(rt, body, required=True)
        config = strip_nulls(body)
        self._check_identity(rt, namespace, name, self._metadata(config))
        old = self._stored(rt, namespace, name)
        live = clone(old.obj)
        status_config = {"status": config.get("status") or {}}
        managers = apply_config(
            live,
            old.managers,
            manager,
            status_config,
            force=force,
            api_version=rt.api_version,
            now=now_rfc3339(),
            subresource="status",
        )
        return self._finish_write(rt, old, live, managers, dry_run=dry_run)

    def _remove(self, rt: ResourceType, key: tuple[str, str]) -> None:
        self._forget(rt, key)
        if rt is NAMESPACE:
            for other, bucket in self._store.items():
                if other.namespaced:
                    for k in [k for k in bucket if k[0] == key[1]]:
                        self._forget(other, k)

    def _forget(self, rt: ResourceType, key: tuple[str, str]) -> None:
        """Delete one stored object: a new resourceVersion and a DELETED watch event carrying it."""
        gone = self._store[rt].pop(key).obj
        self._rv += 1
        final = {**gone, "metadata": {**gone["metadata"], "resourceVersion": str(self._rv)}}
        self.hub.publish(watches.Change(self._rv, watches.DELETED, rt, final, gone))
        self.controllers.forget(rt, key[0], key[1])

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        dry_run: bool = False,
        preconditions: Mapping[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """DELETE one object. Returns (HTTP status, body) as the real API would."""
        stored = self._stored(rt, namespace, name)
        meta = stored.obj["metadata"]
        if rt is NAMESPACE and name in ("default", "kube-system", "kube-public"):
            raise forbidden(rt, name, "this namespace may not be deleted")
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise conflict(
                    rt,
                    name,
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {meta.get('uid')}",
                )
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta.get(
                "resourceVersion"
            ):
                raise conflict(
                    rt,
                    name,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{preconditions['resourceVersion']}, ResourceVersion in object meta: {meta.get('resourceVersion')}",
                )
        key = self._key(rt, namespace, name)
        if meta.get("finalizers"):
            # Object stays until its finalizers are removed, marked for deletion.
            if not meta.get("deletionTimestamp") and not dry_run:
                obj = clone(stored.obj)
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                self._rv += 1
                obj["metadata"]["resourceVersion"] = str(self._rv)
                self._store[rt][key] = StoredObject(obj, stored.managers)
                self.hub.publish(watches.Change(self._rv, watches.MODIFIED, rt, obj, stored.obj))
                return 202, obj
            return 202, stored.obj
        result: dict[str, Any]
        if rt.returns_deleted_object or rt is NAMESPACE:
            result = clone(stored.obj)
            result["metadata"]["deletionTimestamp"] = now_rfc3339()
            result["metadata"]["deletionGracePeriodSeconds"] = 0
            if rt is NAMESPACE:
                result.setdefault("status", {})["phase"] = "Terminating"
        else:
            details: dict[str, Any] = {"name": name}
            if rt.group:
                details["group"] = rt.group
            details["kind"] = rt.plural
            details["uid"] = meta.get("uid")
            result = success_status(details)
        if not dry_run:
            self._remove(rt, key)
        return 200, result

    def delete_collection(
        self, rt: ResourceType, namespace: str | None, predicate: Predicate | None, *, dry_run: bool = False
    ) -> list[dict[str, Any]]:
        """deletecollection: delete every matching object; returns what was deleted."""
        deleted: list[dict[str, Any]] = []
        for obj in self.select(rt, namespace, predicate):
            meta = obj["metadata"]
            _code, result = self.delete(rt, meta.get("namespace"), meta["name"], dry_run=dry_run)
            deleted.append(result if result.get("kind") == rt.kind else clone(obj))
        return deleted
