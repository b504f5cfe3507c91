"""Map a cluster-relative URL path to what it addresses.

Kubernetes URLs are regular enough to parse by hand, which is faster than a
regex router and lets one catch-all aiohttp route serve every cluster:

* ``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/G``, ``/apis/G/V``
* ``/api/v1/namespaces/NS/PLURAL[/NAME[/SUB]]`` (namespaced resources)
* ``/api/v1/PLURAL[/NAME[/SUB]]`` (cluster-scoped, or all-namespaces lists)
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.catalog import Catalog, ResourceType
from emulator.status import page_not_found

ROOT = "root"
VERSION = "version"
HEALTH = "health"
CORE_VERSIONS = "core-versions"
GROUP_LIST = "group-list"
GROUP = "group"
RESOURCE_LIST = "resource-list"
COLLECTION = "collection"
ITEM = "item"


@dataclass(frozen=True, slots=True)
class Target:
    what: str
    group: str = ""
    version: str = ""
    rt: ResourceType | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None

    def describe(self) -> str:
        """How Status messages name the target, e.g. ``configmaps "x"``."""
        if self.rt is None:
            return ""
        if self.name:
            return f'{self.rt.qualified_plural} "{self.name}"'
        return self.rt.qualified_plural


def resolve(catalog: Catalog, path: str) -> Target:
    """Parse ``path``; unknown paths and resources are 404 like on a real server."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return Target(ROOT)
    head = parts[0]
    if len(parts) == 1:
        if head == "version":
            return Target(VERSION)
        if head in ("healthz", "livez", "readyz"):
            return Target(HEALTH)
        if head == "api":
            return Target(CORE_VERSIONS)
        if head == "apis":
            return Target(GROUP_LIST)
        raise page_not_found()
    if head == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif head == "apis":
        if len(parts) == 2:
            if parts[1] not in catalog.groups():
                raise page_not_found()
            return Target(GROUP, group=parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise page_not_found()
    if not catalog.has_group_version(group, version):
        raise page_not_found()
    if not rest:
        return Target(RESOURCE_LIST, group=group, version=version)

    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and catalog.by_path(group, version, rest[2]) is not None:
        namespace, rest = rest[1], rest[2:]
    rt = catalog.by_path(group, version, rest[0])
    if rt is None or len(rest) > 3 or (namespace is not None and not rt.namespaced):
        raise page_not_found()
    if len(rest) == 1:
        return Target(COLLECTION, group, version, rt, namespace)
    if rt.namespaced and namespace is None:
        raise page_not_found()  # /api/v1/configmaps/NAME does not exist
    subresource = rest[2] if len(rest) == 3 else None
    if subresource is not None and (subresource != "status" or not rt.has_status):
        raise page_not_found()
    return Target(ITEM, group, version, rt, namespace, rest[1], subresource)
