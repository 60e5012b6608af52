"""WorkerPool: claim runs from the database queue, execute them, keep their leases."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
from datetime import UTC, datetime

from berth.core.ids import new_id
from berth.core.models import CancelAction, Run, RunStatus
from berth.queue.executor import CancelSlot, Executor
from berth.storage.base import Storage
from berth.storage.runs import Outcome
from berth.streaming.base import Broker

log = logging.getLogger("berth.worker")

#: the longest an idle worker sleeps before looking at the queue unprompted
IDLE_POLL_SECONDS = 1.0
#: cancels remembered for runs this process has not started (yet, or ever)
EARLY_CANCELS = 1024


class WorkerPool:
    """Up to `concurrency` runs at once in this process.

    Args:
        recover_all: requeue every `running` run at start (the embedded database has
            a single server process, so any such run lost its worker).
    """

    def __init__(
        self,
        *,
        storage: Storage,
        broker: Broker,
        executor: Executor,
        concurrency: int,
        heartbeat_interval: float,
        max_attempts: int,
        recover_all: bool,
    ) -> None:
        self.storage = storage
        self.broker = broker
        self.executor = executor
        self.concurrency = concurrency
        self.heartbeat_interval = heartbeat_interval
        self.max_attempts = max_attempts
        self.recover_all = recover_all
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"
        self._active: dict[str, tuple[asyncio.Task[None], CancelSlot]] = {}
        #: slots promised to runs being created right now (see `reserve`)
        self._reserved = 0
        #: cancels that arrived before their run's task was registered here
        self._early_cancels: collections.OrderedDict[str, CancelAction] = collections.OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        #: the queue may hold pending runs (False after a claim found none at all): a
        #: run that ends looks for more work only then, so a steady stream of runs
        #: handed straight to the pool costs no claim per run
        self._backlog = True
        broker.on_cancel(self._on_cancel)

    @property
    def lease_seconds(self) -> float:
        return self.heartbeat_interval * 3

    async def start(self) -> None:
        requeued = await self.storage.runs.recover(
            max_attempts=self.max_attempts, only_expired=not self.recover_all
        )
        if requeued:
            log.info("requeued %d run(s) whose worker was lost", len(requeued))
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="berth-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="berth-heartbeat"),
        ]

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, let running runs finish for `grace` seconds, then requeue the rest."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        running = [task for task, _ in self._active.values()]
        if running:
            _, still = await asyncio.wait(running, timeout=grace)
            for task in still:
                task.cancel()
            for task in still:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _claim_loop(self) -> None:
        while not self._stopping:
            free = self.concurrency - len(self._active) - self._reserved
            claimed: list[Run] = []
            if free > 0:
                try:
                    claimed = await self.storage.runs.claim(
                        worker_id=self.worker_id, limit=free, lease_seconds=self.lease_seconds
                    )
                    if len(claimed) < free:
                        self._backlog = await self.storage.runs.has_pending()
                except Exception:
                    log.exception("claiming runs failed; retrying")
            for run in claimed:
                self._start(run)
            if claimed and len(claimed) == free:
                continue
            # A full pool waits for a freed slot; only one with room asks when the next
            # delayed run is due.
            timeout = await self._idle_timeout() if free > 0 else IDLE_POLL_SECONDS
            await self.broker.wait_for_work(timeout)
            # Woken by new work, or polling: either way the queue is worth a look.
            self._backlog = True

    def _start(self, run: Run) -> None:
        slot = CancelSlot()
        task = asyncio.create_task(self._run(run, slot), name=f"berth-run-{run.run_id}")
        self._active[run.run_id] = (task, slot)

    # A run created in this process while a slot is free is claimed in the same
    # transaction that stores it and handed straight to the pool: no wake-up, no
    # separate claim (`Runs.create`). The slot is reserved first so the pool never
    # runs more than `concurrency` runs.

    def reserve(self) -> bool:
        """Promise a slot to a run about to be created; False when the pool is full."""
        if self._stopping or len(self._active) + self._reserved >= self.concurrency:
            return False
        self._reserved += 1
        return True

    def unreserve(self) -> None:
        self._reserved -= 1

    def adopt(self, run: Run) -> None:
        """Execute `run`, stored as running under this worker's lease in a reserved slot."""
        self._reserved -= 1
        self._start(run)

    async def _idle_timeout(self) -> float:
        try:
            due = await self.storage.runs.next_available_at()
        except Exception:
            # A database hiccup must not end the claim loop: poll again shortly.
            log.exception("reading the queue's next due time failed")
            return IDLE_POLL_SECONDS
        if due is None:
            return IDLE_POLL_SECONDS
        delay = (due - datetime.now(UTC)).total_seconds()
        return max(0.0, min(IDLE_POLL_SECONDS, delay))

    async def _run(self, run: Run, slot: CancelSlot) -> None:
        # From here on a cancel interrupts this coroutine; one that came earlier only
        # left its action in the slot (see `_on_cancel`).
        slot.started = True
        try:
            # A cancel that arrived between the claim and this task's registration.
            slot.action = slot.action or self._early_cancels.pop(run.run_id, None)
            if slot.action is not None:
                raise asyncio.CancelledError
            await self.executor.execute(run, slot)
        except asyncio.CancelledError:
            if slot.action is not None:
                await self.storage.runs.finish(
                    run.run_id,
                    Outcome(
                        status=RunStatus.INTERRUPTED,
                        discard=slot.action == CancelAction.ROLLBACK,
                    ),
                )
                await self.broker.finish(run.run_id, keep=bool(run.kwargs.get("resumable")))
            else:
                await asyncio.shield(
                    self.storage.runs.release(run.run_id, max_attempts=self.max_attempts)
                )
        except Exception:
            log.exception("run %s crashed its worker task; requeueing", run.run_id)
            await self.storage.runs.release(run.run_id, max_attempts=self.max_attempts)
        finally:
            self._active.pop(run.run_id, None)
            # A freed slot (and thread) may let a queued run start.
            if not self._stopping and self._backlog:
                await self.broker.wake_workers()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                flagged = await self.storage.runs.extend_leases(
                    worker_id=self.worker_id,
                    run_ids=list(self._active),
                    lease_seconds=self.lease_seconds,
                )
                for run_id in flagged:
                    action = await self.storage.runs.cancel_action(run_id)
                    if action is not None:
                        await self._on_cancel(run_id, action)
                await self.storage.runs.recover(max_attempts=self.max_attempts, only_expired=True)
            except Exception:
                log.exception("renewing leases failed")

    async def _on_cancel(self, run_id: str, action: CancelAction) -> None:
        entry = self._active.get(run_id)
        if entry is None:
            # Perhaps claimed here but not registered yet; or another process's run
            # (every process hears every cancel), hence the bound.
            self._early_cancels[run_id] = action
            while len(self._early_cancels) > EARLY_CANCELS:
                self._early_cancels.popitem(last=False)
            return
        task, slot = entry
        if slot.action is None:
            slot.action = action
            # Cancelling a task that has not started yet would skip `_run` entirely
            # (no finish, no cleanup): it reads the slot when it starts instead.
            if slot.started:
                task.cancel()
