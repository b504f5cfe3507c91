"""Whose object is it: the applier never takes an object over from another deployment.

An object the ledger applied carries ``ledger.dev/deployment=<name>`` (handlers.objects). Two
deployments that name the same object on one target would each server-side apply it with force,
flip that label on every pass, record drift for ever and, when one of them is removed, prune the
object from under the other. Submissions refuse the overlap they can see (projections/sharing.py);
this module is the applier's guard for what they cannot: a target relabelled into two selectors
later, or an object labelled by hand or by another ledger.

Decisions (as Argo CD's ``FailOnSharedResource`` and Flux's ownership check do):

- An object that exists live with the label naming **another** deployment is not applied, not
  healed and not pruned. Only the object's label decides; an object without the label (created by
  kubectl, Helm, another controller) is taken over, as before: server-side apply with force is how
  the ledger adopts what it is told to manage.
- **Permanent** (``SharedResource``, reason of the ApplyFailed) when the owner still deploys the
  object to this target (its current revision names it and its selector matches the target), or
  when no pass of this ledger will remove it: the owner is unknown here (another ledger, a hand-made
  label) or has nothing placed on the target (handlers.tracking ``placed``). Retried only when the
  revision or the target changes, like any permanent failure, so it is recorded once, not per resync.
- **Temporary** when the owner is on its way out of this target: removed, no longer selecting it,
  or its current revision no longer names the object, while it still has objects placed there. Its
  own pass prunes the object, and the retry (with backoff) then applies ours: removing one
  deployment and submitting its objects under another name works without a manual step.
- The check reads the object once, by name, only when the deployment's own listing does not hold
  it (a first apply, or someone else's object): a converged target costs nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from handlers import errors, objects, tracking
from projections import fleet

SHARED_RESOURCE: Final = "SharedResource"

Key = tuple[str, str, str | None, str]  # apiVersion, kind, namespace (None: cluster-scoped), name
# Does deployment ``owner`` still deploy object ``key`` to the target being applied?
Holds = Callable[[str, Key], bool]


def owner_of(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    owner = labels.get(objects.DEPLOYMENT_LABEL) if isinstance(labels, dict) else None
    return owner if isinstance(owner, str) and owner else None


def text(key: Key) -> str:
    _api_version, kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def check(deployment: str, key: Key, live: Mapping[str, Any] | None, holds: Holds) -> None:
    """Raise when ``live`` (the object as it is on the target, None when absent) belongs to another
    deployment; see the module docstring for which error."""
    owner = owner_of(live) if live is not None else None
    if owner is None or owner == deployment:
        return
    if holds(owner, key):
        raise errors.PermanentError(
            f"{text(key)} belongs to deployment {owner}, not {deployment}: two deployments may not share "
            f"an object (label {objects.DEPLOYMENT_LABEL}={owner}); remove it from one of them",
            status=409, reason=SHARED_RESOURCE)
    raise errors.TemporaryError(
        f"{text(key)} still belongs to deployment {owner}, which no longer deploys it here; "
        f"waiting for {owner} to prune it", status=409, reason=SHARED_RESOURCE)


def _group(api_version: str) -> str:
    group, slash, _ = api_version.partition("/")
    return group if slash else ""


def _names(manifest: Mapping[str, Any], key: Key) -> bool:
    api_version, kind, namespace, name = key
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("name") != name or manifest.get("kind") != kind:
        return False
    if _group(str(manifest.get("apiVersion", ""))) != _group(api_version):
        return False
    return namespace is None or (metadata.get("namespace") or objects.DEFAULT_NAMESPACE) == namespace


def holder(state: tracking.State, target: str) -> Holds:
    """``Holds`` as the applier's fold says it now, for ``target``."""

    def holds(owner: str, key: Key) -> bool:
        found = state.fleet.deployments.get(owner)
        placed = state.pairs.get(owner, {}).get(target)
        if found is None or placed is None or not placed.placed:
            return True  # no pass of this ledger will remove it: not ours to take
        if found.removed or found.current_revision == 0 or target not in found.rollouts:
            return False
        manifests = fleet.manifests_at(state.fleet, owner, found.current_revision)
        return any(isinstance(m, dict) and _names(m, key) for m in manifests)

    return holds
