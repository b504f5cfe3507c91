"""The fixed set of resource types the emulated API servers know about.

Discovery documents, URL routing, validation and defaulting all need the same
facts about a resource type (group, version, kind, plural, scope, short names,
whether it has a status subresource).  Keeping them in one table means the
emulator cannot advertise a resource in discovery that it does not serve, or
the other way round.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

STANDARD_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
# Namespaces cannot be deleted as a collection on a real API server.
NAMESPACE_VERBS: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")
STATUS_VERBS: tuple[str, ...] = ("get", "patch", "update")


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One served resource: everything needed to route, list and validate it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = True
    # "label" for kinds whose names must be DNS-1123 labels (namespaces, services).
    name_rule: str = "subdomain"
    # Field selectors accepted in addition to metadata.name / metadata.namespace.
    extra_field_selectors: tuple[str, ...] = ()
    # Pods come back from DELETE as the object, most kinds as a Status.
    returns_deleted_object: bool = False
    default_status: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified_plural(self) -> str:
        """How the real API names the resource in messages: ``deployments.apps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def verbs(self) -> tuple[str, ...]:
        return NAMESPACE_VERBS if self.kind == "Namespace" else STANDARD_VERBS

    @property
    def storage_version_hash(self) -> str:
        digest = hashlib.sha256(f"{self.api_version}/{self.kind}".encode()).digest()
        return base64.b64encode(digest[:8]).decode()


def _rt(group: str, version: str, kind: str, plural: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    return ResourceType(group=group, version=version, kind=kind, plural=plural, namespaced=namespaced, **kw)


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _rt(
        "",
        "v1",
        "Namespace",
        "namespaces",
        namespaced=False,
        short_names=("ns",),
        name_rule="label",
        extra_field_selectors=("status.phase",),
        default_status={"phase": "Active"},
    ),
    _rt("", "v1", "ConfigMap", "configmaps", short_names=("cm",), has_status=False),
    _rt("", "v1", "Secret", "secrets", has_status=False, extra_field_selectors=("type",)),
    _rt(
        "",
        "v1",
        "Service",
        "services",
        short_names=("svc",),
        categories=("all",),
        name_rule="label",
        default_status={"loadBalancer": {}},
    ),
    _rt("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",), has_status=False),
    _rt(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        short_names=("pvc",),
        default_status={"phase": "Pending"},
    ),
    _rt(
        "",
        "v1",
        "Pod",
        "pods",
        short_names=("po",),
        categories=("all",),
        extra_field_selectors=("status.phase", "spec.nodeName", "spec.restartPolicy"),
        returns_deleted_object=True,
        default_status={"phase": "Pending", "qosClass": "BestEffort"},
    ),
    _rt(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        short_names=("deploy",),
        categories=("all",),
        default_status={},
    ),
    _rt(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        short_names=("sts",),
        categories=("all",),
        default_status={"replicas": 0, "availableReplicas": 0},
    ),
    _rt(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        short_names=("ds",),
        categories=("all",),
        default_status={
            "currentNumberScheduled": 0,
            "desiredNumberScheduled": 0,
            "numberMisscheduled": 0,
            "numberReady": 0,
        },
    ),
    _rt("batch", "v1", "Job", "jobs", categories=("all",), default_status={}),
    _rt(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        short_names=("ing",),
        default_status={"loadBalancer": {}},
    ),
    _rt("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False, has_status=False),
    _rt("rbac.authorization.k8s.io", "v1", "Role", "roles", has_status=False),
    _rt(
        "example.com",
        "v1",
        "Widget",
        "widgets",
        short_names=("wdg",),
        categories=("all",),
        default_status=None,
    ),
)


class Catalog:
    """Lookup tables over a set of resource types, shared by every cluster."""

    def __init__(self, types: Iterable[ResourceType] = BUILTIN_TYPES) -> None:
        self.types: tuple[ResourceType, ...] = tuple(types)
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        self._group_versions: dict[str, list[str]] = {}
        for rt in self.types:
            self._by_path[(rt.group, rt.version, rt.plural)] = rt
            self._by_kind[(rt.api_version, rt.kind)] = rt
            versions = self._group_versions.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self.types)

    def by_path(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((api_version, kind))

    def require(self, api_version: str, kind: str) -> ResourceType:
        rt = self.by_kind(api_version, kind)
        if rt is None:
            raise KeyError(f"unknown resource type {api_version} {kind}")
        return rt

    def has_group_version(self, group: str, version: str) -> bool:
        return version in self._group_versions.get(group, ())

    def groups(self) -> dict[str, list[str]]:
        """Named API groups (not the core group) and their versions, in catalog order."""
        return {g: list(v) for g, v in self._group_versions.items() if g}

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.types if rt.group == group and rt.version == version]


NAMESPACE = BUILTIN_TYPES[0]
DEFAULT_CATALOG = Catalog()
