"""The objects of a revision as the applier sends them, and the scopes it prunes in.

Decisions:

- Every applied object carries ``ledger.dev/deployment=<name>`` and ``ledger.dev/revision=<n>``;
  the first is what pruning selects on, the second tells anyone looking at a cluster which
  revision put an object there. Manifests are copied, never changed in place.
- **Order**: Namespaces first, then CustomResourceDefinitions, then other cluster-scoped kinds,
  then namespaced ones, each group in manifest order; pruning deletes in the reverse order.
- **Prune scopes** come from *every* revision of the deployment, not just the previous one: a
  kind dropped three revisions ago, or whose apply crashed half-way, still gets looked for. A scope
  is (apiVersion, kind, namespace); objects can only be where some revision put them, so listing
  per namespace is enough and needs no cluster-wide list permission.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from ledger import events
from projections import fleet

DEPLOYMENT_LABEL: Final = "ledger.dev/deployment"
REVISION_LABEL: Final = "ledger.dev/revision"
DEFAULT_NAMESPACE: Final = "default"

# (apiVersion, kind, namespace as written in the manifest or None)
Scope = tuple[str, str, str | None]


def rank(kind: str, namespaced: bool) -> int:
    if kind == "Namespace":
        return 0
    if kind == "CustomResourceDefinition":
        return 1
    return 2 if not namespaced else 3


def labelled(manifest: dict[str, Any], deployment: str, revision: int) -> dict[str, Any]:
    """A copy of ``manifest`` with the ledger's labels added (metadata copied, the rest shared)."""
    body = dict(manifest)
    metadata = dict(body.get("metadata") or {})
    labels = dict(metadata.get("labels") or {})
    labels[DEPLOYMENT_LABEL] = deployment
    labels[REVISION_LABEL] = str(revision)
    metadata["labels"] = labels
    body["metadata"] = metadata
    return body


def selector(deployment: str) -> str:
    return f"{DEPLOYMENT_LABEL}={deployment}"


def ref(api_version: str, kind: str, name: str, namespace: str | None) -> events.ObjectRef:
    return events.ObjectRef(api_version=api_version, kind=kind, name=name, namespace=namespace)


def scope_of(manifest: dict[str, Any]) -> Scope:
    metadata = manifest.get("metadata") or {}
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return str(manifest.get("apiVersion", "")), str(manifest.get("kind", "")), namespace or None


def scopes(manifest_sets: Iterable[list[dict[str, Any]]]) -> list[Scope]:
    """Distinct scopes over several revisions' manifests, in first-seen order."""
    seen: dict[Scope, None] = {}
    for manifests in manifest_sets:
        for manifest in manifests:
            if isinstance(manifest, dict):
                seen.setdefault(scope_of(manifest), None)
    return list(seen)


class ScopeCache:
    """Prune scopes per deployment, recomputed only when it gains a revision."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, list[Scope]]] = {}

    def get(self, state: fleet.Fleet, deployment: str) -> list[Scope]:
        found = state.deployments.get(deployment)
        if found is None:
            return []
        latest = max(found.revisions, default=0)
        cached = self._cache.get(deployment)
        if cached is not None and cached[0] == latest:
            return cached[1]
        blobs = {r.manifests for r in found.revisions.values()}
        computed = scopes(json.loads(blob) for blob in blobs)
        self._cache[deployment] = (latest, computed)
        return computed
