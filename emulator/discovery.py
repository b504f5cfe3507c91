"""Discovery documents, shaped exactly as kubernetes-asyncio's DynamicClient reads them.

The client fetches ``/version``, ``/apis`` (APIGroupList; a version counts as
preferred only if its dict equals ``preferredVersion``), then
``/api/v1`` or ``/apis/G/V`` (APIResourceList) lazily per group.  All
documents depend only on the catalog, so they are rendered once and shared by
every cluster as pre-encoded bytes.
"""

from __future__ import annotations

from typing import Any

from emulator.catalog import STATUS_VERBS, Catalog, ResourceType
from emulator.codec import encode

KUBERNETES_VERSION: dict[str, str] = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0+emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _resource_entries(rt: ResourceType) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entry["storageVersionHash"] = rt.storage_version_hash
    entries = [entry]
    if rt.has_status:
        entries.append(
            {
                "name": f"{rt.plural}/status",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(STATUS_VERBS),
            }
        )
    return entries


def _group_version(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


class Discovery:
    """Pre-encoded discovery responses for one catalog."""

    def __init__(self, catalog: Catalog, version_info: dict[str, str] | None = None) -> None:
        self.version = encode(version_info or KUBERNETES_VERSION)
        self.core_versions_doc: dict[str, Any] = {"kind": "APIVersions", "versions": ["v1"]}
        groups = []
        self.groups: dict[str, bytes] = {}
        for group, versions in catalog.groups().items():
            doc: dict[str, Any] = {
                "name": group,
                "versions": [_group_version(group, v) for v in versions],
                "preferredVersion": _group_version(group, versions[0]),
            }
            groups.append(doc)
            self.groups[group] = encode({"kind": "APIGroup", "apiVersion": "v1", **doc})
        self.group_list = encode({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        self.resource_lists: dict[tuple[str, str], bytes] = {}
        for group, versions in {"": ["v1"], **catalog.groups()}.items():
            for version in versions:
                listing: dict[str, Any] = {"kind": "APIResourceList"}
                if group:
                    listing["apiVersion"] = "v1"
                listing["groupVersion"] = f"{group}/{version}" if group else version
                listing["resources"] = [
                    e for rt in catalog.in_group_version(group, version) for e in _resource_entries(rt)
                ]
                self.resource_lists[(group, version)] = encode(listing)
        paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]
        for group, versions in catalog.groups().items():
            paths.append(f"/apis/{group}")
            paths.extend(f"/apis/{group}/{v}" for v in versions)
        self.root = encode({"paths": sorted(paths)})

    def core_versions(self, server_address: str) -> bytes:
        return encode(
            {
                **self.core_versions_doc,
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
            }
        )
