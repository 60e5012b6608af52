"""The thread TTL sweeper: every minute, apply the strategy of threads idle past their TTL.

Every server process runs one; rows are locked (`skip_locked`) while swept, so
processes sharing a database do not sweep the same thread twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime

from berth.queue.periodic import Periodic
from berth.storage.base import Storage

log = logging.getLogger("berth.sweeper")

#: seconds between sweeps unless `BERTH_THREAD_TTL_SWEEP` says otherwise
DEFAULT_INTERVAL = 60.0
#: threads handled per transaction; a sweep keeps going while batches come back full
BATCH = 100


def interval_from_env(env: Mapping[str, str] | None = None) -> float:
    """`BERTH_THREAD_TTL_SWEEP` in seconds (tests set it well below a second)."""
    value = (os.environ if env is None else env).get("BERTH_THREAD_TTL_SWEEP", "")
    return float(value) if value else DEFAULT_INTERVAL


class ThreadSweeper(Periodic):
    """Deletes (or prunes) threads whose TTL ran out."""

    name = "thread-sweeper"

    def __init__(self, *, storage: Storage, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__(interval=interval, first_delay=True)
        self.storage = storage

    async def run_once(self) -> None:
        swept = await self.sweep()
        if swept:
            log.info("thread TTL sweep: %d thread(s) expired", swept)

    async def sweep(self, now: datetime | None = None) -> int:
        """Sweep every thread expired at `now`; return how many were deleted or pruned."""
        now = now or datetime.now(UTC)
        total = 0
        # Bounded: a TTL shorter than the clock's resolution re-arms into the window.
        for _ in range(100):
            # Rows looked at but postponed (busy, or active since) leave the window too,
            # so a full batch always means there may be more.
            swept, seen = await self.storage.threads.sweep_expired(now, limit=BATCH)
            total += swept
            if seen < BATCH:
                break
        return total
