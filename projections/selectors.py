"""Kubernetes label selectors: parsed once, matched many times.

Fleet targets are chosen with selectors people already type into
``kubectl -l``, so syntax and matching follow Kubernetes' ``labels.Parse``
exactly instead of a friendlier dialect: ``=``, ``==``, ``!=``, ``in``,
``notin``, bare ``key``, ``!key``, and also ``>``/``<`` (integer comparison),
including Kubernetes' quirks around empty values in ``in (...)``.

Decisions:

- Parsing stops at the leftmost offending token and reports its 0-based
  offset. Values are validated as they are read, so an invalid value wins
  over a later syntax error (Kubernetes reports the syntax error first).
  Input that ends inside ``( ... )`` reports ``expected ")"``.
- ``str(selector)`` is canonical: requirements sorted by key (then by text,
  where Kubernetes leaves the order unspecified), exact duplicates dropped,
  ``in``/``notin`` values sorted and de-duplicated, ``==`` written as ``=``.
  Selectors are compared by that normal form.
- A NUL character is rejected like any other invalid character (Kubernetes
  silently ends the selector there).
- Label-key, label-value and DNS-name validation live here because selectors
  need them first; manifests reuse them. So does :class:`InvalidInput`, the
  base of every input error in ``projections``: ``field`` is a JSON path to
  the offending field and ``message`` says why, enough for problem+json.
  Messages quote offending text cut short (``shown``): a 900 KB label value is refused without
  being echoed back whole.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ledger import jsontext

LABEL_NAME_MAX_LENGTH: Final = 63
LABEL_VALUE_MAX_LENGTH: Final = 63
DNS_SUBDOMAIN_MAX_LENGTH: Final = 253
DNS_LABEL_MAX_LENGTH: Final = 63
LABEL_KEY_MAX_LENGTH: Final = DNS_SUBDOMAIN_MAX_LENGTH + 1 + LABEL_NAME_MAX_LENGTH
_SHOWN_MAX_LENGTH: Final = 80

_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INT64 = re.compile(r"[+-]?[0-9]+")

_NAME_CHARS = (
    "consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS_CHARS = (
    "consist of lowercase alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)


class InvalidInput(ValueError):
    """Input rejected; ``field`` is a JSON path to it, ``message`` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SelectorError(InvalidInput):
    """A selector string that Kubernetes would not accept."""

    def __init__(self, message: str, position: int, *, field: str = "selector") -> None:
        super().__init__(field, message)
        self.position = position
        self.args = (message, position)

    def __str__(self) -> str:
        return f"{self.message} at position {self.position}"


class LabelError(InvalidInput):
    """A label key or value that Kubernetes would not accept."""

    def __init__(self, key: str, message: str, *, field: str | None = None) -> None:
        super().__init__(field_path("labels", key) if field is None else field, message)
        self.key = key
        self.args = (key, message)


field_path = jsontext.field_path


def shown(text: str) -> str:
    """``text`` quoted for a message, cut short: an error never echoes a whole hostile value."""
    if len(text) > _SHOWN_MAX_LENGTH:
        return f'"{text[:_SHOWN_MAX_LENGTH]}…" ({len(text)} characters)'
    return f'"{text}"'


def dns_subdomain_error(value: str) -> str | None:
    """Why ``value`` is not an RFC 1123 subdomain (a name like ``my-app.example``), or None."""
    if len(value) > DNS_SUBDOMAIN_MAX_LENGTH:
        return f"must be no more than {DNS_SUBDOMAIN_MAX_LENGTH} characters"
    if not _DNS_SUBDOMAIN.fullmatch(value):
        return f"must be a lowercase RFC 1123 subdomain: dot-separated parts that {_DNS_CHARS}"
    return None


def dns_label_error(value: str) -> str | None:
    """Why ``value`` is not an RFC 1123 label (a namespace name), or None."""
    if len(value) > DNS_LABEL_MAX_LENGTH:
        return f"must be no more than {DNS_LABEL_MAX_LENGTH} characters"
    if not _DNS_LABEL.fullmatch(value):
        return f"must be a lowercase RFC 1123 label: it must {_DNS_CHARS}"
    return None


def label_key_error(key: str) -> str | None:
    """Why ``key`` is not a valid label key (``[prefix/]name``), or None."""
    parts = key.split("/")
    if len(parts) > 2:
        return "must be a name with an optional DNS subdomain prefix and one '/' (e.g. 'example.com/MyName')"
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return "prefix part must not be empty"
        problem = dns_subdomain_error(prefix)
        if problem is not None:
            return f"prefix part {problem}"
    name = parts[-1]
    if not name:
        return "name part must not be empty"
    if len(name) > LABEL_NAME_MAX_LENGTH:
        return f"name part must be no more than {LABEL_NAME_MAX_LENGTH} characters"
    if not _QUALIFIED_NAME.fullmatch(name):
        return f"name part must {_NAME_CHARS}"
    return None


