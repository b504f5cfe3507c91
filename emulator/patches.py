"""Non-apply PATCH flavours: JSON merge patch and JSON patch.

``application/merge-patch+json`` follows RFC 7386.  The real API server's
``application/strategic-merge-patch+json`` merges some lists by key (e.g.
containers by name); the emulator treats it as a merge patch, which is the
same for maps and scalars.  ``application/json-patch+json`` follows RFC 6902.
"""

from __future__ import annotations

import copy
from typing import Any

from emulator.status import ApiError, bad_request

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _invalid_patch(message: str) -> ApiError:
    return ApiError(
        422, "Invalid", f"the server rejected our request due to an error in our request: {message}"
    )


def _pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _invalid_patch(f"invalid JSON pointer {pointer!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _parent(doc: Any, parts: list[str], pointer: str) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _invalid_patch(f"path {pointer!r} does not exist")
    return node


def _index(node: list[Any], part: str, pointer: str, *, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(node)
    if not part.isdigit():
        raise _invalid_patch(f"invalid array index in {pointer!r}")
    idx = int(part)
    if idx > len(node) or (idx == len(node) and not allow_end):
        raise _invalid_patch(f"array index out of range in {pointer!r}")
    return idx


def _get(doc: Any, pointer: str) -> Any:
    parts = _pointer(pointer)
    if not parts:
        return doc
    node = _parent(doc, parts, pointer)
    last = parts[-1]
    if isinstance(node, dict) and last in node:
        return node[last]
    if isinstance(node, list):
        return node[_index(node, last, pointer, allow_end=False)]
    raise _invalid_patch(f"path {pointer!r} does not exist")


def _remove(doc: Any, pointer: str) -> Any:
    parts = _pointer(pointer)
    if not parts:
        raise _invalid_patch("cannot remove the whole document")
    node = _parent(doc, parts, pointer)
    last = parts[-1]
    if isinstance(node, dict) and last in node:
        return node.pop(last)
    if isinstance(node, list):
        return node.pop(_index(node, last, pointer, allow_end=False))
    raise _invalid_patch(f"path {pointer!r} does not exist")


def _add(doc: Any, pointer: str, value: Any, *, replace: bool) -> Any:
    parts = _pointer(pointer)
    if not parts:
        return value
    node = _parent(doc, parts, pointer)
    last = parts[-1]
    if isinstance(node, dict):
        if replace and last not in node:
            raise _invalid_patch(f"path {pointer!r} does not exist")
        node[last] = value
    elif isinstance(node, list):
        idx = _index(node, last, pointer, allow_end=not replace)
        if replace:
            node[idx] = value
        else:
            node.insert(idx, value)
    else:
        raise _invalid_patch(f"path {pointer!r} does not exist")
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    """Apply RFC 6902 ``operations`` to a deep copy of ``doc``."""
    if not isinstance(operations, list):
        raise bad_request("json patch body must be a list of operations")
    result = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid json patch operation: {op!r}")
        kind, path = op["op"], str(op["path"])
        if kind in ("add", "replace"):
            if "value" not in op:
                raise bad_request(f"json patch {kind} operation requires a value")
            result = _add(result, path, copy.deepcopy(op["value"]), replace=kind == "replace")
        elif kind == "remove":
            _remove(result, path)
        elif kind in ("move", "copy"):
            source = str(op.get("from", ""))
            value = _remove(result, source) if kind == "move" else copy.deepcopy(_get(result, source))
            result = _add(result, path, value, replace=False)
        elif kind == "test":
            if _get(result, path) != op.get("value"):
                raise _invalid_patch(f"testing value {path!r} failed")
        else:
            raise bad_request(f"unknown json patch operation {kind!r}")
    return result
