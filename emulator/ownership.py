"""Field ownership: what makes server-side apply behave like Kubernetes.

Each stored object keeps one :class:`ManagerEntry` per (manager, operation,
subresource), holding the set of leaf paths the manager owns and, for
``Apply`` entries, the last configuration it applied.  Two operations change
ownership:

* :func:`apply_config` (server-side apply): fields the manager applied before
  and no longer applies are removed from the object unless another manager
  still owns them; the new configuration is deep-merged (maps merged, lists
  and scalars replaced); setting a field owned by another manager to a
  different value is a 409 Conflict unless ``force`` is given, in which case
  ownership moves to the applier.
* :func:`record_update` (create, update, merge/JSON patch, out-of-band
  edits): the writer takes every field whose value it changed, stealing it
  from other managers without conflict, exactly as ``kubectl edit`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulator.codec import clone
from emulator.fieldpaths import (
    MISSING,
    Path,
    delete_path,
    fields_v1,
    get_path,
    has_path,
    owned_leaves,
    set_path,
)
from emulator.status import ApiError

ManagerKey = tuple[str, str, str]  # (manager, operation, subresource)


@dataclass(slots=True)
class ManagerEntry:
    manager: str
    operation: str  # "Apply" or "Update"
    api_version: str
    time: str
    fields: set[Path] = field(default_factory=set)
    subresource: str = ""
    applied: dict[str, Any] | None = None

    @property
    def key(self) -> ManagerKey:
        return (self.manager, self.operation, self.subresource)

    def clone(self) -> ManagerEntry:
        return ManagerEntry(
            self.manager,
            self.operation,
            self.api_version,
            self.time,
            set(self.fields),
            self.subresource,
            self.applied,
        )

    def managed_field(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(self.fields),
        }
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


Managers = dict[ManagerKey, ManagerEntry]


def clone_managers(managers: Managers) -> Managers:
    return {key: entry.clone() for key, entry in managers.items()}


def fields_signature(managers: Managers) -> dict[ManagerKey, frozenset[Path]]:
    return {key: frozenset(entry.fields) for key, entry in managers.items()}


def _conflict_error(conflicts: list[tuple[ManagerEntry, Path]]) -> ApiError:
    causes = []
    lines = []
    for entry, path in conflicts:
        dotted = "." + ".".join(path)
        who = f'conflict with "{entry.manager}"'
        if entry.operation == "Update":
            who += f" using {entry.api_version}"
        causes.append({"reason": "FieldManagerConflict", "message": who, "field": dotted})
        lines.append(f"{who}: {dotted}")
    count = len(conflicts)
    noun = "conflict" if count == 1 else "conflicts"
    message = f"Apply failed with {count} {noun}: " + ("; ".join(lines))
    return ApiError(409, "Conflict", message, {"causes": causes})


def apply_config(
    live: dict[str, Any],
    managers: Managers,
    manager: str,
    config: dict[str, Any],
    *,
    force: bool,
    api_version: str,
    now: str,
    subresource: str = "",
) -> Managers:
    """Server-side apply ``config`` onto ``live`` in place; return the new manager table.

    ``managers`` is not modified; raises a 409 ApiError on unforced conflicts.
    """
    key: ManagerKey = (manager, "Apply", subresource)
    wanted = owned_leaves(config)
    new_managers = clone_managers(managers)
    mine = new_managers.pop(key, None)

    conflicts: list[tuple[ManagerEntry, Path]] = []
    for path, value in wanted.items():
        if isinstance(value, dict):  # an empty map only asserts the map exists
            continue
        current = get_path(live, path)
        if current is MISSING or current == value:
            continue
        for other in new_managers.values():
            if path in other.fields:
                conflicts.append((other, path))
    if conflicts:
        if not force:
            raise _conflict_error(conflicts)
        for other, path in conflicts:
            other.fields.discard(path)

    previously = mine.fields if mine else set()

    def owned_by_others(path: Path) -> bool:
        return any(path in other.fields for other in new_managers.values())

    for path in sorted(previously - wanted.keys(), key=len, reverse=True):
        if owned_by_others(path) or any(p[: len(path)] == path for p in wanted):
            continue
        delete_path(live, path, keep=lambda parent: parent in wanted or owned_by_others(parent))

    for path, value in wanted.items():
        # Containers are copied so the stored object never aliases the applied config.
        set_path(live, path, clone(value) if isinstance(value, (dict, list)) else value)

    entry = ManagerEntry(manager, "Apply", api_version, now, set(wanted), subresource, config)
    if mine is not None and mine.fields == entry.fields and mine.applied == entry.applied:
        entry.time = mine.time
    new_managers[key] = entry
    _drop_vanished(new_managers, live)
    return new_managers


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    managers: Managers,
    manager: str,
    *,
    api_version: str,
    now: str,
    subresource: str = "",
) -> Managers:
    """Ownership after a non-apply write turned ``old`` into ``new``."""
    key: ManagerKey = (manager, "Update", subresource)
    before = owned_leaves(old) if old is not None else {}
    changed = {path for path, value in owned_leaves(new).items() if before.get(path, MISSING) != value}
    new_managers = clone_managers(managers)
    for other_key, other in new_managers.items():
        if other_key != key:
            other.fields -= changed
    if changed:
        entry = new_managers.get(key)
        if entry is None:
            entry = ManagerEntry(manager, "Update", api_version, now, set(), subresource)
            new_managers[key] = entry
        entry.fields |= changed
        entry.time = now
    _drop_vanished(new_managers, new)
    return new_managers


def _drop_vanished(managers: Managers, obj: dict[str, Any]) -> None:
    """Forget ownership of fields that no longer exist, and managers that own nothing."""
    for key in list(managers):
        entry = managers[key]
        entry.fields = {path for path in entry.fields if has_path(obj, path)}
        if not entry.fields:
            del managers[key]


def record_status_update(
    managers: Managers,
    old_status: dict[str, Any],
    new_status: dict[str, Any],
    manager: str,
    *,
    api_version: str,
    now: str,
) -> tuple[Managers, set[ManagerKey]]:
    """:func:`record_update` for a write that replaced only ``status`` (the controllers' writes).

    Only the status subtree is walked, so a status write costs the size of the status, not of the
    object. Returns the new managers and the keys of the entries that changed.
    """
    key: ManagerKey = (manager, "Update", "status")
    before = owned_leaves({"status": old_status})
    after = owned_leaves({"status": new_status})
    changed = {path for path, value in after.items() if before.get(path, MISSING) != value}
    gone = {path for path in before if path not in after}
    touched: set[ManagerKey] = set()
    new_managers: Managers = {}
    for other_key, other in managers.items():
        lost = other.fields & (gone | changed) if other_key != key else other.fields & gone
        if lost:
            other = other.clone()
            other.fields -= lost
            touched.add(other_key)
        if other.fields:
            new_managers[other_key] = other
        else:
            touched.add(other_key)
    if changed:
        entry = new_managers.get(key)
        entry = entry.clone() if entry is not None else ManagerEntry(manager, "Update", api_version, now, set(), "status")
        entry.fields |= changed
        entry.time = now
        new_managers[key] = entry
        touched.add(key)
    return new_managers, touched
