"""Generated event ids: version 7, time-ordered (ledger/ids.py)."""

from __future__ import annotations

import time
import uuid

from ledger import ids


def test_generated_ids_are_version_7_and_ordered_by_time():
    before = int(time.time() * 1000)
    first = ids.generate(3)
    time.sleep(0.002)
    later = ids.new()
    after = int(time.time() * 1000)
    assert len({*first, later}) == 4
    for u in [*first, later]:
        assert u.version == 7 and u.variant == uuid.RFC_4122
        assert before <= u.int >> 80 <= after  # the Unix time in milliseconds, in the top 48 bits
    assert max(first) < later  # a later millisecond sorts after
