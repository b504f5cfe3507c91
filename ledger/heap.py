"""Giving memory back to the system after a large fold (issue 16: the service's memory is bounded).

Why: the projector and the applier fold the whole log when they start. What they keep afterwards
(the fleet) is a fraction of what the fold passed through: chunks of 5,000 rows, their decoded
events, the read-model rows of a flush, a snapshot's encoding of the whole fleet. Freed, that memory
stays in the process: the C heap keeps its free pages, and glibc raises its mmap threshold to the
size of the largest block freed so far, so every later snapshot's encoding (tens of MB on a
1,000,000-event log) comes from the heap instead of a mapping of its own, and stays there too.

Decisions:

- **A fixed mmap threshold** (``cap_mmap_threshold``, at a role process's start, cli/roles.py):
  blocks above ``MMAP_THRESHOLD`` get a mapping of their own, returned to the system when freed.
- **A trim once a catch-up fold ends** (``give_back``: a full collection, then ``malloc_trim``),
  run in a worker thread (ctypes releases the interpreter's lock for the call). Not after each
  event: a trim holds the allocator's lock and walks the heap.
- **A trim alone** (``trim``) where no fold ended: the API process once its expensive lane is
  idle (api/lanes.py).
- Elsewhere than glibc they do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from typing import Final

MMAP_THRESHOLD: Final = 128 * 1024
_M_MMAP_THRESHOLD: Final = -3  # glibc's malloc.h


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC: Final = _libc()


def cap_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Keep the mmap threshold at ``size`` bytes for good; False where the C library has no say."""
    return _LIBC is not None and bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, size))


def trim() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def give_back() -> None:
    """Collect the interpreter's cycles, then hand the C heap's free pages back to the system."""
    gc.collect()
    trim()
