"""Periodic: a background task that does one round of work every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("berth.periodic")


class Periodic:
    """Calls `run_once` every `interval` seconds from `start` to `stop`.

    A failing round is logged and the next one comes on time: the database may be
    briefly unreachable, and one bad round must not end the loop.

    Args:
        first_delay: wait one interval before the first round.
    """

    #: names the task and the log lines
    name = "periodic"

    def __init__(self, *, interval: float, first_delay: bool = False) -> None:
        self.interval = interval
        self.first_delay = first_delay
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"berth-{self.name}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _loop(self) -> None:
        if self.first_delay:
            await asyncio.sleep(self.interval)
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("%s failed; trying again in %.1f s", self.name, self.interval)
            await asyncio.sleep(self.interval)
