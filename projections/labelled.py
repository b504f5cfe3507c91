"""The fleet's targets with their names by label, so that a selector finds the targets it may
match without matching every target.

A revision on a fleet of 40,000 targets matched its selector against each of them (~2/3 of what
the API process spent on it once the targets themselves came from an index,
projections/targetindex.py). As Kubernetes' informers index objects by label, :class:`Targets`
keeps, beside the targets, the names of those carrying each ``key=value``: a selector with an
equality or set requirement (``region=eu``, ``tier in (edge,core)``) is then matched against the
targets named under its narrowest requirement; a selector without one (``""``, ``!canary``,
``tier notin (core)``) still matches every target. Retired targets stay named (callers skip them
as before). Pure, no I/O.

Decisions:

- **Names are only ever added** (a superset, matched against each target's own labels anyway): a
  target relabelled is named under its new labels and stays under its old ones, so one that a
  caller still holds finds every target of its own fleet. Copying a label's names on each change
  (copy-on-write) cost a 40,000-name set per catch-up for a label every target carries and ~29 MB
  of RSS in bench/revisions.py; appending costs a name.
- **Rebuilt once stale names outnumber the targets**, so they stay bounded and the rebuild's cost
  (the whole fleet, ~30 ms at 40,000) is spread over at least as many changes.
- Names are kept in lists (8 bytes each), de-duplicated when a selector asks for them.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView

from projections import fleet, selectors

_NARROWING = frozenset({selectors.Operator.EQUALS, selectors.Operator.IN})


class _Names:
    """``key=value`` -> the targets that carried it at some time since the build (append only)."""

    __slots__ = ("added", "by_pair")

    def __init__(self) -> None:
        self.by_pair: dict[tuple[str, str], list[str]] = {}
        self.added = 0  # names added since the build

    def add(self, name: str, labels: Iterable[tuple[str, str]]) -> None:
        for pair in labels:
            names = self.by_pair.get(pair)
            if names is None:
                self.by_pair[pair] = [name]
            else:
                names.append(name)


class Targets(Mapping[str, fleet.Target]):
    """Name -> target, read-only, with the names by label."""

    __slots__ = ("_found", "_names")

    def __init__(self, found: dict[str, fleet.Target], names: _Names) -> None:
        self._found = found
        self._names = names

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

    def named(self) -> int:
        """How many names the index holds, stale ones included."""
        return sum(map(len, self._names.by_pair.values()))

    def candidates(self, selector: selectors.Selector) -> set[str] | None:
        """The targets of this fleet ``selector`` may match (a superset), or None: every target."""
        best: list[list[str]] | None = None
        size = 0
        for requirement in selector.requirements:
            if requirement.operator not in _NARROWING:
                continue
            lists = [self._names.by_pair.get((requirement.key, value), []) for value in requirement.values]
            found = sum(map(len, lists))
            if best is None or found < size:
                best, size = lists, found
        if best is None:
            return None
        return {name for names in best for name in names if name in self._found}


def candidates(targets: Mapping[str, fleet.Target], selector: selectors.Selector) -> set[str] | None:
    """``Targets.candidates`` when ``targets`` has the index, else None (match every target)."""
    return targets.candidates(selector) if isinstance(targets, Targets) else None


def build(found: dict[str, fleet.Target]) -> Targets:
    """The index of ``found``, which the caller hands over (no one may change it afterwards)."""
    names = _Names()
    for name, target in found.items():
        names.add(name, target.labels.items())
    return Targets(found, names)


def changed(previous: Targets, found: dict[str, fleet.Target], before: Mapping[str, fleet.Target | None]) -> Targets:
    """The index of ``found``: ``previous``'s targets with those named in ``before`` changed
    (``before``: each one's target in ``previous``, None when it is new there)."""
    names = previous._names
    if names.added > len(found):
        return build(found)
    for name, old in before.items():
        added = found[name].labels.items() - (old.labels.items() if old is not None else set())
        names.add(name, added)
        names.added += len(added)
    return Targets(found, names)
