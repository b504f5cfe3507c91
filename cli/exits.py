"""Exit codes scripts can branch on, and the one exception that carries a user-facing failure.

A command that cannot do what it was asked raises :class:`Failure` with a code and one line of
text; ``cli.main`` prints ``ledger: <message>`` on stderr and exits with the code. A traceback is
left for what is a bug in the ledger, never for a user's mistake. The table is documented in
docs/cli.md and the README; a test holds them to :class:`Code`.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    OK = 0
    FAILED = 1
    """The command ran and the answer is "no": a broken chain, a failed target, an import refused,
    an error the service could not recover from (5xx)."""
    USAGE = 2
    """The command or its input is wrong: bad flag, invalid name, unreadable file, invalid YAML,
    or a request the service rejected as invalid (400, 413, 415, 422)."""
    TIMED_OUT = 2
    """``wait`` and ``deploy --wait``: the revision was not healthy within ``--timeout`` (the code
    issue 12 asks for; it shares 2 with USAGE, as ``timeout(1)``-style tools share theirs)."""
    UNREACHABLE = 3
    """The service (or database) could not be reached, or stayed unavailable (502, 503, 504,
    429) past the retry budget."""
    NOT_FOUND = 4
    CONFLICT = 5
    """The thing exists already, or changed meanwhile (409, 412): expected version, create-only."""
    DENIED = 6
    """The service wants credentials (401) or refused them (403)."""
    INTERRUPTED = 130


class Failure(Exception):
    """What went wrong, in one line, and the exit code it means."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def for_status(status: int) -> Code:
    """The exit code of an HTTP error status (0: no answer at all)."""
    if status == 0 or status in (429, 502, 503, 504):
        return Code.UNREACHABLE
    if status == 404:
        return Code.NOT_FOUND
    if status in (409, 412):
        return Code.CONFLICT
    if status in (401, 403):
        return Code.DENIED
    if 400 <= status < 500:
        return Code.USAGE
    return Code.FAILED
