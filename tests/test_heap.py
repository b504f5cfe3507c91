"""Memory that a large fold passed through goes back to the system (ledger/heap.py, issue 16).

Each check runs in a fresh interpreter, whose C heap is not shared with the suite's: it allocates
and frees blocks the way a catch-up fold does, and reads its own resident set (/proc/self/statm).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import servers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

RESIDENT = """
import os
def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
"""


def run(script: str) -> list[float]:
    result = subprocess.run([sys.executable, "-c", RESIDENT + script], cwd=servers.ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(servers.ROOT)})
    assert result.returncode == 0, result.stderr
    return [float(v) for v in result.stdout.split()]


def test_with_the_threshold_capped_blocks_freed_after_a_larger_one_go_back():
    # Without the cap, freeing the 16 MB block (a snapshot's encoding) raises glibc's mmap threshold
    # to 16 MB (and its trim threshold to 32 MB): the 1 MB blocks after it come from the heap and
    # stay in the process once freed.
    before, held, after = run("""
from ledger import heap
assert heap.cap_mmap_threshold()
big = b"x" * (16 * 2**20); del big
base = resident_mb()
blocks = [b"x" * 2**20 for _ in range(24)]
held = resident_mb()
del blocks
print(base, held, resident_mb())
""")
    assert held - before > 20
    assert after - before < 8


def test_give_back_hands_back_free_pages_below_a_block_still_in_use():
    # Blocks below the threshold come from the heap; one still in use above them (a fleet's object
    # allocated while folding) keeps glibc from trimming the heap's top by itself.
    before, freed, given = run("""
from ledger import heap
heap.cap_mmap_threshold()
base = resident_mb()
blocks = [b"x" * (100 * 1024) for _ in range(640)]
pin = b"y" * (64 * 1024)
del blocks
freed = resident_mb()
heap.give_back()
print(base, freed, resident_mb())
""")
    assert freed - before > 48
    assert given - before < 16
