"""Schema migrations: the numbered files in sql/, each applied once, in order, tracked in a table.

Two processes starting at once serialize on a session advisory lock taken before anything else,
so neither sees a half-applied migration and none is applied twice.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Final

import asyncpg

SQL_DIR: Final = Path(__file__).resolve().parent.parent / "sql"
MIGRATION_LOCK: Final = 0x4C4544474D494752  # "LEDGMIGR"
_NAME: Final = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")


class MigrationError(RuntimeError):
    pass


def available(sql_dir: Path = SQL_DIR) -> list[tuple[int, str, str]]:
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name} does not match NNN_name.sql")
        found.append((int(match.group(1)), path.name, path.read_text()))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a number")
    return found


async def migrate(conn: asyncpg.Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; returns the names applied by this call."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {r["version"]: r for r in rows}
        for version, name, text in available(sql_dir):
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if version in done:
                if done[version]["checksum"] != checksum:
                    raise MigrationError(
                        f"migration {name} changed after it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(text)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    version,
                    name,
                    checksum,
                )
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied_now
