"""The applier's ownership guard as pure rules (handlers/ownership.py): whose label an object carries,
and whether its owner still deploys it to the target, decide between applying, a permanent
``SharedResource`` refusal and waiting for the owner's prune."""

from __future__ import annotations

from typing import Any

import pytest

from handlers import errors, ownership, tracking
from ledger import events
from tests.fleetdata import Log

KEY: ownership.Key = ("v1", "ConfigMap", "apps", "shared")


def _live(owner: str | None) -> dict[str, Any]:
    labels = {"ledger.dev/deployment": owner} if owner else {"app": "x"}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": "apps",
                                                                  "labels": labels}}


def _cm(name: str, namespace: str | None = "apps") -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}}


def _fleet(*manifests: dict[str, Any], selector: str = "region=eu") -> Log:
    log = Log()
    log.target("eu-1", region="eu")
    log.target("us-1", region="us")
    log.add(events.RevisionSubmitted(deployment="api", revision=1, manifests=list(manifests), selector=selector,
                                     matched_targets=["eu-1"]))
    return log


def _holder(log: Log, target: str, *, placed: bool = True) -> ownership.Holds:
    """The guard as the applier builds it; ``placed``: api may have objects on ``target``."""
    state = tracking.State(fleet=log.fleet)
    tracking.pair(state, "api", target).placed = placed
    return ownership.holder(state, target)


def test_an_absent_object_one_of_our_own_or_one_without_our_label_is_applied():
    holds = _holder(_fleet(_cm("shared")), "eu-1")
    for live in (None, _live("web"), _live(None)):
        ownership.check("web", KEY, live, holds)


def test_an_object_its_owner_still_deploys_here_is_a_permanent_shared_resource():
    holds = _holder(_fleet(_cm("shared")), "eu-1")
    with pytest.raises(errors.PermanentError) as caught:
        ownership.check("web", KEY, _live("api"), holds)
    assert (caught.value.reason, caught.value.status) == ("SharedResource", 409)
    assert caught.value.message.startswith("ConfigMap apps/shared belongs to deployment api")


def test_an_object_of_a_deployment_this_ledger_does_not_know_is_never_taken():
    holds = _holder(_fleet(_cm("shared")), "eu-1")
    with pytest.raises(errors.PermanentError, match="deployment other-ledger"):
        ownership.check("web", KEY, _live("other-ledger"), holds)


def test_an_omitted_namespace_is_the_default_one():
    holds = _holder(_fleet(_cm("shared", namespace=None)), "eu-1")
    assert holds("api", ("v1", "ConfigMap", "default", "shared"))
    assert not holds("api", KEY)


def test_an_owner_with_nothing_placed_on_the_target_will_not_remove_it():
    log = _fleet(_cm("shared"))
    log.add(events.DeploymentRemoved(deployment="api"))
    with pytest.raises(errors.PermanentError, match="deployment api"):
        ownership.check("web", KEY, _live("api"), _holder(log, "us-1", placed=False))


@pytest.mark.parametrize("leaving", ["removed", "deselected", "dropped"])
def test_an_owner_on_its_way_out_is_waited_for(leaving: str):
    log = _fleet(_cm("shared"))
    if leaving == "removed":
        log.add(events.DeploymentRemoved(deployment="api"))
    elif leaving == "deselected":
        log.add(events.TargetUpdated(target="eu-1", labels={"region": "moved"}, server="https://eu-1:6443"))
    elif leaving == "dropped":
        log.add(events.RevisionSubmitted(deployment="api", revision=2, manifests=[_cm("other")],
                                         matched_targets=["eu-1"], selector="region=eu"))
    with pytest.raises(errors.TemporaryError) as caught:
        ownership.check("web", KEY, _live("api"), _holder(log, "eu-1"))
    assert caught.value.reason == "SharedResource"
    assert "waiting for api to prune it" in caught.value.message
