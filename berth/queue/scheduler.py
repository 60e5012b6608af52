"""The cron scheduler: every few seconds, claim the due crons and create their runs.

Every server process runs one; the claim in the database (`CronStore.claim_due`)
makes each fire happen in exactly one of them. The first tick runs at start, so a
fire missed while no server was up is made then, once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime

from berth.core import crons, errors
from berth.core.runs import Runs
from berth.queue.periodic import Periodic
from berth.storage.base import Storage

log = logging.getLogger("berth.crons")

#: seconds between ticks unless `BERTH_CRON_INTERVAL` says otherwise (contract §8)
DEFAULT_INTERVAL = 5.0


def interval_from_env(env: Mapping[str, str] | None = None) -> float:
    """`BERTH_CRON_INTERVAL` in seconds (tests set it well below a second)."""
    value = (os.environ if env is None else env).get("BERTH_CRON_INTERVAL", "")
    return float(value) if value else DEFAULT_INTERVAL


class CronScheduler(Periodic):
    """Fires due crons as runs, through `Runs.create` like any other run.

    Args:
        interval: seconds between ticks; a fire is made at most this late.
    """

    name = "cron-scheduler"

    def __init__(self, *, storage: Storage, runs: Runs, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__(interval=interval)
        self.storage = storage
        self.runs = runs

    async def run_once(self) -> None:
        await self.tick()

    async def tick(self, now: datetime | None = None) -> int:
        """Claim the crons due at `now` and create one run for each; return how many ran."""
        now = now or datetime.now(UTC)
        claimed = await self.storage.crons.claim_due(now, crons.next_fire_of)
        made = 0
        for cron in claimed:
            # Already advanced: a fire that fails is lost, never retried in a loop
            # that would starve the other crons.
            try:
                run = await crons.fire(self.runs, cron)
            except errors.BerthError as exc:
                log.warning(
                    "cron %s: fire at %s made no run: %s",
                    cron.cron_id,
                    cron.next_run_date,
                    exc.message,
                )
            except Exception:
                log.exception("cron %s: fire at %s failed", cron.cron_id, cron.next_run_date)
            else:
                made += 1
                log.info("cron %s: fired run %s", cron.cron_id, run.run_id)
        return made
