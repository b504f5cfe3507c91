"""One object, one deployment per cluster: the rule at the door.

Two deployments that put the same Kubernetes object on the same cluster would both apply it: its
owner label flips on every resync, drift is recorded for ever, and removing one deployment prunes
the object from under the other. Argo CD refuses this (``SharedResourceWarning``,
``FailOnSharedResource``), Flux's kustomize-controller too. So a revision (or a rollback) whose
manifests name an object that another active deployment's current revision names, while the two
reach a common target, is refused with 409 naming the manifest and the other deployment; nothing is
written.

Decisions:

- **Pure, over the fold.** ``holdings`` reads what the other deployments hold from a
  ``fleet.Fleet`` (their current revision's manifests, the targets their rollouts cover);
  ``check`` compares. projections/loading.py ``holders`` loads just the deployments that can
  matter, so the commands (projections/commands.py callers) and the generic append
  (projections/rules.py) decide alike.
- **Same object**: API group, kind, namespace and name, as Kubernetes sees it: the version of the
  apiVersion does not count, and an omitted namespace is ``default`` (where the applier puts a
  namespaced object; a cluster-scoped one ignores it).
- **Active** deployments only: a removed one holds nothing (its prune is under way). A paused one
  still holds its objects. Its *current* revision counts, the one the applier converges to.
- **Reach**: the targets the submission matches (its ``matched_targets``) against those the other
  deployment's selector matches now. Disjoint selectors may name the same object: each cluster
  still has one owner.
- What the door cannot see (a target relabelled later into both selectors, objects made by other
  tools, two submissions racing on different streams) the applier refuses at apply time
  (handlers/ownership.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from projections import commands, fleet

SHOWN: Final = 10  # targets named in a refusal's message

# API group, kind, namespace ("default" when omitted), name
Identity = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class Holding:
    """What one active deployment puts where: its current revision's objects, its targets now."""

    deployment: str
    objects: frozenset[Identity]
    targets: frozenset[str]


class Shared(commands.Conflict):
    """An object another deployment already deploys to a target this one reaches."""

    def __init__(self, message: str, *, field: str, owner: str, obj: dict[str, str], targets: list[str]) -> None:
        super().__init__(message, field=field)
        self.members: dict[str, Any] = {"owner": owner, "object": obj, "targets": targets}


def identity(manifest: Mapping[str, Any]) -> Identity | None:
    """The object a manifest names, or None for one without the fields (validation refuses those)."""
    metadata = manifest.get("metadata")
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(api_version, str) or not isinstance(kind, str) or not isinstance(name, str):
        return None
    group, slash, _ = api_version.partition("/")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return group if slash else "", kind, namespace if isinstance(namespace, str) and namespace else "default", name


def names(manifests: Iterable[Any]) -> list[str]:
    """The objects' names (what the loader narrows its candidates by)."""
    return sorted({i[3] for m in manifests if isinstance(m, Mapping) and (i := identity(m)) is not None})


def holdings(state: fleet.Fleet, exclude: str) -> list[Holding]:
    """What every active deployment in ``state`` but ``exclude`` holds, by name."""
    found = []
    for name in sorted(state.deployments):
        deployment = state.deployments[name]
        if name == exclude or deployment.removed or deployment.current_revision == 0:
            continue
        manifests = fleet.manifests_at(state, name, deployment.current_revision)
        objects = frozenset(i for m in manifests if isinstance(m, Mapping) and (i := identity(m)) is not None)
        found.append(Holding(name, objects, frozenset(deployment.rollouts)))
    return found


def restored(name: str, revision: int, *states: fleet.Fleet) -> list[Any]:
    """The manifests a rollback to ``revision`` restores, from the first of ``states`` that knows the
    revision ([] when none does; the decision refuses such a rollback)."""
    for state in states:
        found = state.deployments.get(name)
        if found is not None and revision in found.revisions:
            return fleet.manifests_at(state, name, revision)
    return []


def _shown(identity_: Identity, manifest: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    group, kind, namespace, name = identity_
    kind_text = f"{kind}.{group}" if group else kind
    explicit = (manifest.get("metadata") or {}).get("namespace")
    text = f"{kind_text} {namespace}/{name}" if explicit or namespace != "default" else f"{kind_text} {name}"
    obj = {"apiVersion": str(manifest.get("apiVersion")), "kind": kind}
    if explicit:
        obj["namespace"] = namespace
    obj["name"] = name
    return text, obj


def check(deployment: str, manifests: Sequence[Any], matched: Iterable[str], held: Iterable[Holding], *,
          field: str = "manifests", what: str = "") -> None:
    """Refuse (:class:`Shared`) when one of ``manifests`` is held by another deployment on a target
    of ``matched``. ``field`` names the manifests in the refusal (``manifests[i]``, or the field the
    client sent instead, such as ``to_revision``); ``what`` says whose manifests they are."""
    reach = frozenset(matched)
    if not reach:
        return
    others = [h for h in held if h.deployment != deployment and h.targets & reach]
    if not others:
        return
    for index, manifest in enumerate(manifests):
        found = identity(manifest) if isinstance(manifest, Mapping) else None
        if found is None:
            continue
        for other in others:
            if found not in other.objects:
                continue
            common = sorted(other.targets & reach)
            text, obj = _shown(found, manifest)
            listed = ", ".join(common[:SHOWN]) + (f" and {len(common) - SHOWN} more" if len(common) > SHOWN else "")
            raise Shared(
                f"{what}manifests[{index}] ({text}) is already deployed by deployment {other.deployment} to "
                f"{listed}; two deployments may not share an object on a cluster: remove it from one of "
                "them or make their selectors disjoint",
                field=f"manifests[{index}]" if field == "manifests" else field,
                owner=other.deployment, obj=obj, targets=common)
