"""Stable YAML rendering and unified diffs of manifest sets.

People approve a deployment by reading the diff between what runs and what
will run, so only real changes may show up in it: the rendering is a pure
function of the manifests' content, independent of the order of manifests
and of keys, and each line means one thing.

Decisions:

- Objects are ordered by (namespace, kind, name), then apiVersion and finally
  their rendered text, so the order is total even for unvalidated input.
  Cluster-scoped objects (no namespace) come first.
- In each object ``apiVersion``, ``kind`` and ``metadata`` come first and the
  other keys follow alphabetically; nested mappings are fully alphabetical.
- Block style, every document opened by ``---``, no anchors or aliases, no
  line folding; multi-line strings use literal blocks (``|``) so a changed
  line in a ConfigMap shows as one changed line. Strings holding Unicode line
  separators (U+0085, U+2028, U+2029) are double-quoted so they are escaped
  and every diff line is a real line.
- The C emitter is used when available; its output can differ from the pure
  Python one in corner cases, which does not matter because both sides of a
  diff are rendered by the same process.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, Final

import yaml

try:
    from yaml import CSafeDumper as _SafeDumper
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]

_LEADING_KEYS: Final = ("apiVersion", "kind", "metadata")
_UNICODE_BREAKS: Final = frozenset("\x85\u2028\u2029")
_NO_FOLDING: Final = 2**31 - 1


class _Dumper(_SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: _Dumper, value: str) -> yaml.ScalarNode:
    style: str | None = None
    if not _UNICODE_BREAKS.isdisjoint(value):
        style = '"'
    elif "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _sorted_mapping(mapping: Mapping[Any, Any], leading: tuple[str, ...] = ()) -> dict[Any, Any]:
    first = [key for key in leading if key in mapping]
    rest = sorted((key for key in mapping if key not in first), key=str)
    return {key: _normalized(mapping[key]) for key in (*first, *rest)}


def _normalized(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _sorted_mapping(value)
    if isinstance(value, list | tuple):
        return [_normalized(item) for item in value]
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _document(manifest: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    metadata = manifest.get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    text = yaml.dump(
        _sorted_mapping(manifest, _LEADING_KEYS),
        Dumper=_Dumper,
        explicit_start=True,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        width=_NO_FOLDING,
    )
    order = (
        _text(metadata.get("namespace")),
        _text(manifest.get("kind")),
        _text(metadata.get("name")),
        _text(manifest.get("apiVersion")),
        text,
    )
    return order, text


def render_yaml(manifests: Iterable[Mapping[str, Any]]) -> str:
    """The manifests as one multi-document YAML stream in a canonical form."""
    documents = sorted(_document(manifest) for manifest in manifests)
    return "".join(text for _, text in documents)


def _lines(text: str) -> list[str]:
    return [f"{line}\n" for line in text.split("\n")[:-1]]


def unified_diff(
    old: Iterable[Mapping[str, Any]],
    new: Iterable[Mapping[str, Any]],
    *,
    from_label: str,
    to_label: str,
    context: int = 3,
) -> str:
    """A unified diff from ``old`` to ``new`` rendered by :func:`render_yaml`; "" when equal."""
    diff = difflib.unified_diff(
        _lines(render_yaml(old)),
        _lines(render_yaml(new)),
        fromfile=from_label,
        tofile=to_label,
        n=context,
    )
    return "".join(diff)