def label_value_error(value: str) -> str | None:
    """Why ``value`` is not a valid label value (possibly empty), or None."""
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        return f"must be no more than {LABEL_VALUE_MAX_LENGTH} characters"
    if value and not _QUALIFIED_NAME.fullmatch(value):
        return f"must be empty or {_NAME_CHARS}"
    return None


def validate_labels(labels: Mapping[str, str], *, field: str = "labels") -> None:
    """Raise :class:`LabelError` for the first invalid key or value of ``labels``."""
    for key, value in labels.items():
        if not isinstance(key, str):
            raise LabelError(str(key), "label keys must be strings", field=field_path(field, str(key)))
        # A key too long to be one is not echoed into the path: the labels object is named instead.
        path = field_path(field, key) if len(key) <= LABEL_KEY_MAX_LENGTH else field
        problem = label_key_error(key)
        if problem is not None:
            raise LabelError(key, f"invalid label key {shown(key)}: {problem}", field=path)
        if not isinstance(value, str):
            raise LabelError(key, "label values must be strings (quote numbers and booleans)", field=path)
        problem = label_value_error(value)
        if problem is not None:
            raise LabelError(key, f"invalid label value {shown(value)}: {problem}", field=path)


def _go_int64(text: str) -> int | None:
    """``text`` as Go's ``strconv.ParseInt(text, 10, 64)`` reads it, or None."""
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


