"""How the service's processes log: one configuration, made once at the entry point from the settings.

Decisions:

- **Two formats, one source.** ``json`` (one object per line: ``time``, ``level``, ``logger``,
  ``message`` and every structured field the line carries) for log collectors, through
  python-json-logger's msgspec formatter; ``text`` for people, the same fields appended as
  ``key=value``. ``auto`` (the default) is text when the stream is a terminal and JSON otherwise,
  so a container or a process manager gets JSON without being told.
- **Structured fields are ``extra``.** A line about an event says which one in fields
  (``deployment``, ``target``, ``revision``, ``position``; :func:`fields` leaves out the unknown),
  not only in its prose, so a collector can filter on them.
- **Secrets never leave through a log line.** Whatever a line says, its final text is scrubbed
  before it is written: access-token secrets (``ldg_…``), bearer credentials, the password of a
  URL, and the operator's admin token however it is spelled. The code does not log them to begin
  with; this is the net under it, and tests/test_logs.py holds both to it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
from collections.abc import Iterable
from typing import IO, Any, Final

import msgspec
from pythonjsonlogger import core as jsonlog_core
from pythonjsonlogger import msgspec as jsonlog_msgspec

FORMATS: Final = ("auto", "json", "text")
_RESERVED: Final = frozenset(jsonlog_core.RESERVED_ATTRS) | {"taskName", "message", "asctime"}
_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_REDACTED: Final = "[redacted]"
_OURS: Final = "_ledger_logs"

_SECRETS: Final = re.compile(
    r"(?P<token>ldg_[A-Za-z0-9_\-]{8,})"                       # access-token secrets (ledger/secrets.py)
    r"|(?P<bearer>(?i:bearer)(?: +|%20))[^\s\"',;]+"          # an Authorization header's credential
    r"|(?P<user>://[^/\s@:\"']*):[^/\s@\"']*@"                # user:password@ in a URL
)


def _redact_match(match: re.Match[str]) -> str:
    if match.group("token") is not None:
        return "ldg_" + _REDACTED
    if match.group("bearer") is not None:
        return match.group("bearer") + _REDACTED
    return f"{match.group('user')}:{_REDACTED}@"


class Redactor:
    """Scrubs a formatted line of secrets (see the module docstring); ``extra`` are exact strings
    to hide as well (the operator's admin token)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        spelled: set[str] = set()
        for secret in extra:
            if secret:
                spelled.add(secret)
                spelled.add(msgspec.json.encode(secret).decode()[1:-1])
        self._exact = sorted(spelled, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for secret in self._exact:
            if secret in line:
                line = line.replace(secret, _REDACTED)
        # The scan only when a line could hold one: most lines (the access log's) hold none.
        if "ldg_" in line or "://" in line or "bearer" in line.lower():
            return _SECRETS.sub(_redact_match, line)
        return line


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record carries (what the caller passed as ``extra``)."""
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}


def fields(**given: Any) -> dict[str, Any]:
    """``extra`` for a log call: the given fields, those that are None left out."""
    return {k: v for k, v in given.items() if v is not None}


class JsonFormatter(jsonlog_msgspec.MsgspecFormatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=sorted(_RESERVED),
            timestamp="time",  # RFC 3339, UTC
        )
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        """What the library's ``add_fields`` makes of our configuration (no defaults or static
        fields, nothing kept missing), in the same order, without its per-key checks: it was most
        of the cost of an access-log line, one per request."""
        for name in self._required_fields:
            log_data[self._get_rename(name)] = record.__dict__.get(name)
        log_data.update(message_dict)
        skip, rename = self._skip_fields, self.rename_fields
        for key, value in record.__dict__.items():
            if key not in skip and key[:1] != "_":
                log_data[rename.get(key, key)] = value
        log_data["time"] = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)


class TextFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__(_TEXT_FORMAT)
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        found = extras(record)
        if found:
            tail = " ".join(f"{k}={_text(v)}" for k, v in found.items())
            head, sep, rest = line.partition("\n")  # a traceback stays below the line
            line = f"{head} {tail}{sep}{rest}"
        return self._redact(line)


def _text(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in "\"=" for c in value):
        return value
    return msgspec.json.encode(value, enc_hook=str).decode()


def chosen(log_format: str, stream: IO[str]) -> str:
    """``json`` or ``text``: ``auto`` is text on a terminal, JSON otherwise."""
    if log_format != "auto":
        return log_format
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def formatter(log_format: str, stream: IO[str], secrets: Iterable[str] = ()) -> logging.Formatter:
    redactor = Redactor(secrets)
    return JsonFormatter(redactor) if chosen(log_format, stream) == "json" else TextFormatter(redactor)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a line is written, not as it was when configured."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def configure(log_format: str, level: str, *, secrets: Iterable[str] = (), stream: IO[str] | None = None) -> bool:
    """The root logger writes to ``stream`` (stderr) in ``log_format`` at ``level``; called once,
    at the entry point of a command that runs the service (cli/serve.py, cli/applier.py, …).

    Like ``logging.basicConfig``, it leaves a root logger that something else configured (a process
    that runs the command in-process, such as a test runner) alone and says so (False); a
    configuration of its own it replaces."""
    root = logging.getLogger()
    if any(not getattr(h, _OURS, False) for h in root.handlers):
        return False
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    setattr(handler, _OURS, True)
    handler.setFormatter(formatter(log_format, stream if stream is not None else sys.stderr, secrets))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # No line says where in the source it was logged, or which thread or process logged it: not
    # computing those for every record (the logging HOWTO's "Optimization") saves a frame walk per
    # line, and the access log writes one per request.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    return True
