"""The one way to the database (ledger/db.py): real failures of a real server become
StoreUnavailable with the driver's error chained; everything else passes through unchanged; and
no module outside ledger/db.py opens a connection or takes one from a pool by itself."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import asyncpg
import pytest

from ledger import db as ledger_db
from ledger import errors, pgembed

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("api", "handlers", "projections", "ledger", "cli")


async def test_a_refused_connection_is_unavailable_with_its_cause():
    with pytest.raises(errors.StoreUnavailable) as caught:
        await ledger_db.connect(f"postgresql://postgres@127.0.0.1:{pgembed.free_port()}/postgres", timeout=2)
    assert isinstance(caught.value.__cause__, OSError)


async def test_a_statement_past_its_timeout_is_unavailable_and_the_connection_is_not_reused(database_url):
    pool = await ledger_db.create_pool(database_url, max_size=1, timeout=0.3)
    try:
        with pytest.raises(errors.StoreUnavailable) as caught:
            async with ledger_db.pooled(pool, timeout=0.3) as conn:
                await conn.execute("SELECT pg_sleep(5)")
        assert isinstance(caught.value.__cause__, TimeoutError)
        async with ledger_db.pooled(pool, timeout=2) as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_a_pool_with_no_free_connection_is_unavailable_after_the_timeout(database_url):
    pool = await ledger_db.create_pool(database_url, max_size=1, timeout=0.2)
    try:
        async with ledger_db.pooled(pool, timeout=2):
            with pytest.raises(errors.StoreUnavailable) as caught:
                async with ledger_db.pooled(pool, timeout=0.2):
                    pass
        assert isinstance(caught.value.__cause__, TimeoutError)
    finally:
        await pool.close()


async def test_an_administrator_shutdown_of_the_connection_is_unavailable(database_url, db):
    pool = await ledger_db.create_pool(database_url, max_size=1, timeout=2)
    try:
        with pytest.raises(errors.StoreUnavailable) as caught:
            async with ledger_db.pooled(pool, timeout=2) as conn:
                pid = await conn.fetchval("SELECT pg_backend_pid()")
                await db.execute("SELECT pg_terminate_backend($1)", pid)
                await asyncio.sleep(0.2)
                await conn.fetchval("SELECT 1")
        cause = caught.value.__cause__
        assert isinstance(cause, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)), repr(cause)
        async with ledger_db.pooled(pool, timeout=2) as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_too_many_connections_is_unavailable(database_url, db):
    role = "r_" + uuid.uuid4().hex[:12]
    await db.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
    try:
        url = re.sub(r"//[^@/]*@", f"//{role}@", database_url)
        with pytest.raises(errors.StoreUnavailable) as caught:
            await ledger_db.connect(url, timeout=2)
        assert isinstance(caught.value.__cause__, asyncpg.TooManyConnectionsError)
    finally:
        await db.execute(f"DROP ROLE {role}")


async def test_errors_that_are_not_outages_pass_through_unchanged(database_url):
    pool = await ledger_db.create_pool(database_url, max_size=1, timeout=2)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            async with ledger_db.pooled(pool, timeout=2) as conn:
                await conn.fetch("SELECT * FROM no_such_table")
        with pytest.raises(KeyError):
            async with ledger_db.pooled(pool, timeout=2):
                raise KeyError("mine")
    finally:
        await pool.close()


async def test_a_deadline_that_passes_is_unavailable():
    with pytest.raises(errors.StoreUnavailable) as caught:
        async with ledger_db.deadline(asyncio.get_running_loop().time() + 0.05):
            await asyncio.Event().wait()
    assert isinstance(caught.value.__cause__, TimeoutError)


def test_only_ledger_db_opens_or_acquires_connections():
    direct = re.compile(r"asyncpg\.(connect|create_pool)\(|\bpool\.acquire\(|\._pool\.acquire\(|\.pool\.acquire\(")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for layer in LAYERS
        for path in sorted((ROOT / layer).rglob("*.py"))
        if path != ROOT / "ledger" / "db.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line)
    ]
    assert not found, "connections taken around ledger/db.py:\n" + "\n".join(found)
