"""Label and field selectors with the real API server's syntax and semantics.

Label selectors accept the full grammar of ``k8s.io/apimachinery/pkg/labels``:
``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``,
``k>1``, ``k<1``, joined by commas (logical AND).  ``!=`` and ``notin`` also
match objects that do not carry the key, exactly like Kubernetes.  Field
selectors support ``=``, ``==`` and ``!=`` on an allow-list of fields per kind.
Malformed selectors are 400 BadRequest, as on a real cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from emulator.catalog import ResourceType
from emulator.status import ApiError, bad_request

_SPECIAL = "!=(),<>"
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or None when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character, and be at most 63 characters"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None when it is."""
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character, and be at most 63 characters"
        )
    return None


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        have = labels.get(self.key)
        if op in ("=", "in"):
            return have is not None and have in self.values
        if op in ("!=", "notin"):
            return have is None or have not in self.values
        if have is None:
            return False
        try:
            number = int(have)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if op == ">" else number < bound


def _lex(text: str) -> list[str]:
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif text.startswith(("==", "!="), i):
            tokens.append(text[i : i + 2])
            i += 2
        elif ch in _SPECIAL:
            tokens.append(ch)
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.pos = 0

    def fail(self, expected: str) -> ApiError:
        found = self.tokens[self.pos] if self.pos < len(self.tokens) else ""
        return bad_request(f"unable to parse requirement: found '{found}', expected: {expected}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str | None:
        tok = self.peek()
        self.pos += 1
        return tok

    def identifier(self, what: str) -> str:
        tok = self.peek()
        if tok is None or tok in _SPECIAL or tok in ("==", "!="):
            raise self.fail(what)
        self.pos += 1
        return tok

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        if not self.tokens:
            return reqs
        while True:
            reqs.append(self.requirement())
            tok = self.take()
            if tok is None:
                return reqs
            if tok != ",":
                self.pos -= 1
                raise self.fail("',' or 'end of string'")

    def key(self) -> str:
        key = self.identifier("identifier")
        problem = label_key_problem(key)
        if problem:
            raise bad_request(f'unable to parse requirement: invalid label key "{key}": {problem}')
        return key

    def value(self) -> str:
        tok = self.peek()
        if tok is None or tok in (",", ")"):
            return ""
        value = self.identifier("identifier for value")
        problem = label_value_problem(value)
        if problem:
            raise bad_request(f'unable to parse requirement: invalid label value: "{value}": {problem}')
        return value

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.pos += 1
            return Requirement(self.key(), "!")
        key = self.key()
        op = self.peek()
        if op is None or op == ",":
            return Requirement(key, "exists")
        self.pos += 1
        if op in ("=", "=="):
            return Requirement(key, "=", (self.value(),))
        if op == "!=":
            return Requirement(key, "!=", (self.value(),))
        if op in ("in", "notin"):
            if self.take() != "(":
                self.pos -= 1
                raise self.fail("'('")
            if self.peek() == ")":
                raise bad_request(
                    "unable to parse requirement: for 'in', 'notin' operators, values set can't be empty"
                )
            values: list[str] = []
            while True:
                values.append(self.value())
                tok = self.take()
                if tok == ")":
                    break
                if tok != ",":
                    self.pos -= 1
                    raise self.fail("',' or ')'")
            return Requirement(key, op, tuple(values))
        if op in (">", "<"):
            bound = self.identifier("integer")
            if not re.fullmatch(r"-?\d+", bound):
                raise bad_request(
                    f"unable to parse requirement: for '{op}' operator, the value must be an integer"
                )
            return Requirement(key, op, (bound,))
        self.pos -= 1
        raise self.fail("'=', '!=', '==', 'in', 'notin', '>' or '<'")


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        return cls(tuple(_Parser(text or "").parse()))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(req.matches(labels) for req in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


@dataclass(frozen=True, slots=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...]  # (field, equal?, value)

    @classmethod
    def parse(cls, text: str | None, rt: ResourceType) -> FieldSelector:
        terms: list[tuple[str, bool, str]] = []
        if not text:
            return cls(())
        allowed: Collection[str] = ("metadata.name", "metadata.namespace", *rt.extra_field_selectors)
        for raw in _split_unescaped(text, ","):
            term = raw.strip()
            if not term:
                continue
            match = re.match(r"^((?:[^\\=!]|\\.)*?)\s*(==|!=|=)\s*(.*)$", term)
            if not match:
                raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
            field, op, value = match.group(1).strip(), match.group(2), _unescape(match.group(3).strip())
            if field not in allowed:
                raise bad_request(f"field label not supported: {field}")
            terms.append((field, op != "!=", value))
        return cls(tuple(terms))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((_field_value(obj, f) == v) == eq for f, eq, v in self.terms)


def make_filter(
    label_selector: str | None, field_selector: str | None, rt: ResourceType
) -> Callable[[Mapping[str, Any]], bool]:
    """One predicate over whole objects for a LIST / deletecollection request."""
    labels = LabelSelector.parse(label_selector)
    fields = FieldSelector.parse(field_selector, rt)
    if labels.empty and not fields.terms:
        return lambda _obj: True

    def predicate(obj: Mapping[str, Any]) -> bool:
        return labels.matches(obj.get("metadata", {}).get("labels")) and fields.matches(obj)

    return predicate
