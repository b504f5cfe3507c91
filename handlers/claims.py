"""Which targets this applier process may apply to: advisory locks shared out by rendezvous hashing.

Exclusivity: a target is applied only by the process holding its PostgreSQL session advisory lock
of its bucket (``pg_try_advisory_lock(TARGET_CLASS, bucket)``), all held on one dedicated connection.
When the process dies, its connection closes and PostgreSQL releases every lock at once: another
process takes the targets over on its next round (every ``claim_interval`` seconds). If our own
connection drops, every claim is dropped at once and in-flight work is cancelled before anything
else is applied (termination listener); claims are re-taken after reconnecting.

Buckets: a target's name hashes to one of ``BUCKETS`` buckets, and the lock is the bucket's, so the
applier processes together hold at most ``BUCKETS`` target locks whatever the fleet's size. With a
lock per target, a few thousand targets filled PostgreSQL's shared lock table
(``max_locks_per_transaction`` x ``max_connections``: 6,400 entries by default) and from then on
every statement that needed a lock, in every process, failed with "out of shared memory".
Ownership is decided per bucket, so a bucket's targets always belong to one member.

Sharing: each process also holds a *member* lock (``MEMBER_CLASS``, a random id); the live members
are read from ``pg_locks``. A target belongs to the member with the highest ``hash(member,
target)`` (rendezvous hashing, over its bucket), so members agree on a split without talking to each other, and a
member joining or leaving moves only its share. A process releases targets that now belong to
someone else (once they are idle) and takes those that belong to it. A process joins only once
it has folded the log up to its head, so it never claims what it cannot yet judge.

After gaining a target, the applier waits until its fold reaches the log's head as read after the
lock was taken, so outcomes the previous owner recorded are known before anything is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any, Final

import asyncpg

from ledger import db, dbfaults, errors

log = logging.getLogger(__name__)

TARGET_CLASS: Final = 0x4C44_4154  # "LDAT"
MEMBER_CLASS: Final = 0x4C44_414D  # "LDAM"
# A round woken by targets coming or going waits this long first, so a burst of registrations
# (thousands a second from a script) is claimed in a few rounds, not one round per registration.
ROUND_GAP: Final = 0.05

_MEMBERS: Final = """
SELECT objid::bigint AS member FROM pg_locks
 WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objsubid = 2 AND granted
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


# Enough buckets for an even split among many applier processes; few enough to stay a small part of
# PostgreSQL's shared lock table.
BUCKETS: Final = 1024


def key(target: str) -> int:
    """A target's bucket, which is also the key of the lock that claims it."""
    return int.from_bytes(hashlib.blake2b(target.encode(), digest_size=4).digest(), "big") % BUCKETS


def _score(member: int, bucket: int) -> bytes:
    return hashlib.blake2b(f"{member}/{bucket}".encode(), digest_size=8).digest()


def owner(target: str, members: Iterable[int]) -> int | None:
    """The member a target belongs to (rendezvous hashing of its bucket), or None without members."""
    bucket = key(target)
    return max(members, key=lambda m: _score(m, bucket), default=None)


