"""What a JSON decoder hides or chokes on, found in the text itself and named by its path.

msgspec decodes into Python values and so cannot say where a repeated key was (the last one wins),
which string held an escaped NUL that PostgreSQL's jsonb refuses, or where a document nested
thousands of levels deep made it give up with a RecursionError. Both functions here name the
first such place as a msgspec-style path (``$.manifests[0].data.key``):

- :func:`find` (NUL and repeated keys) decodes with the standard library's C parser, which lets a
  hook see every object's pairs before they become a dict, then walks the result iteratively;
- :func:`scan` walks the text itself token by token, with no recursion however deep the input, so
  it can name where a document passes the depth limit; it is slower, and used when a decoder gave
  up on depth.

Callers decode first and look only when there is a reason to (the decoder gave up on depth, the
text holds ``\\u0000``, or the value is free-form, like manifests, whose repeated keys must not be
dropped silently). Both expect well-formed JSON and stop quietly (return None) on anything else,
leaving the decoder's own error to speak.

Decisions:

- ``MAX_DEPTH`` (64) is the documented nesting limit: a container opening a 65th level is named.
- A key is compared after unescaping, so ``"a"`` and ``"\\u0061"`` are the same key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

MAX_DEPTH: Final = 64
NUL_ESCAPE: Final = b"\\u0000"

_SPACE: Final = re.compile(rb"[ \t\r\n]*")
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_SCALAR: Final = re.compile(rb"[^ \t\r\n,:\[\]{}\"]+")
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Finding:
    """Where (a ``$``-rooted path) and what (a sentence) is wrong with the text."""

    path: str
    reason: str


def field_path(base: str, member: str | int) -> str:
    """Extend the JSON path ``base`` by an object member or array index."""
    if isinstance(member, int):
        return f"{base}[{member}]"
    if _IDENTIFIER.fullmatch(member):
        return f"{base}.{member}" if base else member
    return f"{base}[{json.dumps(member, ensure_ascii=False)}]"


class _Frame:
    __slots__ = ("is_object", "keys", "member")

    def __init__(self, is_object: bool, track_keys: bool) -> None:
        self.is_object = is_object
        self.member: str | int | None = None if is_object else 0
        self.keys: set[str] | None = set() if track_keys and is_object else None


def _render(root: str, stack: list[_Frame]) -> str:
    path = root
    for frame in stack:
        if frame.member is not None:
            path = field_path(path, frame.member)
    return path


class _Repeated(dict):  # type: ignore[type-arg]
    """An object that named ``key`` more than once (the decoder kept the last value)."""

    key: str


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    repeated = _Repeated(value)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            repeated.key = key
            break
        seen.add(key)
    return repeated


_NUL_VALUE: Final = "text must not contain the NUL character (\\u0000)"
_NUL_KEY: Final = "a key must not contain the NUL character (\\u0000)"


def find(text: bytes, *, root: str = "$", duplicates: bool = False) -> Finding | None:
    """The first string or key in ``text`` holding a NUL character or, with ``duplicates``, the
    first key repeated in its object; None when there is none."""
    try:
        value = json.loads(text, object_pairs_hook=_pairs if duplicates else None)
    except RecursionError:
        return scan(text, root=root, max_depth=None, duplicates=duplicates)
    except ValueError:
        return None
    pending: list[tuple[str, Any]] = [(root, value)]
    while pending:
        path, node = pending.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return Finding(path, _NUL_VALUE)
        elif isinstance(node, dict):
            if isinstance(node, _Repeated):
                return Finding(field_path(path, node.key), f"the key {json.dumps(node.key)} is repeated in its object")
            children = list(node.items())
            for key, _ in children:
                if "\x00" in key:
                    return Finding(field_path(path, key), _NUL_KEY)
            pending.extend((field_path(path, key), child) for key, child in reversed(children))
        elif isinstance(node, list):
            pending.extend((field_path(path, i), node[i]) for i in reversed(range(len(node))))
    return None


def scan(text: bytes, *, root: str = "$", max_depth: int | None = MAX_DEPTH, nul: bool = True,
         duplicates: bool = False) -> Finding | None:
    """The first place in ``text`` nested deeper than ``max_depth``, holding a NUL character
    (``nul``) or repeating a key of its object (``duplicates``); None when there is none."""
    stack: list[_Frame] = []
    expect_key = False
    i, end = 0, len(text)
    while True:
        i = _SPACE.match(text, i).end()  # type: ignore[union-attr]
        if i >= end:
            return None
        char = text[i]
        if char == 0x22:  # "
            match = _STRING.match(text, i)
            if match is None:
                return None
            token = match.group()
            i = match.end()
            if expect_key:
                try:
                    key = json.loads(token)
                except ValueError:
                    return None
                frame = stack[-1]
                frame.member = key
                if nul and "\x00" in key:
                    return Finding(_render(root, stack), _NUL_KEY)
                if frame.keys is not None:
                    if key in frame.keys:
                        return Finding(_render(root, stack), f"the key {json.dumps(key)} is repeated in its object")
                    frame.keys.add(key)
                expect_key = False
            elif nul and NUL_ESCAPE in token and "\x00" in _loads(token):
                return Finding(_render(root, stack), _NUL_VALUE)
        elif char in b"[{":
            if max_depth is not None and len(stack) >= max_depth:
                return Finding(_render(root, stack), f"is nested deeper than {max_depth} levels")
            stack.append(_Frame(char == 0x7B, duplicates))
            expect_key = char == 0x7B
            i += 1
        elif char in b"]}":
            if not stack:
                return None
            stack.pop()
            expect_key = False
            i += 1
        elif char == 0x2C:  # ,
            if not stack:
                return None
            frame = stack[-1]
            if frame.is_object:
                expect_key = True
            else:
                assert isinstance(frame.member, int)
                frame.member += 1
            i += 1
        elif char == 0x3A:  # :
            i += 1
        else:
            scalar = _SCALAR.match(text, i)
            if scalar is None:
                return None
            i = scalar.end()


def _loads(token: bytes) -> str:
    try:
        value = json.loads(token)
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""
