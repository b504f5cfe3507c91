"""When is a revision's rollout over? The one rule that ``GET /v1/deployments/{name}?wait=healthy``
(api/waiting.py) and ``ledger wait`` / ``ledger deploy --wait`` (cli/wait.py) both apply.

Both ask it of the same document, the deployment as the API serves it (projections/queries.py:
``current_revision``, ``removed``, and ``rollouts`` with each target's ``state`` from the fleet
fold), so the server and the CLI cannot disagree about what "healthy" means, and neither folds the
events a second time: the per-target states are projections/fleet.py's.

Decisions:

- **Healthy** when every target of the revision is ``healthy``. A revision that matches no target
  is healthy at once (there is nothing to wait for), as Argo CD says of an application without
  resources; the CLI says so on stderr.
- **Failed** when a target is ``failed`` (its apply was refused), else **degraded** when one is
  ``degraded``: a rollout that CI waits on has gone wrong, whatever the other targets do, so the
  wait ends at the first such target rather than at its timeout.
- **Superseded** when a later revision became current while waiting, **removed** when the
  deployment was: the revision waited for will never be healthy.
- Anything else (``pending``, ``applying``, ``progressing``, ``paused``) is still **waiting**; a
  paused deployment may be resumed, so pausing does not end a wait (its timeout does).
- Timeouts: ``10m``, ``90s``, ``1h`` or plain seconds (:func:`seconds`), the same syntax on the
  command line and in the query string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

Result = Literal["healthy", "degraded", "failed", "superseded", "removed", "waiting"]
# What a wait can end with: a verdict, or the timeout.
Outcome = Literal["healthy", "degraded", "failed", "superseded", "removed", "timeout"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("healthy", "degraded", "failed", "superseded", "removed", "timeout")
_UNITS: Final = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smh]?)")


def verdict(deployment: Mapping[str, Any], revision: int) -> Result:
    """Where ``revision`` of ``deployment`` (a GET /v1/deployments/{name} document) stands."""
    if deployment["removed"]:
        return "removed"
    if deployment["current_revision"] > revision:
        return "superseded"
    if deployment["current_revision"] < revision:
        return "waiting"
    states = [r["state"] for r in deployment["rollouts"] if r["desired_revision"] == revision]
    if "failed" in states:
        return "failed"
    if "degraded" in states:
        return "degraded"
    if all(state == "healthy" for state in states):
        return "healthy"
    return "waiting"


def culprits(deployment: Mapping[str, Any], result: Result | Outcome) -> list[Mapping[str, Any]]:
    """The rollouts that decided ``result``: the failed or degraded targets, or, on a timeout,
    those still not healthy."""
    rollouts: list[Mapping[str, Any]] = deployment["rollouts"]
    if result in ("failed", "degraded"):
        return [r for r in rollouts if r["state"] == result]
    if result == "timeout":
        return [r for r in rollouts if r["state"] != "healthy"]
    return []


def seconds(text: str) -> float:
    """``10m``, ``90s``, ``1h``, ``2.5m`` or plain seconds, more than 0; ValueError otherwise."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise ValueError(f"expected a duration such as 90s, 10m or 1h, got {text!r}")
    value = float(found.group(1)) * _UNITS[found.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected a duration of more than 0 s, got {text!r}")
    return value