class Operator(enum.StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_MATCH_WHEN_ABSENT: Final = frozenset({Operator.NOT_EQUALS, Operator.NOT_IN, Operator.DOES_NOT_EXIST})
_INFIX: Final = {
    Operator.EQUALS: "=",
    Operator.NOT_EQUALS: "!=",
    Operator.GREATER_THAN: ">",
    Operator.LESS_THAN: "<",
}


@dataclass(frozen=True, slots=True)
class Requirement:
    """One comma-separated term of a selector, as produced by :func:`parse`."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.key not in labels:
            return self.operator in _MATCH_WHEN_ABSENT
        value = labels[self.key]
        match self.operator:
            case Operator.EXISTS:
                return True
            case Operator.DOES_NOT_EXIST:
                return False
            case Operator.EQUALS | Operator.IN:
                return value in self.values
            case Operator.NOT_EQUALS | Operator.NOT_IN:
                return value not in self.values
            case Operator.GREATER_THAN | Operator.LESS_THAN:
                actual = _go_int64(value)
                wanted = _go_int64(self.values[0]) if len(self.values) == 1 else None
                if actual is None or wanted is None:
                    return False
                return actual > wanted if self.operator is Operator.GREATER_THAN else actual < wanted
        return False

    def __str__(self) -> str:
        match self.operator:
            case Operator.EXISTS:
                return self.key
            case Operator.DOES_NOT_EXIST:
                return f"!{self.key}"
            case Operator.IN | Operator.NOT_IN:
                return f"{self.key} {self.operator.value} ({','.join(self.values)})"
        return f"{self.key}{_INFIX[self.operator]}{''.join(self.values)}"


@dataclass(frozen=True, slots=True)
class Selector:
    """Requirements that must all hold; no requirements selects everything."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


class _T(enum.Enum):
    IDENTIFIER = enum.auto()
    IN = enum.auto()
    NOT_IN = enum.auto()
    EQUALS = enum.auto()
    DOUBLE_EQUALS = enum.auto()
    NOT_EQUALS = enum.auto()
    GREATER_THAN = enum.auto()
    LESS_THAN = enum.auto()
    BANG = enum.auto()
    OPEN = enum.auto()
    CLOSE = enum.auto()
    COMMA = enum.auto()
    END = enum.auto()


_WHITESPACE: Final = frozenset(" \t\r\n")
_SYMBOLS: Final = {
    "==": _T.DOUBLE_EQUALS,
    "!=": _T.NOT_EQUALS,
    "=": _T.EQUALS,
    "!": _T.BANG,
    "(": _T.OPEN,
    ")": _T.CLOSE,
    ",": _T.COMMA,
    ">": _T.GREATER_THAN,
    "<": _T.LESS_THAN,
}
_SPECIAL: Final = frozenset("=!(),<>")
_KEYWORDS: Final = {"in": _T.IN, "notin": _T.NOT_IN}
_BINARY: Final = {
    _T.EQUALS: Operator.EQUALS,
    _T.DOUBLE_EQUALS: Operator.EQUALS,
    _T.NOT_EQUALS: Operator.NOT_EQUALS,
    _T.IN: Operator.IN,
    _T.NOT_IN: Operator.NOT_IN,
    _T.GREATER_THAN: Operator.GREATER_THAN,
    _T.LESS_THAN: Operator.LESS_THAN,
}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _T
    text: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, end = 0, len(text)
    while True:
        while i < end and text[i] in _WHITESPACE:
            i += 1
        if i == end:
            tokens.append(_Token(_T.END, "", end))
            return tokens
        if text[i] in _SPECIAL:
            symbol = text[i : i + 2] if text[i : i + 2] in _SYMBOLS else text[i]
            tokens.append(_Token(_SYMBOLS[symbol], symbol, i))
            i += len(symbol)
            continue
        start = i
        while i < end and text[i] not in _WHITESPACE and text[i] not in _SPECIAL:
            i += 1
        word = text[start:i]
        tokens.append(_Token(_KEYWORDS.get(word, _T.IDENTIFIER), word, start))


class _Parser:
    """Kubernetes' recursive-descent selector parser, token for token."""

    def __init__(self, text: str, field: str) -> None:
        self._tokens = _tokenize(text)
        self._index = 0
        self._field = field

    def _peek(self, *, as_value: bool = True) -> tuple[_T, _Token]:
        token = self._tokens[self._index]
        kind = token.kind
        if as_value and kind in (_T.IN, _T.NOT_IN):
            kind = _T.IDENTIFIER
        return kind, token

    def _next(self, *, as_value: bool = True) -> tuple[_T, _Token]:
        kind, token = self._peek(as_value=as_value)
        if kind is not _T.END:
            self._index += 1
        return kind, token

    def _error(self, message: str, token: _Token) -> SelectorError:
        return SelectorError(message, token.position, field=self._field)

    def _unclosed(self, token: _Token, message: str) -> SelectorError:
        return self._error('expected ")"' if token.kind is _T.END else message, token)

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        kind, token = self._peek()
        if kind is _T.END:
            return requirements
        while True:
            if kind not in (_T.IDENTIFIER, _T.BANG):
                raise self._error('expected label key or "!"', token)
            requirements.append(self._requirement())
            kind, token = self._next()
            if kind is _T.END:
                return requirements
            if kind is not _T.COMMA:
                raise self._error('expected "," or end of selector', token)
            kind, token = self._peek()

    def _requirement(self) -> Requirement:
        kind, token = self._next()
        negated = kind is _T.BANG
        if negated:
            kind, token = self._next()
        if kind is not _T.IDENTIFIER:
            raise self._error("expected label key", token)
        key = token.text
        problem = label_key_error(key)
        if problem is not None:
            raise self._error(f"invalid label key {shown(key)}: {problem}", token)
        if negated:
            return Requirement(key, Operator.DOES_NOT_EXIST)
        if self._peek()[0] in (_T.END, _T.COMMA):
            return Requirement(key, Operator.EXISTS)
        kind, token = self._next(as_value=False)
        operator = _BINARY.get(kind)
        if operator is None:
            raise self._error('expected operator ("=", "==", "!=", "in", "notin", ">" or "<")', token)
        if operator in (Operator.IN, Operator.NOT_IN):
            return Requirement(key, operator, tuple(sorted(self._value_set())))
        value_token = self._exact_value()
        if operator in (Operator.GREATER_THAN, Operator.LESS_THAN) and _go_int64(value_token.text) is None:
            raise self._error(
                f'invalid value {shown(value_token.text)} for "{token.text}": must be an integer', value_token
            )
        return Requirement(key, operator, (value_token.text,))

    def _value(self, token: _Token) -> str:
        problem = label_value_error(token.text)
        if problem is not None:
            raise self._error(f"invalid label value {shown(token.text)}: {problem}", token)
        return token.text

    def _exact_value(self) -> _Token:
        kind, token = self._peek()
        if kind in (_T.END, _T.COMMA):
            return _Token(_T.IDENTIFIER, "", token.position)
        kind, token = self._next()
        if kind is not _T.IDENTIFIER:
            raise self._error("expected label value", token)
        self._value(token)
        return token

    def _value_set(self) -> set[str]:
        kind, token = self._next()
        if kind is not _T.OPEN:
            raise self._error('expected "("', token)
        kind, token = self._peek()
        if kind is _T.CLOSE:
            self._next()
            return {""}
        if kind not in (_T.IDENTIFIER, _T.COMMA):
            raise self._unclosed(token, 'expected label value, "," or ")"')
        values = self._value_list()
        self._next()
        return values

    def _value_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            kind, token = self._next()
            if kind is _T.IDENTIFIER:
                values.add(self._value(token))
                kind, token = self._peek()
                if kind is _T.CLOSE:
                    return values
                if kind is not _T.COMMA:
                    raise self._unclosed(token, 'expected "," or ")"')
            elif kind is _T.COMMA:
                if not values:
                    values.add("")
                kind, token = self._peek()
                if kind is _T.CLOSE:
                    values.add("")
                    return values
                if kind is _T.COMMA:
                    self._next()
                    values.add("")
            else:
                raise self._unclosed(token, 'expected label value or ","')


def parse(text: str, *, field: str = "selector") -> Selector:
    """Parse a label selector string; raise :class:`SelectorError` if Kubernetes would.

    ``field`` names the input in errors (e.g. ``"target.selector"``).
    """
    requirements = _Parser(text, field).parse()
    unique = {str(requirement): requirement for requirement in requirements}
    ordered = sorted(unique.items(), key=lambda item: (item[1].key, item[0]))
    return Selector(tuple(requirement for _, requirement in ordered))
