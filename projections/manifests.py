"""Parsing and validating the Kubernetes manifests of a deployment.

The ledger records the exact objects a deployment applies, so manifests are
checked before anything is recorded: a bad manifest is rejected with the JSON
path of the offending field rather than failing half-way through a rollout.

Decisions:

- YAML is read with the safe loader (the C one when available), with two
  changes so that it reads manifests the way kubectl does: timestamps and a
  bare ``=`` stay strings, and a key repeated in one mapping is an error
  instead of the last value silently winning.
- A ``List`` document (``kind: List``, or any ``*List`` kind with an
  ``items`` sequence) contributes its items, recursively.
- Only the keys of annotations are validated; annotation values are arbitrary
  strings, as in Kubernetes (label-value rules would reject real manifests).
- ``metadata.name`` must be a DNS-1123 subdomain for every kind, so RBAC names
  containing ``:`` are rejected. An empty or null namespace means "none".
- Manifests must be plain JSON (string keys, finite numbers, at most
  ``MAX_DEPTH`` (64) levels): they are stored and diffed as JSON. Integers must
  fit in 64 bits, as Kubernetes holds them; no string or key may hold a NUL
  character, which PostgreSQL cannot store. Size is measured
  as compact UTF-8 JSON; the walk that checks types gives up early on
  documents that cannot fit, so YAML alias bombs cost nothing.
- Two manifests are the same object when API group, kind, namespace and name
  match. Whether a kind is namespaced is unknown here, so an omitted
  namespace and an explicit ``default`` are different objects.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml

from ledger import jsontext
from projections.selectors import (
    InvalidInput,
    LabelError,
    dns_label_error,
    dns_subdomain_error,
    field_path,
    label_key_error,
    shown,
    validate_labels,
)

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

MAX_MANIFESTS: Final = 1000
MAX_MANIFEST_BYTES: Final = 256 * 1024
MAX_DEPTH: Final = jsontext.MAX_DEPTH
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
YAML_FIELD: Final = "manifests_yaml"

_API_VERSION = re.compile(r"([^/\s]+/)?[^/\s]+")
_PLAIN_STRINGS: Final = frozenset({"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"})
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class ManifestError(InvalidInput):
    """A manifest (or the YAML holding it) that cannot be deployed.

    ``index`` is the manifest's position in the validated list, or for YAML
    errors the document's position in the stream; None when not about one
    (including characters that YAML forbids anywhere, which the C reader
    rejects before it splits documents).
    """

    def __init__(self, index: int | None, field: str, message: str) -> None:
        super().__init__(field, message)
        self.index = index
        self.args = (index, field, message)


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """The identity of a Kubernetes object; ``namespace`` is None when not namespaced."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    @property
    def group(self) -> str:
        group, slash, _ = self.api_version.partition("/")
        return group if slash else ""

    def to_dict(self) -> dict[str, str]:
        result = {"apiVersion": self.api_version, "kind": self.kind}
        if self.namespace is not None:
            result["namespace"] = self.namespace
        result["name"] = self.name
        return result

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


class _ManifestLoader(_SafeLoader):
    yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag not in _PLAIN_STRINGS]
        for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a sequence"
    return f"a value of type {type(value).__name__}"


def _line_column(text: str, offset: int) -> str:
    line_start = text.rfind("\n", 0, offset) + 1
    return f"line {text.count(chr(10), 0, offset) + 1}, column {offset - line_start + 1}"


def _yaml_error(error: yaml.YAMLError, document: int | None, text: str) -> ManifestError:
    mark = error.problem_mark or error.context_mark if isinstance(error, yaml.MarkedYAMLError) else None
    if isinstance(error, yaml.MarkedYAMLError) and mark is not None:
        problem = error.problem or error.context
        context = f" ({error.context})" if error.context and error.problem else ""
        message = f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}{context}"
    elif isinstance(error, yaml.reader.ReaderError) and isinstance(error.character, int):
        character = chr(error.character)
        offset = text.find(character)
        where = _line_column(text, offset if offset >= 0 else error.position)
        message = f"invalid YAML at {where}: character U+{error.character:04X} is not allowed"
        document = None
    else:
        message = f"invalid YAML: {error}"
    return ManifestError(document, YAML_FIELD, message)


def _is_list(document: Mapping[str, Any]) -> bool:
    kind = document.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list)


