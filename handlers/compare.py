"""A resync's first look: how each live object differs from what applying its revision would make it.

For every object of the revision the server is asked what a server-side apply would store —
``dryRun=All``, the same fieldManager, force and body as the real apply — and that answer is
compared with the object as it is now (handlers.drift.differences). The server does the merging,
defaulting and normalising, so the comparison knows nothing of schemas, quantities or list merge
keys, and a field the ledger never applied (another manager's, or server-set) cannot show up: a
dry-run apply only touches the fields the ledger applies. In a quiet fleet this costs what the old
blind re-apply did (one LIST per scope, one PATCH per object) and writes nothing.

An object missing from the deployment's listing is fetched by name: someone may have removed the
ledger's label (drift in that label) or deleted the object (drift of the whole object, no dry run:
its namespace may be gone too). One that carries another deployment's label is not drift but a
shared object (handlers.ownership): the refusal is raised, and a heal records it as ApplyFailed. Objects the listing holds that the revision does not name are
leftovers, which a heal prunes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from handlers import apply, clients, drift, objects, ownership


@dataclass(slots=True)
class Inspection:
    drifted: list[drift.Found] = field(default_factory=list)
    in_sync: list[str] = field(default_factory=list)  # drift.key of every object found as applied
    leftovers: int = 0

    @property
    def unsynced(self) -> bool:
        return bool(self.drifted) or self.leftovers > 0


async def inspect(client: clients.Client, deployment: str, revision: int,
                  manifests: Sequence[dict[str, Any]], scopes: Sequence[objects.Scope],
                  holds: ownership.Holds) -> Inspection:
    """Compare the target's objects of ``deployment`` with ``revision``; changes nothing. An object
    that belongs to another deployment is not drift: the ownership refusal is raised instead."""
    wanted = await apply.desired(client, deployment, revision, manifests)
    listed = await apply.live(client, deployment, scopes)
    result = Inspection(leftovers=len(listed.keys() - {item.key for item in wanted}))
    for item in wanted:
        api_version, kind, namespace, name = item.key
        ref = objects.ref(api_version, kind, name, namespace)
        found = listed.get(item.key)
        before = found.obj if found is not None else await client.get(item.resource, name, namespace)
        if found is None:
            ownership.check(deployment, item.key, before, holds)
        if before is None:
            result.drifted.append(drift.Found(ref, [drift.DELETED]))
            continue
        after = await client.apply(item.resource, item.body, namespace, dry_run=True)
        fields = drift.differences(before, after)
        if fields:
            result.drifted.append(drift.Found(ref, fields))
        else:
            result.in_sync.append(drift.key(ref))
    return result
