"""The fleet's targets with their names by label, so that a selector finds the targets it may
match without matching every target.

A revision on a fleet of 40,000 targets matched its selector against each of them (~2/3 of what
the API process spent on it once the targets themselves came from an index,
projections/targetindex.py). As Kubernetes' informers index objects by label, :class:`Targets`
keeps, beside the targets, the names of those carrying each ``key=value``: a selector with an
equality or set requirement (``region=eu``, ``tier in (edge,core)``) is then matched against the
targets those name, the fewest of its requirements' unions; a selector without one (``""``,
``!canary``, ``tier notin (core)``) still matches every target. Retired targets stay in the index
(callers skip them as before). Pure, no I/O.

A ``Targets`` never changes once built: :func:`changed` makes the next one, sharing what did not
change (the names of a label no changed target carries), so whoever holds the previous one keeps
a consistent fleet.
"""

from __future__ import annotations

from collections.abc import Collection, ItemsView, Iterator, KeysView, Mapping, ValuesView

from projections import fleet, selectors

_NARROWING = frozenset({selectors.Operator.EQUALS, selectors.Operator.IN})
_EMPTY: frozenset[str] = frozenset()


class Targets(Mapping[str, fleet.Target]):
    """Name -> target, read-only, with the names by label."""

    __slots__ = ("_found", "_named")

    def __init__(self, found: dict[str, fleet.Target], named: dict[tuple[str, str], set[str]]) -> None:
        self._found = found
        self._named = named

    def __getitem__(self, name: str) -> fleet.Target:
        return self._found[name]

    def __contains__(self, name: object) -> bool:
        return name in self._found

    def __iter__(self) -> Iterator[str]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)

    def keys(self) -> KeysView[str]:
        return self._found.keys()

    def items(self) -> ItemsView[str, fleet.Target]:
        return self._found.items()

    def values(self) -> ValuesView[fleet.Target]:
        return self._found.values()

    def whole(self) -> dict[str, fleet.Target]:
        """The dict behind the view, for the index that built it to copy (nobody may change it)."""
        return self._found

    def candidates(self, selector: selectors.Selector) -> Collection[str] | None:
        """The names of the targets ``selector`` may match (a superset), or None: every target."""
        best: Collection[str] | None = None
        for requirement in selector.requirements:
            if requirement.operator not in _NARROWING:
                continue
            postings = [self._named.get((requirement.key, v), _EMPTY) for v in requirement.values]
            found: Collection[str] = postings[0] if len(postings) == 1 else set().union(*postings)
            if best is None or len(found) < len(best):
                best = found
        return best


def candidates(targets: Mapping[str, fleet.Target], selector: selectors.Selector) -> Collection[str] | None:
    """``Targets.candidates`` when ``targets`` has the index, else None (match every target)."""
    return targets.candidates(selector) if isinstance(targets, Targets) else None


def build(found: dict[str, fleet.Target]) -> Targets:
    """The index of ``found``, which the caller hands over (no one may change it afterwards)."""
    named: dict[tuple[str, str], set[str]] = {}
    for name, target in found.items():
        for pair in target.labels.items():
            names = named.get(pair)
            if names is None:
                named[pair] = names = set()
            names.add(name)
    return Targets(found, named)


def changed(previous: Targets, found: dict[str, fleet.Target], before: Mapping[str, fleet.Target | None]) -> Targets:
    """The index of ``found``: ``previous``'s targets with those named in ``before`` changed
    (``before``: each one's target in ``previous``, None when it is new there)."""
    named = previous._named.copy()
    copied: set[tuple[str, str]] = set()

    def names_of(pair: tuple[str, str]) -> set[str]:
        if pair not in copied:
            named[pair] = set(named.get(pair, _EMPTY))
            copied.add(pair)
        return named[pair]

    for name, old in before.items():
        was = old.labels.items() if old is not None else {}.items()
        now = found[name].labels.items()
        for pair in was - now:
            names = names_of(pair)
            names.discard(name)
            if not names:
                del named[pair]
                copied.discard(pair)
        for pair in now - was:
            names_of(pair).add(name)
    return Targets(found, named)