def _flatten(document: object, index: int) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    pending: list[tuple[str, object]] = [(f"document {index}", document)]
    while pending:
        where, value = pending.pop()
        if not isinstance(value, dict):
            raise ManifestError(index, YAML_FIELD, f"{where} is {_describe(value)}, expected a mapping")
        if value.get("kind") == "List" and not _is_list(value):
            raise ManifestError(index, YAML_FIELD, f"{where} is a List without an items sequence")
        if _is_list(value):
            items = value["items"]
            pending.extend((f"{where} items[{i}]", items[i]) for i in reversed(range(len(items))))
        else:
            flat.append(value)
    return flat


def parse_yaml(text: str) -> list[dict[str, Any]]:
    """The manifests in a multi-document YAML stream, ``List`` documents flattened.

    Raises :class:`ManifestError` with field ``manifests_yaml``. Does not
    validate the manifests; see :func:`validate`.
    """
    documents: list[tuple[int, object]] = []
    count = 0
    try:
        for document in yaml.load_all(text, Loader=_ManifestLoader):
            if document is not None:
                documents.append((count, document))
            count += 1
    except yaml.YAMLError as error:
        raise _yaml_error(error, count, text) from error
    except UnicodeEncodeError as error:
        where = _line_column(text, error.start)
        raise ManifestError(None, YAML_FIELD, f"invalid YAML at {where}: not valid Unicode") from error
    except ValueError as error:
        reason = str(error).split(";")[0]
        raise ManifestError(count, YAML_FIELD, f"document {count} cannot be read: {reason}") from error
    except RecursionError as error:
        raise ManifestError(count, YAML_FIELD, f"document {count} is nested too deeply") from error
    manifests: list[dict[str, Any]] = []
    for index, document in documents:
        manifests.extend(_flatten(document, index))
    return manifests


def _required_string(index: int | None, parent: Mapping[str, Any], base: str, name: str) -> str:
    value = parent.get(name)
    if value is None:
        raise ManifestError(index, field_path(base, name), "is required")
    if not isinstance(value, str):
        raise ManifestError(index, field_path(base, name), f"must be a string, got {_describe(value)}")
    if not value:
        raise ManifestError(index, field_path(base, name), "must not be empty")
    return value


def _check_metadata(index: int, metadata: object, base: str) -> None:
    if not isinstance(metadata, dict):
        reason = "is required" if metadata is None else f"must be a mapping, got {_describe(metadata)}"
        raise ManifestError(index, base, reason)
    name = _required_string(index, metadata, base, "name")
    problem = dns_subdomain_error(name)
    if problem is not None:
        raise ManifestError(index, f"{base}.name", problem)
    namespace = metadata.get("namespace")
    if namespace is not None and namespace != "":
        if not isinstance(namespace, str):
            raise ManifestError(index, f"{base}.namespace", f"must be a string, got {_describe(namespace)}")
        problem = dns_label_error(namespace)
        if problem is not None:
            raise ManifestError(index, f"{base}.namespace", problem)
    labels = metadata.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            raise ManifestError(index, f"{base}.labels", f"must be a mapping, got {_describe(labels)}")
        try:
            validate_labels(labels, field=f"{base}.labels")
        except LabelError as error:
            raise ManifestError(index, error.field, error.message) from error
    annotations = metadata.get("annotations")
    if annotations is not None:
        _check_annotations(index, annotations, f"{base}.annotations")


def _check_annotations(index: int, annotations: object, base: str) -> None:
    if not isinstance(annotations, dict):
        raise ManifestError(index, base, f"must be a mapping, got {_describe(annotations)}")
    for key, value in annotations.items():
        if not isinstance(key, str):
            raise ManifestError(index, field_path(base, str(key)), "annotation keys must be strings")
        problem = label_key_error(key.lower())
        if problem is not None:
            raise ManifestError(index, field_path(base, key), f"invalid annotation key {shown(key)}: {problem}")
        if not isinstance(value, str):
            raise ManifestError(
                index, field_path(base, key), f"annotation values must be strings, got {_describe(value)}"
            )


@dataclass(frozen=True, slots=True)
class _Path:
    parent: _Path | None
    member: str | int

    def render(self, root: str) -> str:
        members: list[str | int] = []
        node: _Path | None = self
        while node is not None:
            members.append(node.member)
            node = node.parent
        path = root
        for member in reversed(members):
            path = field_path(path, member)
        return path


