"""Applier claims (handlers/claims.py) against a real PostgreSQL: rounds woken by new targets take
them without re-reading the members (a scan of the server's whole lock table, a lock per claimed
target) and without walking every candidate, and the rounds on the interval still see members come
and go."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from handlers import claims
from tests.applier_support import eventually


def now(check):
    """``check`` as the awaitable ``eventually`` polls."""
    async def polled():
        return check()
    return polled


def _claims(database_url: str, candidates: set[str], interval: float, walks: list[int] | None = None) -> claims.Claims:
    def every() -> set[str]:
        if walks is not None:
            walks.append(len(candidates))
        return candidates
    return claims.Claims(database_url, interval=interval, connect_timeout=5.0, candidates=every,
                         candidate=candidates.__contains__, busy=lambda _t: False,
                         gained=lambda _t, _h: None, lost=lambda _t: None)


@contextlib.asynccontextmanager
async def running(*members: claims.Claims) -> AsyncIterator[None]:
    """``members`` taking part in claim rounds for as long as the block runs."""
    tasks = [asyncio.create_task(member.run()) for member in members]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_burst_of_new_targets_is_claimed_without_reading_the_members_again(database_url):
    candidates = {f"t{i}" for i in range(10)}
    one = _claims(database_url, candidates, interval=3600.0)  # no interval round during the test
    async with running(one):
        await eventually(now(lambda: len(one.owned) == 10), what="the first targets claimed")
        reads = one.member_reads
        for burst in range(5):
            new = {f"b{burst}-{i}" for i in range(20)}
            candidates.update(new)
            for target in new:
                one.poke(target)
            await eventually(now(lambda n=10 + 20 * (burst + 1): len(one.owned) == n),
                             what="the burst claimed")
        assert one.member_reads == reads


async def test_a_woken_round_looks_only_at_the_targets_it_was_poked_with(database_url):
    # Each woken round walked every candidate: O(fleet) up to twenty times a second while a script
    # registered targets into a fleet of tens of thousands.
    candidates = {f"t{i}" for i in range(50)}
    walks: list[int] = []
    one = _claims(database_url, candidates, interval=3600.0, walks=walks)
    async with running(one):
        await eventually(now(lambda: len(one.owned) == 50), what="the first targets claimed")
        full = len(walks)
        candidates.add("late")
        one.poke("late")
        await eventually(now(lambda: "late" in one.owned), what="a new target claimed")
        candidates.discard("t7")
        one.poke("t7")
        await eventually(now(lambda: "t7" not in one.owned), what="a retired target released")
        assert len(walks) == full
        one.poke()  # no target named: every candidate is looked at
        await eventually(now(lambda: len(walks) == full + 1), what="a round over every candidate")
        assert one.owned == candidates


async def test_members_joining_are_seen_on_the_interval_and_the_targets_shared(database_url):
    candidates = {f"t{i}" for i in range(40)}
    one = _claims(database_url, candidates, interval=0.2)
    two = _claims(database_url, candidates, interval=0.2)
    async with running(one):
        await eventually(now(lambda: len(one.owned) == 40), what="one member claims all")
        async with running(two):
            def shared() -> bool:
                split = len(one.owned), len(two.owned)
                return (sum(split) == 40 and min(split) > 0 and len(one.members) == 2
                        and not one.owned & two.owned)
            await eventually(now(shared), what="the targets shared between two members")
        await eventually(now(lambda: len(one.owned) == 40), what="the leaver's targets taken back")


async def test_a_large_fleet_is_claimed_with_a_bounded_number_of_locks(database_url, db):
    # A lock per target filled PostgreSQL's shared lock table (6,400 entries by default) at a few
    # thousand targets, and then every statement needing a lock failed, appends included.
    candidates = {f"edge-{i:05d}" for i in range(8000)}
    one = _claims(database_url, candidates, interval=3600.0)
    async with running(one):
        await eventually(now(lambda: len(one.owned) == 8000), what="every target claimed")
        held = await db.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                 "AND classid = $1::bigint::oid AND objsubid = 2", claims.TARGET_CLASS)
        assert 0 < held <= claims.BUCKETS
