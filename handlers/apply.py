"""One deployment on one target: server-side apply its revision, then prune what is left over.

``converge`` is the whole job for a revision: resolve every manifest's resource (discovery), list
what the deployment already has on the cluster (every scope it ever used, by its label), apply each
manifest in dependency order with the ledger's labels, then delete listed objects the revision no
longer names, dependents first. ``remove`` is the same with nothing desired: it prunes everything
the deployment has there (the deployment was removed, or the target stopped matching).

Listing *before* applying gives each object's resourceVersion as it was, so the result can say
whether anything actually changed: a periodic resync records an outcome only when it healed drift
or pruned something, and stays out of the log otherwise. Errors propagate as handlers.errors;
the first failing call ends the attempt (later objects may depend on it, as namespaced objects do
on their namespace).

Nothing is applied while one of the objects belongs to another deployment (handlers.ownership), and
a prune deletes only objects whose label names the deployment itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio.dynamic.resource import Resource

from handlers import clients, errors, objects, ownership
from ledger import events

Key = tuple[str, str, str | None, str]  # apiVersion, kind, namespace, name


@dataclass(slots=True)
class Result:
    applied: list[events.ObjectRef] = field(default_factory=list)
    pruned: list[events.ObjectRef] = field(default_factory=list)
    changed: bool = False


@dataclass(slots=True)
class Live:
    resource: Resource
    namespace: str | None
    name: str
    resource_version: str | None
    obj: dict[str, Any]


@dataclass(slots=True)
class Desired:
    """One manifest as the applier sends it: its resource, where it goes and the labelled body."""

    resource: Resource
    key: Key
    body: dict[str, Any]


def _namespace(resource: Resource, manifest: dict[str, Any]) -> str | None:
    if not resource.namespaced:
        return None
    metadata = manifest.get("metadata") or {}
    return str(metadata.get("namespace") or objects.DEFAULT_NAMESPACE)


def _name(manifest: dict[str, Any]) -> str:
    metadata = manifest.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        raise errors.PermanentError(f"a {manifest.get('kind', 'manifest')} has no metadata.name", status=422)
    return name


async def live(client: clients.Client, deployment: str, scopes: Sequence[objects.Scope]) -> dict[Key, Live]:
    """Objects carrying the deployment's label, in every scope it ever used."""
    found: dict[Key, Live] = {}
    listed: set[tuple[str, str, str | None]] = set()
    for api_version, kind, namespace in scopes:
        try:
            resource = await client.resource(api_version, kind)
        except errors.PermanentError:
            continue  # a kind this cluster does not serve holds nothing of ours
        where = (namespace or objects.DEFAULT_NAMESPACE) if resource.namespaced else None
        if (api_version, kind, where) in listed:
            continue
        listed.add((api_version, kind, where))
        for item in await client.list(resource, where, objects.selector(deployment)):
            meta = item.get("metadata") or {}
            key = (api_version, kind, meta.get("namespace") if resource.namespaced else None, meta.get("name", ""))
            found[key] = Live(resource, key[2], key[3], meta.get("resourceVersion"), item)
    return found


async def _prune(client: clients.Client, deployment: str, live: dict[Key, Live], keep: set[Key],
                 result: Result) -> None:
    doomed = [(key, obj) for key, obj in live.items()
              if key not in keep and ownership.owner_of(obj.obj) == deployment]
    doomed.sort(key=lambda item: -objects.rank(item[0][1], item[1].resource.namespaced))
    for (api_version, kind, namespace, name), obj in doomed:
        if await client.delete(obj.resource, name, namespace):
            result.pruned.append(objects.ref(api_version, kind, name, namespace))
            result.changed = True


async def desired(client: clients.Client, deployment: str, revision: int,
                  manifests: Sequence[dict[str, Any]]) -> list[Desired]:
    """``revision``'s manifests resolved (discovery), labelled and in apply order."""
    resolved: list[tuple[int, int, Resource, dict[str, Any]]] = []
    for index, manifest in enumerate(manifests):
        resource = await client.resource(str(manifest.get("apiVersion", "")), str(manifest.get("kind", "")))
        resolved.append((objects.rank(str(resource.kind), resource.namespaced), index, resource, manifest))
    resolved.sort(key=lambda item: (item[0], item[1]))
    found: list[Desired] = []
    for _rank, _index, resource, manifest in resolved:
        name = _name(manifest)
        namespace = _namespace(resource, manifest)
        body = objects.labelled(manifest, deployment, revision)
        if resource.namespaced:
            body["metadata"]["namespace"] = namespace
        found.append(Desired(resource, (str(manifest.get("apiVersion")), str(resource.kind), namespace, name), body))
    return found


async def unowned(client: clients.Client, deployment: str, wanted: Sequence[Desired], found: dict[Key, Live],
                  holds: ownership.Holds) -> None:
    """Refuse (handlers.ownership) when an object the deployment's listing does not hold belongs to
    another deployment; read by name, so a converged target costs nothing more."""
    for item in wanted:
        if item.key not in found:
            ownership.check(deployment, item.key, await client.get(item.resource, item.key[3], item.key[2]), holds)


async def converge(client: clients.Client, deployment: str, revision: int,
                   manifests: Sequence[dict[str, Any]], scopes: Sequence[objects.Scope],
                   holds: ownership.Holds) -> Result:
    """Apply ``revision``'s manifests to the target and prune the deployment's leftovers; nothing is
    applied when one of them belongs to another deployment (``holds``: handlers.ownership)."""
    wanted = await desired(client, deployment, revision, manifests)
    found = await live(client, deployment, scopes)
    await unowned(client, deployment, wanted, found, holds)
    result = Result()
    keep: set[Key] = set()
    for item in wanted:
        api_version, kind, namespace, name = item.key
        stored = await client.apply(item.resource, item.body, namespace)
        keep.add(item.key)
        before = found.get(item.key)
        after = (stored.get("metadata") or {}).get("resourceVersion")
        if before is None or after is None or before.resource_version != after:
            result.changed = True
        result.applied.append(objects.ref(api_version, kind, name, namespace))
    await _prune(client, deployment, found, keep, result)
    return result


async def remove(client: clients.Client, deployment: str, scopes: Sequence[objects.Scope]) -> Result:
    """Delete everything the deployment has on the target."""
    result = Result()
    await _prune(client, deployment, await live(client, deployment, scopes), set(), result)
    return result