def _json_problem(value: object) -> tuple[_Path | None, str] | None:
    """Where and why ``value`` is not plain JSON or cannot fit the size limit."""
    budget = MAX_MANIFEST_BYTES
    pending: list[tuple[_Path | None, object, int]] = [(None, value, 0)]
    while pending:
        path, node, depth = pending.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path, "text must not contain the NUL character (\\u0000)"
            budget -= len(node) + 2
        elif node is None or isinstance(node, bool):
            budget -= 1
        elif isinstance(node, int):
            if not INT64_MIN <= node <= INT64_MAX:
                return path, f"is an integer outside the 64-bit range Kubernetes holds ({INT64_MIN} to {INT64_MAX})"
            budget -= 1
        elif isinstance(node, float):
            if not math.isfinite(node):
                return path, f"must be a finite number, got {node}"
            budget -= 1
        elif isinstance(node, dict | list | tuple):
            if depth >= MAX_DEPTH:
                return path, f"is nested deeper than {MAX_DEPTH} levels"
            budget -= 2
            entries = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            for member, child in reversed(entries):
                if isinstance(node, dict) and not isinstance(member, str):
                    return _Path(path, str(member)), f"mapping keys must be strings, got {_describe(member)}"
                if isinstance(member, str) and "\x00" in member:
                    return _Path(path, member), "a key must not contain the NUL character (\\u0000)"
                budget -= len(member) + 3 if isinstance(member, str) else 1
                pending.append((_Path(path, member), child, depth + 1))
        else:
            return path, f"is {_describe(node)}, which is not a JSON value"
        if budget < 0:
            return None, f"is larger than {MAX_MANIFEST_BYTES // 1024} KiB when JSON-encoded"
    return None


def _check_json(index: int, manifest: dict[str, Any], base: str) -> None:
    problem = _json_problem(manifest)
    if problem is not None:
        path, message = problem
        raise ManifestError(index, base if path is None else path.render(base), message)
    encoded = json.dumps(manifest, ensure_ascii=False, separators=(",", ":"))
    try:
        size = len(encoded.encode())
    except UnicodeEncodeError as error:
        raise ManifestError(index, base, "contains a string that is not valid Unicode") from error
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(
            index,
            base,
            f"is {size} bytes when JSON-encoded, more than the {MAX_MANIFEST_BYTES // 1024} KiB allowed",
        )


def _check_manifest(index: int, manifest: object) -> dict[str, Any]:
    base = f"manifests[{index}]"
    if not isinstance(manifest, dict):
        raise ManifestError(index, base, f"must be a mapping, got {_describe(manifest)}")
    api_version = _required_string(index, manifest, base, "apiVersion")
    if not _API_VERSION.fullmatch(api_version):
        raise ManifestError(index, f"{base}.apiVersion", 'must be "<version>" or "<group>/<version>"')
    _required_string(index, manifest, base, "kind")
    _check_metadata(index, manifest.get("metadata"), f"{base}.metadata")
    _check_json(index, manifest, base)
    return manifest


def validate(manifests: Sequence[Any]) -> list[dict[str, Any]]:
    """Check a deployment's manifests; return them unchanged or raise :class:`ManifestError`."""
    if isinstance(manifests, str | bytes | Mapping) or not isinstance(manifests, Sequence):
        raise ManifestError(None, "manifests", f"must be a sequence of manifests, got {_describe(manifests)}")
    if not manifests:
        raise ManifestError(None, "manifests", "at least one manifest is required")
    if len(manifests) > MAX_MANIFESTS:
        raise ManifestError(
            None, "manifests", f"at most {MAX_MANIFESTS} manifests are allowed, got {len(manifests)}"
        )
    checked: list[dict[str, Any]] = []
    first_seen: dict[tuple[str, str, str | None, str], int] = {}
    for index, manifest in enumerate(manifests):
        checked.append(_check_manifest(index, manifest))
        key = key_of(manifest)
        first = first_seen.setdefault((key.group, key.kind, key.namespace, key.name), index)
        if first != index:
            raise ManifestError(
                index, f"manifests[{index}].metadata.name", f"{key} is already defined by manifests[{first}]"
            )
    return checked


def key_of(manifest: Mapping[str, Any]) -> ObjectKey:
    """The identity of a manifest; raises :class:`ManifestError` if it has none."""
    metadata = manifest.get("metadata")
    if not isinstance(metadata, Mapping):
        raise ManifestError(None, "metadata", "must be a mapping")
    namespace = metadata.get("namespace") or None
    if namespace is not None and not isinstance(namespace, str):
        raise ManifestError(None, "metadata.namespace", "must be a string")
    return ObjectKey(
        api_version=_required_string(None, manifest, "", "apiVersion"),
        kind=_required_string(None, manifest, "", "kind"),
        namespace=namespace,
        name=_required_string(None, metadata, "metadata", "name"),
    )
