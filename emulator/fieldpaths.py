"""Field paths: the unit of ownership for server-side apply.

An object is seen as a tree of maps; a *leaf* is any value that is not a
non-empty map (scalars, lists, empty maps).  Lists are atomic, as the brief
for the emulator asks (real SSA merges ``listType=map`` lists by key).  Paths
are tuples of map keys.  The helpers here enumerate leaves, read/write/delete
by path, and render path sets as the ``fieldsV1`` format used in
``metadata.managedFields``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

Path = tuple[str, ...]

# Paths a field manager can never own: identity and server-maintained metadata.
UNOWNED: frozenset[Path] = frozenset(
    {
        ("apiVersion",),
        ("kind",),
        ("metadata", "name"),
        ("metadata", "namespace"),
        ("metadata", "uid"),
        ("metadata", "resourceVersion"),
        ("metadata", "generation"),
        ("metadata", "creationTimestamp"),
        ("metadata", "managedFields"),
        ("metadata", "deletionTimestamp"),
        ("metadata", "deletionGracePeriodSeconds"),
        ("metadata", "selfLink"),
    }
)
MISSING = object()


def iter_leaves(obj: Mapping[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    for key, value in obj.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            yield from iter_leaves(value, path)
        else:
            yield path, value


def owned_leaves(obj: Mapping[str, Any]) -> dict[Path, Any]:
    """Leaves a manager can own, with their values (``metadata`` itself excluded)."""
    leaves: dict[Path, Any] = {}
    for path, value in iter_leaves(obj):
        if path in UNOWNED or path == ("metadata",):
            continue
        leaves[path] = value
    return leaves


def get_path(obj: Mapping[str, Any], path: Path) -> Any:
    """The value at ``path``, or the ``MISSING`` sentinel."""
    node: Any = obj
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def has_path(obj: Mapping[str, Any], path: Path) -> bool:
    return get_path(obj, path) is not MISSING


def set_path(obj: dict[str, Any], path: Path, value: Any) -> None:
    """Set ``path`` to ``value``, creating (or replacing non-map) parents.

    Setting an empty map where a map already exists keeps the existing map:
    an empty map in an apply configuration means "this map exists", not
    "clear it".
    """
    node = obj
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    last = path[-1]
    if isinstance(value, dict) and not value and isinstance(node.get(last), dict):
        return
    node[last] = value


def delete_path(obj: dict[str, Any], path: Path, keep: Callable[[Path], bool]) -> None:
    """Delete ``path``; then prune parent maps left empty unless ``keep(parent)``."""
    chain: list[dict[str, Any]] = [obj]
    node: Any = obj
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return
        chain.append(node)
    if path[-1] not in chain[-1]:
        return
    del chain[-1][path[-1]]
    for depth in range(len(path) - 1, 0, -1):
        parent_path = path[:depth]
        if chain[depth] or keep(parent_path) or parent_path == ("metadata",):
            break
        del chain[depth - 1][path[depth - 1]]


def fields_v1(paths: set[Path] | frozenset[Path]) -> dict[str, Any]:
    """Render a path set in the FieldsV1 trie format (``{"f:spec": {"f:replicas": {}}}``)."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return root


def strip_nulls(value: Any) -> Any:
    """Drop ``None`` map entries recursively (null in an apply config = no opinion)."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value
