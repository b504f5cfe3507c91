"""A rollout strategy checked against the grammar and the fleet, and its waves decided, at submission.

Pure: the decision of ``commands.submit_revision`` calls it, and so does a generic append of a
``RevisionSubmitted`` (through the same command), so both refuse the same strategies and record the
same waves.

Decisions:

- **Order.** Targets are taken in a documented, deterministic order: by the value of their
  ``ledger.dev/rollout-order`` label (numbers numerically, before other values, which compare as
  text), targets without the label after those with it, ties broken by name. So "the first 5%" is
  the same list on every replay and the audit can say why a cluster was in the canary.
- **Membership.** Waves take targets in their order, each from the targets no earlier wave took: a
  ``selector`` narrows them, a ``size`` takes that many (a count, or a percentage of all the
  revision's matched targets, rounded up, at least 1); a wave with neither takes all that remain.
  Targets no wave took join the last wave, so every matched target is in exactly one wave.
- **Fields** are named as the body names them: ``strategy.waves[1].size``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

from ledger import rollouts
from projections import selectors

ORDER_LABEL: Final = "ledger.dev/rollout-order"


class StrategyError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _order_key(name: str, labels: Mapping[str, str]) -> tuple[int, int, str, str]:
    value = labels.get(ORDER_LABEL)
    if value is None:
        return (1, 0, "", name)
    if value.isdigit():
        return (0, 0, value.zfill(20), name)
    return (0, 1, value, name)


def order(names: Sequence[str], labels: Mapping[str, Mapping[str, str]]) -> list[str]:
    """``names`` in rollout order (see the module docstring)."""
    return sorted(names, key=lambda n: _order_key(n, labels.get(n, {})))


def check(strategy: rollouts.Strategy) -> dict[int, selectors.Selector]:
    """Refuse what msgspec's bounds cannot see; returns the parsed selector of each wave that has one."""
    seen: set[str] = set()
    parsed: dict[int, selectors.Selector] = {}
    for i, wave in enumerate(strategy.waves):
        where = f"strategy.waves[{i}]"
        if wave.name in seen:
            raise StrategyError(f"{where}.name", f"wave {wave.name!r} is named twice")
        seen.add(wave.name)
        if wave.selector is not None:
            try:
                parsed[i] = selectors.parse(wave.selector, field=f"{where}.selector")
            except selectors.SelectorError as exc:
                raise StrategyError(f"{where}.selector", f"{exc.message} at position {exc.position}") from exc
        if isinstance(wave.size, str) and not 1 <= int(wave.size[:-1]) <= 100:
            raise StrategyError(f"{where}.size", f"a percentage must be 1% to 100%, not {wave.size}")
    for i, name in enumerate(strategy.approval):
        if name not in seen:
            raise StrategyError(f"strategy.approval[{i}]", f"no wave is named {name!r}; waves: "
                                + ", ".join(w.name for w in strategy.waves))
    return parsed


def _size(size: int | str, total: int) -> int:
    if isinstance(size, int):
        return size
    return max(1, math.ceil(int(size[:-1]) * total / 100))


def assign(strategy: rollouts.Strategy, matched: Sequence[str],
           labels: Mapping[str, Mapping[str, str]]) -> list[rollouts.WaveMembers]:
    """The members of each wave among ``matched`` (see the module docstring); checks the strategy."""
    parsed = check(strategy)
    remaining = order(matched, labels)
    total = len(remaining)
    taken: list[list[str]] = []
    for i, wave in enumerate(strategy.waves):
        pool = remaining
        if i in parsed:
            pool = [n for n in remaining if parsed[i].matches(labels.get(n, {}))]
        if wave.size is not None:
            pool = pool[:_size(wave.size, total)]
        chosen = set(pool)
        taken.append(pool)
        remaining = [n for n in remaining if n not in chosen]
    taken[-1] = order([*taken[-1], *remaining], labels)
    return [rollouts.WaveMembers(name=w.name, targets=t) for w, t in zip(strategy.waves, taken, strict=True)]