class Claims:
    def __init__(
        self,
        dsn: str,
        *,
        interval: float,
        connect_timeout: float,
        candidates: Callable[[], Iterable[str]],
        candidate: Callable[[str], bool],
        busy: Callable[[str], bool],
        gained: Callable[[set[str], int], None],
        lost: Callable[[set[str]], None],
    ) -> None:
        self._dsn = dsn
        self._interval = interval
        self._timeout = connect_timeout
        self._candidates = candidates
        self._candidate = candidate
        self._busy = busy
        self._gained = gained
        self._lost = lost
        self._wake = asyncio.Event()
        self.owned: set[str] = set()
        self._keys: dict[int, set[str]] = {}  # lock key held -> owned targets under it
        self.member: int | None = None
        self.members: list[int] = []
        # Each candidate's owner among ``_owners_among``. A round on the interval walks every
        # candidate (``candidates``) but hashes only those new since the last one; a round woken by
        # targets coming or going looks only at the targets it was poked with (``_dirty``). Walking
        # the whole fleet on every woken round was O(fleet) twenty times a second while a script
        # registered targets. A change of members hashes all anew.
        self._owners: dict[str, int | None] = {}
        self._owners_among: list[int] = []
        self._mine: set[str] = set()  # the candidates that belong to this member
        self._dirty: set[str] = set()
        self._full = True
        self.member_reads = 0
        self.full_rounds = 0

    def owns(self, target: str) -> bool:
        return target in self.owned

    def poke(self, target: str | None = None) -> None:
        """Run a claim round soon: ``target`` came, went or changed (None: look at every candidate)."""
        if target is None:
            self._full = True
        else:
            self._dirty.add(target)
        self._wake.set()

    def _drop_all(self) -> None:
        owned, self.owned, self._keys = self.owned, set(), {}
        self.member = None
        self.members = []
        if owned:
            self._lost(owned)

    async def run(self) -> None:
        delay = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await db.connect(self._dsn, timeout=self._timeout)
                conn.add_termination_listener(lambda _conn: self._drop_all())
                await self._join(conn)
                delay = 0.1
                poked = False
                while True:
                    await self._round(conn, read_members=not poked)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._interval)
                    poked = self._wake.is_set()
                    if poked:
                        await asyncio.sleep(ROUND_GAP)
                    self._wake.clear()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, errors.StoreUnavailable):
                    db.count_error(exc)  # a statement of a round; a failed connect is counted by db
                if dbfaults.is_unavailable(exc):
                    log.warning("applier claims connection lost: %r", exc)
                else:
                    log.exception("applier claims failed")
            finally:
                self._drop_all()
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 5.0)

    async def _join(self, conn: asyncpg.Connection) -> None:
        while True:
            member = random.randint(1, 2**31 - 1)
            if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", MEMBER_CLASS, member,
                                   timeout=self._timeout):
                self.member = member
                return

    async def _round(self, conn: asyncpg.Connection, *, read_members: bool = True) -> None:
        """Share out the candidates. A round woken by targets coming or going (``read_members``
        false) keeps the members the last round read: reading them scans PostgreSQL's whole lock
        table, which holds a lock per claimed target, so under a burst of registrations it was most
        of the applier's database CPU. A member joining or leaving is seen by the next round on the
        interval, as before."""
        if read_members or not self.members:
            rows = await conn.fetch(_MEMBERS, MEMBER_CLASS, timeout=self._timeout)
            self.member_reads += 1
            self.members = sorted({int(r["member"]) for r in rows} | {self.member or 0})
        if self.members != self._owners_among:
            self._owners, self._owners_among, self._mine = {}, list(self.members), set()
            self._full = True
        if read_members or self._full:
            release, wanted = self._walk_all()
        else:
            release, wanted = self._walk(self._dirty)
        self._dirty = set()
        if release:
            await self._release(conn, release)
        if not wanted:
            return
        new_keys = sorted({key(t) for t in wanted} - set(self._keys))
        taken: set[int] = set()
        if new_keys:
            got = await conn.fetch(
                "SELECT k, pg_try_advisory_lock($1, k) AS ok FROM unnest($2::int4[]) AS k",
                TARGET_CLASS, new_keys, timeout=self._timeout)
            taken = {int(r["k"]) for r in got if r["ok"]}
        gained = {t for t in wanted if key(t) in taken or key(t) in self._keys}
        if not gained:
            return
        for target in gained:
            self._keys.setdefault(key(target), set()).add(target)
        self.owned |= gained
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events", timeout=self._timeout)
        self._gained(gained, int(head))

    def _walk_all(self) -> tuple[set[str], set[str]]:
        """Every candidate: the targets to release (once idle) and those to take."""
        self._full = False
        self.full_rounds += 1
        current = set(self._candidates())
        known = self._owners
        for target in known.keys() - current:
            del known[target]
            self._mine.discard(target)
        self._place(current - known.keys())
        mine = self._mine
        return {t for t in self.owned - mine if not self._busy(t)}, mine - self.owned

    def _walk(self, dirty: set[str]) -> tuple[set[str], set[str]]:
        """Only ``dirty``: the targets a woken round was poked with."""
        known = self._owners
        for target in dirty:
            if not self._candidate(target) and target in known:
                del known[target]
                self._mine.discard(target)
        self._place({t for t in dirty if t not in known and self._candidate(t)})
        mine = self._mine
        return ({t for t in dirty if t in self.owned and t not in mine and not self._busy(t)},
                {t for t in dirty if t in mine and t not in self.owned})

    def _place(self, targets: Iterable[str]) -> None:
        known, member = self._owners, self.member
        for target in targets:
            known[target] = found = owner(target, self.members)
            if found == member:
                self._mine.add(target)

    async def _release(self, conn: asyncpg.Connection, targets: set[str]) -> None:
        self.owned -= targets
        freed: list[int] = []
        for target in targets:
            k = key(target)
            holders = self._keys.get(k)
            if holders is None:
                continue
            holders.discard(target)
            if not holders:
                del self._keys[k]
                freed.append(k)
        self._lost(targets)
        if freed:
            await conn.execute("SELECT pg_advisory_unlock($1, k) FROM unnest($2::int4[]) AS k",
                               TARGET_CLASS, freed, timeout=self._timeout)

    def snapshot(self) -> dict[str, Any]:
        return {"member": self.member, "members": self.members, "owned": len(self.owned)}
