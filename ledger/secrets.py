"""Access-token secrets: how they are made, what is stored of them, how they are compared.

A secret is ``ldg_`` followed by 43 URL-safe characters: 256 bits from the operating system's
CSPRNG (``secrets.token_urlsafe(32)``); the prefix lets secret scanners and people recognise one.

Only its SHA-256 is kept. A slow password hash (bcrypt, scrypt, Argon2) exists to make guessing a
*low-entropy* secret from its hash expensive; a 256-bit random secret cannot be guessed at any cost,
so one fast hash is as safe and keeps the check per request in microseconds. For the same reason
the hash may be stored in the (exportable) log: it reveals nothing usable.

Every comparison of a presented secret's hash with a stored one goes through :func:`same`
(``hmac.compare_digest``), so its time does not depend on how many leading bytes agree.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

PREFIX: Final = "ldg_"
ENTROPY_BYTES: Final = 32
FINGERPRINT_CHARS: Final = 12
# An operator-supplied admin token (LEDGER_ADMIN_TOKEN) must be at least this long, so that a short
# password never becomes the admin credential.
MIN_OPERATOR_LENGTH: Final = 32


def new() -> str:
    return PREFIX + secrets.token_urlsafe(ENTROPY_BYTES)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def fingerprint(digest_: bytes) -> str:
    """A short, public way to tell tokens apart (a prefix of the hash, never of the secret)."""
    return digest_.hex()[:FINGERPRINT_CHARS]


def same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
