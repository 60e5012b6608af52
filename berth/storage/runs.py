"""Runs: the durable queue. Every state change of a run is one transaction here."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from berth.core import errors
from berth.core.models import (
    CancelAction,
    Claim,
    MultitaskStrategy,
    Run,
    RunStatus,
    ThreadStatus,
)
from berth.storage import checkpoints, schema, webhooks
from berth.storage import run_sql as sql
from berth.storage.database import Database
from berth.storage.threads import new_thread_values

_R = schema.runs
_T = schema.threads

# `RunStore.list` shadows the builtin inside the class body.
RunList = list[Run]
IdList = list[str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Admission:
    """What storing a new run decided."""

    run: Run
    #: in-flight runs the new run's strategy asks to stop (they are running elsewhere)
    to_cancel: IdList
    #: pending runs the new run's strategy settled here (interrupted or deleted)
    settled: IdList
    cancel_action: CancelAction | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """How a run ended, and what the thread should show afterwards."""

    status: RunStatus
    error: dict[str, Any] | None = None
    #: the thread's latest checkpoint values (None leaves them as they are)
    values: Any = None
    interrupts: dict[str, Any] | None = None
    #: the graph stopped with tasks left to run (an interrupt or breakpoint)
    paused: bool = False
    #: delete the run and the checkpoints it wrote (rollback)
    discard: bool = False


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- admission -----------------------------------------------------------

    async def create(
        self,
        run: Run,
        *,
        create_thread: bool,
        thread_metadata: dict[str, Any],
        claim: Claim | None = None,
        new_thread: bool = False,
    ) -> Admission:
        """Store `run` as pending and mark its thread busy, in one transaction.

        Applies the run's multitask strategy against the thread's in-flight runs:
        `reject` raises `Conflict`; `interrupt`/`rollback` settle pending runs here and
        return the running ones for the caller to stop.

        Args:
            claim: a worker with a free slot; when the run can start at once (nothing
                else in flight on its thread, no delay) it is stored already running
                under that worker's lease.
            new_thread: the run's thread id was just minted (a stateless run), so
                there is no thread to look up: it is created.
        """
        delay = run.available_at - run.created_at if run.available_at is not None else timedelta(0)

        def op(conn: Connection) -> Admission:
            thread = (
                None
                if new_thread
                else conn.execute(sql.THREAD_FOR_UPDATE, {"b_thread_id": run.thread_id}).first()
            )
            # Stamped under the thread's lock, so creation order is commit order and the
            # queue's FIFO (by created_at) is the order the runs were accepted in.
            now = datetime.now(UTC)
            stored = dataclasses.replace(
                run, created_at=now, updated_at=now, available_at=now + delay
            )
            in_flight: Sequence[Any] = ()
            if thread is None:
                if not (create_thread or new_thread):
                    raise errors.NotFound("Thread or assistant not found.")
                conn.execute(
                    sql.INSERT_THREAD,
                    new_thread_values(
                        run.thread_id, thread_metadata, now, status=ThreadStatus.BUSY
                    ),
                )
            else:
                in_flight = conn.execute(
                    sql.IN_FLIGHT_ON_THREAD, {"b_thread_id": run.thread_id}
                ).all()
                strategy = run.multitask_strategy
                if in_flight and strategy == MultitaskStrategy.REJECT:
                    raise errors.Conflict(
                        "Thread is already running a task. Wait for it to finish or "
                        "choose a different multitask strategy."
                    )
                conn.execute(
                    sql.UPDATE_THREAD,
                    {
                        "b_thread_id": run.thread_id,
                        "status": ThreadStatus.BUSY.value,
                        "updated_at": now,
                        "metadata": {**thread.metadata, **thread_metadata},
                    },
                )
            values = sql.run_values(stored)
            if claim is not None and not in_flight and not delay:
                stored = dataclasses.replace(
                    stored, status=RunStatus.RUNNING, attempt=1, started_at=now
                )
                values.update(
                    status=RunStatus.RUNNING.value,
                    attempt=1,
                    started_at=now,
                    worker_id=claim.worker_id,
                    lease_until=now + timedelta(seconds=claim.lease_seconds),
                )
            # Stored before the in-flight runs are settled, so the thread settles as busy.
            conn.execute(sql.INSERT_RUN, values)
            strategy = run.multitask_strategy
            if not in_flight or strategy not in (
                MultitaskStrategy.INTERRUPT,
                MultitaskStrategy.ROLLBACK,
            ):
                return Admission(run=stored, to_cancel=[], settled=[], cancel_action=None)
            action = CancelAction(strategy.value)
            pending = [r.run_id for r in in_flight if r.status == RunStatus.PENDING]
            running = [r.run_id for r in in_flight if r.status == RunStatus.RUNNING]
            self._settle_pending(conn, pending, action, now)
            self._mark_cancel(conn, running, action)
            return Admission(run=stored, to_cancel=running, settled=pending, cancel_action=action)

        return await self.db.write(op)

    # -- reads ---------------------------------------------------------------

    async def get(self, run_id: str, thread_id: str | None = None) -> Run:
        row = await self.db.read(lambda conn: sql.run_row(conn, run_id))
        if row is None or (thread_id is not None and row.thread_id != thread_id):
            raise errors.NotFound(f"Run {run_id} not found")
        return sql.run_from_row(row)

    async def list(
        self, thread_id: str, *, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> RunList:
        query = sa.select(_R).where(_R.c.thread_id == thread_id)
        if status:
            query = query.where(_R.c.status == status)
        query = (
            query.order_by(_R.c.created_at.desc(), _R.c.run_id.desc()).limit(limit).offset(offset)
        )

        def op(conn: Connection) -> RunList:
            exists = conn.scalar(sa.select(sa.literal(1)).where(_T.c.thread_id == thread_id))
            if not exists:
                raise errors.NotFound(f"Thread {thread_id} not found")
            return [sql.run_from_row(r) for r in conn.execute(query).all()]

        return await self.db.read(op)

    async def in_flight(
        self, *, thread_id: str | None = None, status: str | None = None
    ) -> RunList:
        statuses = [status] if status else list(sql.IN_FLIGHT)
        query = sa.select(_R).where(_R.c.status.in_(statuses))
        if thread_id:
            query = query.where(_R.c.thread_id == thread_id)
        return await self.db.read(lambda conn: [sql.run_from_row(r) for r in conn.execute(query)])

    async def has_pending(self) -> bool:
        """Whether any run waits in the queue, due or not, runnable or not."""
        return await self.db.read(lambda conn: conn.scalar(sql.ANY_PENDING) is not None)

    async def next_available_at(self) -> datetime | None:
        """When the next delayed (`after_seconds`) run becomes due, if any.

        Due runs are left out: one queued behind a running run on its thread would
        otherwise read as "due now" and keep an idle worker polling without pause.
        """
        query = sa.select(sa.func.min(_R.c.available_at)).where(
            _R.c.status == RunStatus.PENDING, _R.c.available_at > datetime.now(UTC)
        )
        return await self.db.read(lambda conn: conn.scalar(query))

    # -- the worker's side ---------------------------------------------------

    async def claim(self, *, worker_id: str, limit: int, lease_seconds: float) -> RunList:
        """Take up to `limit` runnable runs: pending, due, oldest first, one per thread,
        on threads with nothing running. Marks them running under a lease."""
        if limit <= 0:
            return []
        now = datetime.now(UTC)

        def op(conn: Connection) -> RunList:
            ids = conn.scalars(sql.RUNNABLE, {"now": now, "limit": limit}).all()
            if not ids:
                return []
            conn.execute(
                sql.START_RUNS,
                {
                    "b_run_ids": ids,
                    "worker_id": worker_id,
                    "lease_until": now + timedelta(seconds=lease_seconds),
                    "started_at": now,
                    "updated_at": now,
                },
            )
            rows = conn.execute(sql.RUNS_BY_IDS, {"b_run_ids": ids}).all()
            by_id = {r.run_id: sql.run_from_row(r) for r in rows}
            return [by_id[i] for i in ids if i in by_id]

        try:
            return await self.db.write(op)
        except IntegrityError as exc:
            # Another process started a run on one of these threads first; the
            # partial unique index refused ours. Nothing was claimed; try again later.
            if self.db.is_unique_violation(exc):
                return []
            raise

    async def extend_leases(
        self, *, worker_id: str, run_ids: IdList, lease_seconds: float
    ) -> IdList:
        """Renew this worker's leases; return the runs whose cancel was requested."""
        if not run_ids:
            return []
        until = datetime.now(UTC) + timedelta(seconds=lease_seconds)

        def op(conn: Connection) -> IdList:
            conn.execute(
                sa.update(_R)
                .where(_R.c.run_id.in_(run_ids), _R.c.worker_id == worker_id)
                .values(lease_until=until)
            )
            return list(
                conn.scalars(
                    sa.select(_R.c.run_id).where(
                        _R.c.run_id.in_(run_ids), _R.c.cancel_action.is_not(None)
                    )
                ).all()
            )

        return await self.db.write(op)

    async def cancel_action(self, run_id: str) -> CancelAction | None:
        query = sa.select(_R.c.cancel_action).where(_R.c.run_id == run_id)
        value = await self.db.read(lambda conn: conn.scalar(query))
        return CancelAction(value) if value else None

    async def finish(self, run_id: str, outcome: Outcome) -> Run | None:
        """Record a run's end and settle its thread, in one transaction.

        Returns the final run, or None when the run no longer exists (deleted meanwhile).
        """
        now = datetime.now(UTC)

        def op(conn: Connection) -> Run | None:
            row = sql.locked_run_row(conn, run_id)
            if row is None:
                return None
            if RunStatus(row.status).is_final:
                # Already settled (cancelled while pending, or failed by recovery):
                # a late finish must not rewrite its end or the thread's status.
                return sql.run_from_row(row)
            busy = conn.scalar(
                sql.OTHERS_IN_FLIGHT, {"b_thread_id": row.thread_id, "b_run_id": run_id}
            )
            if outcome.discard:
                conn.execute(sql.DELETE_RUN, {"b_run_id": run_id})
                checkpoints.delete_for_runs(conn, [run_id])
            elif busy or not row.temporary:  # else the run goes with its thread below
                conn.execute(
                    sql.UPDATE_RUN,
                    {
                        "b_run_id": run_id,
                        "status": outcome.status.value,
                        "error": outcome.error,
                        "ended_at": now,
                        "updated_at": now,
                        "worker_id": None,
                        "lease_until": None,
                    },
                )
            # The webhook's outbox row commits with the run's end, or not at all.
            webhooks.enqueue(conn, row._mapping, outcome, now)
            self._settle_thread(
                conn, row.thread_id, outcome, now, temporary=row.temporary, busy=bool(busy)
            )
            if outcome.discard:
                return None
            return sql.run_from_row(
                sql.Mapped(
                    {
                        **row._mapping,
                        "status": outcome.status.value,
                        "error": outcome.error,
                        "ended_at": now,
                        "updated_at": now,
                    }
                )
            )

        return await self.db.write(op)

    async def release(self, run_id: str, *, max_attempts: int) -> bool:
        """Give a run back to the queue after its worker stopped before it ended.

        Returns False (and fails the run) when it has used up its attempts.
        """
        now = datetime.now(UTC)

        def op(conn: Connection) -> bool:
            row = sql.locked_run_row(conn, run_id)
            if row is None or row.status != RunStatus.RUNNING:
                return False
            if row.attempt >= max_attempts:
                self._fail_exhausted(conn, row, now, max_attempts)
                return False
            conn.execute(
                sa.update(_R)
                .where(_R.c.run_id == run_id)
                .values(
                    status=RunStatus.PENDING.value, worker_id=None, lease_until=None, updated_at=now
                )
            )
            return True

        return await self.db.write(op)

    async def recover(self, *, max_attempts: int, only_expired: bool) -> IdList:
        """Requeue running runs whose worker is gone (all of them at an embedded start,
        or those whose lease expired); fail those out of attempts."""
        now = datetime.now(UTC)
        query = sa.select(_R).where(_R.c.status == RunStatus.RUNNING)
        if only_expired:
            query = query.where(_R.c.lease_until < now)

        def op(conn: Connection) -> IdList:
            requeued: IdList = []
            rows = conn.execute(query).all()
            sql.lock_threads(conn, [row.thread_id for row in rows])
            for row in rows:
                if row.attempt >= max_attempts:
                    self._fail_exhausted(conn, row, now, max_attempts)
                    continue
                conn.execute(
                    sa.update(_R)
                    .where(_R.c.run_id == row.run_id)
                    .values(
                        status=RunStatus.PENDING.value,
                        worker_id=None,
                        lease_until=None,
                        updated_at=now,
                    )
                )
                requeued.append(row.run_id)
            return requeued

        return await self.db.write(op)

    def _fail_exhausted(self, conn: Connection, row: Any, now: datetime, max_attempts: int) -> None:
        error = {
            "error": "WorkerLost",
            "message": f"the run's worker stopped {row.attempt} times "
            f"(limit {max_attempts}); giving up",
        }
        conn.execute(
            sa.update(_R)
            .where(_R.c.run_id == row.run_id)
            .values(
                status=RunStatus.ERROR.value,
                error=error,
                ended_at=now,
                updated_at=now,
                worker_id=None,
                lease_until=None,
            )
        )
        outcome = Outcome(status=RunStatus.ERROR, error=error)
        webhooks.enqueue(conn, row._mapping, outcome, now)
        self._settle_thread(conn, row.thread_id, outcome, now, temporary=row.temporary)

    # -- cancellation and deletion -------------------------------------------

    async def cancel(self, run_ids: IdList, action: CancelAction) -> IdList:
        """Cancel pending runs here; flag running ones and return them to be stopped."""
        now = datetime.now(UTC)

        def op(conn: Connection) -> IdList:
            sql.lock_threads(
                conn,
                list(conn.scalars(sa.select(_R.c.thread_id).where(_R.c.run_id.in_(run_ids)))),
            )
            rows = conn.execute(
                sa.select(_R.c.run_id, _R.c.status).where(
                    _R.c.run_id.in_(run_ids), _R.c.status.in_(sql.IN_FLIGHT)
                )
            ).all()
            pending = [r.run_id for r in rows if r.status == RunStatus.PENDING]
            running = [r.run_id for r in rows if r.status == RunStatus.RUNNING]
            self._settle_pending(conn, pending, action, now)
            self._mark_cancel(conn, running, action)
            return running

        return await self.db.write(op)

    async def delete(self, run_id: str, thread_id: str) -> Run:
        now = datetime.now(UTC)

        def op(conn: Connection) -> Run:
            sql.lock_threads(conn, [thread_id])
            row = conn.execute(
                sa.select(_R).where(_R.c.run_id == run_id, _R.c.thread_id == thread_id)
            ).first()
            if row is None:
                raise errors.NotFound(f"Run {run_id} not found")
            run = sql.run_from_row(row)
            if run.status == RunStatus.RUNNING:
                raise errors.Conflict(f"Run {run_id} is running; cancel it first")
            conn.execute(sa.delete(_R).where(_R.c.run_id == run_id))
            checkpoints.delete_for_runs(conn, [run_id])
            self._settle_thread(
                conn, thread_id, Outcome(status=RunStatus.INTERRUPTED), now, temporary=False
            )
            return run

        return await self.db.write(op)

    def _settle_pending(
        self, conn: Connection, run_ids: IdList, action: CancelAction, now: datetime
    ) -> None:
        if not run_ids:
            return
        rows: Any = conn.execute(sa.select(_R).where(_R.c.run_id.in_(run_ids))).all()
        # A temporary thread belongs to its one run: it goes when that run ends.
        threads = {row.thread_id: bool(row.temporary) for row in rows}
        outcome = Outcome(status=RunStatus.INTERRUPTED, discard=action == CancelAction.ROLLBACK)
        # A run cancelled before it started still ends: its webhook commits with that end.
        # Enqueued before the rows change, so `values` reads the thread as the run left it.
        for row in rows:
            webhooks.enqueue(conn, row._mapping, outcome, now)
        if action == CancelAction.ROLLBACK:
            conn.execute(sa.delete(_R).where(_R.c.run_id.in_(run_ids)))
            checkpoints.delete_for_runs(conn, run_ids)
        else:
            conn.execute(
                sa.update(_R)
                .where(_R.c.run_id.in_(run_ids))
                .values(status=RunStatus.INTERRUPTED.value, ended_at=now, updated_at=now)
            )
        for thread_id, temporary in threads.items():
            self._settle_thread(
                conn, thread_id, Outcome(status=RunStatus.INTERRUPTED), now, temporary=temporary
            )

    def _mark_cancel(self, conn: Connection, run_ids: IdList, action: CancelAction) -> None:
        if run_ids:
            conn.execute(
                sa.update(_R).where(_R.c.run_id.in_(run_ids)).values(cancel_action=action.value)
            )

    def _settle_thread(
        self,
        conn: Connection,
        thread_id: str,
        outcome: Outcome,
        now: datetime,
        *,
        temporary: bool,
        busy: bool | None = None,
    ) -> None:
        """Set the thread's status from what is still in flight and how the run ended.

        Args:
            busy: whether other runs are in flight on the thread, if the caller knows.
        """
        if busy is None:
            busy = conn.scalar(sql.THREAD_BUSY, {"b_thread_id": thread_id}) is not None
        if temporary and not busy:
            conn.execute(sql.DELETE_THREAD_RUNS, {"b_thread_id": thread_id})
            conn.execute(sql.DELETE_THREAD, {"b_thread_id": thread_id})
            checkpoints.delete_thread(conn, thread_id)
            return
        changes: dict[str, Any] = {"b_thread_id": thread_id, "updated_at": now}
        if outcome.values is not None:
            changes["values"] = outcome.values
            changes["state_updated_at"] = now
        if outcome.interrupts is not None:
            changes["interrupts"] = outcome.interrupts
        if busy:
            changes["status"] = ThreadStatus.BUSY.value
        elif outcome.status == RunStatus.ERROR:
            changes["status"] = ThreadStatus.ERROR.value
            changes["error"] = outcome.error
        elif outcome.paused:
            changes["status"] = ThreadStatus.INTERRUPTED.value
        else:
            current = conn.scalar(sql.THREAD_STATUS, {"b_thread_id": thread_id})
            # A cancel or deletion keeps an error/interrupted thread as it was.
            if outcome.status == RunStatus.SUCCESS or current == ThreadStatus.BUSY:
                changes["status"] = ThreadStatus.IDLE.value
        conn.execute(sql.UPDATE_THREAD, changes)
