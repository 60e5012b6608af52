"""The run queue (`RunStore`) on SQLite and PostgreSQL: admission, claim, finish,
release/recover, cancel and delete, including concurrent claims (contract §5)."""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime, timedelta

import pytest

from berth.core import errors, ids
from berth.core.models import CancelAction, MultitaskStrategy, RunStatus, ThreadStatus
from berth.storage.base import Storage
from berth.storage.runs import Outcome
from tests.storage.conftest import (
    LEASE,
    admit,
    checkpoint_runs,
    claim,
    make_run,
    new_thread,
    put_checkpoint,
    running_threads,
    staggered,
)

pytestmark = pytest.mark.anyio

MAX_ATTEMPTS = 3


# -- admission -----------------------------------------------------------------


async def test_create_stores_pending_run_and_marks_thread_busy(storage: Storage) -> None:
    thread_id = await new_thread(storage, owner="ann")
    run = await admit(storage, make_run(thread_id))
    stored = await storage.runs.get(run.run_id, thread_id)
    assert stored.status == RunStatus.PENDING
    assert stored.attempt == 0
    assert stored.kwargs["input"] == {"n": 1}
    thread = await storage.threads.get(thread_id)
    assert thread.status == ThreadStatus.BUSY
    assert thread.metadata == {"owner": "ann", "graph_id": "echo"}


async def test_create_on_missing_thread(storage: Storage) -> None:
    missing = ids.new_id()
    with pytest.raises(errors.NotFound, match="Thread or assistant not found"):
        await admit(storage, make_run(missing))
    run = await admit(storage, make_run(missing), create_thread=True)
    thread = await storage.threads.get(missing)
    assert thread.status == ThreadStatus.BUSY
    assert thread.metadata == {"graph_id": "echo"}
    assert (await storage.runs.get(run.run_id)).thread_id == missing


async def test_reject_refuses_while_a_run_is_in_flight(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    first = await admit(storage, make_run(thread_id))
    with pytest.raises(errors.Conflict, match="Thread is already running a task"):
        await admit(storage, make_run(thread_id, strategy=MultitaskStrategy.REJECT))
    assert [r.run_id for r in await storage.runs.list(thread_id)] == [first.run_id]
    # Once the first run ends, reject admits.
    await claim(storage)
    await storage.runs.finish(first.run_id, Outcome(status=RunStatus.SUCCESS))
    second = await admit(storage, make_run(thread_id, strategy=MultitaskStrategy.REJECT))
    assert (await storage.runs.get(second.run_id)).status == RunStatus.PENDING


async def test_enqueue_keeps_runs_fifo(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    times = staggered(3)
    queued = [(await admit(storage, make_run(thread_id, created_at=t))).run_id for t in times]
    order: list[str] = []
    for _ in queued:
        (run,) = await claim(storage)
        order.append(run.run_id)
        assert await claim(storage) == []  # the thread is busy
        await storage.runs.finish(run.run_id, Outcome(status=RunStatus.SUCCESS))
    assert order == queued
    assert (await storage.threads.get(thread_id)).status == ThreadStatus.IDLE


async def test_interrupt_settles_pending_runs_and_keeps_thread_busy(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    first = await admit(storage, make_run(thread_id))
    admission = await storage.runs.create(
        make_run(thread_id, strategy=MultitaskStrategy.INTERRUPT),
        create_thread=False,
        thread_metadata={},
    )
    assert admission.to_cancel == []
    assert (await storage.runs.get(first.run_id)).status == RunStatus.INTERRUPTED
    assert (await storage.runs.get(admission.run.run_id)).status == RunStatus.PENDING
    # The new run is pending, so the thread must still show busy.
    assert (await storage.threads.get(thread_id)).status == ThreadStatus.BUSY
    (claimed,) = await claim(storage)
    assert claimed.run_id == admission.run.run_id


async def test_interrupt_flags_the_running_run(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    first = await admit(storage, make_run(thread_id))
    await claim(storage)
    admission = await storage.runs.create(
        make_run(thread_id, strategy=MultitaskStrategy.INTERRUPT),
        create_thread=False,
        thread_metadata={},
    )
    assert admission.to_cancel == [first.run_id]
    assert admission.cancel_action == CancelAction.INTERRUPT
    assert (await storage.runs.get(first.run_id)).status == RunStatus.RUNNING
    assert await storage.runs.cancel_action(first.run_id) == CancelAction.INTERRUPT
    assert await claim(storage) == []  # the flagged run still occupies the thread
    await storage.runs.finish(first.run_id, Outcome(status=RunStatus.INTERRUPTED))
    (claimed,) = await claim(storage)
    assert claimed.run_id == admission.run.run_id


async def test_rollback_deletes_pending_and_flags_running(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    running = await admit(storage, make_run(thread_id))
    await claim(storage)
    pending = await admit(storage, make_run(thread_id))
    await put_checkpoint(storage, thread_id, pending.run_id)
    admission = await storage.runs.create(
        make_run(thread_id, strategy=MultitaskStrategy.ROLLBACK),
        create_thread=False,
        thread_metadata={},
    )
    assert admission.to_cancel == [running.run_id]
    assert admission.cancel_action == CancelAction.ROLLBACK
    with pytest.raises(errors.NotFound):
        await storage.runs.get(pending.run_id)
    assert await checkpoint_runs(storage, thread_id) == []
    assert await storage.runs.cancel_action(running.run_id) == CancelAction.ROLLBACK
    # The worker stops it and discards it with its checkpoints.
    await put_checkpoint(storage, thread_id, running.run_id)
    assert (
        await storage.runs.finish(
            running.run_id, Outcome(status=RunStatus.INTERRUPTED, discard=True)
        )
        is None
    )
    with pytest.raises(errors.NotFound):
        await storage.runs.get(running.run_id)
    assert await checkpoint_runs(storage, thread_id) == []
    assert (await storage.threads.get(thread_id)).status == ThreadStatus.BUSY
    (claimed,) = await claim(storage)
    assert claimed.run_id == admission.run.run_id


# -- claim ---------------------------------------------------------------------


async def test_claim_takes_oldest_due_run_once_per_thread(storage: Storage) -> None:
    t1, t2, t3 = [await new_thread(storage) for _ in range(3)]
    times = staggered(6)
    plan = [t2, t1, t2, t3, t1, t3]
    runs = [
        await admit(storage, make_run(t, created_at=at)) for t, at in zip(plan, times, strict=True)
    ]
    claimed = await claim(storage, worker="w-a", limit=10)
    # One per thread, the oldest of each, in creation order.
    assert [r.run_id for r in claimed] == [runs[0].run_id, runs[1].run_id, runs[3].run_id]
    for run in claimed:
        assert run.status == RunStatus.RUNNING
        assert run.attempt == 1
        assert run.started_at is not None
    assert sorted(await running_threads(storage)) == sorted([t1, t2, t3])
    assert await claim(storage, worker="w-b") == []


async def test_claim_respects_limit_and_oldest_first(storage: Storage) -> None:
    threads = [await new_thread(storage) for _ in range(4)]
    times = staggered(4)
    runs = [
        await admit(storage, make_run(t, created_at=at))
        for t, at in zip(reversed(threads), times, strict=True)
    ]
    first = await claim(storage, limit=2)
    assert [r.run_id for r in first] == [runs[0].run_id, runs[1].run_id]
    assert await claim(storage, limit=0) == []
    rest = await claim(storage, limit=5)
    assert [r.run_id for r in rest] == [runs[2].run_id, runs[3].run_id]


async def test_after_seconds_delays_the_claim(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    later = await admit(storage, make_run(thread_id, after_seconds=3600))
    assert await claim(storage) == []
    due = await storage.runs.next_available_at()
    assert due is not None and due > datetime.now(UTC) + timedelta(minutes=59)
    # A due run on another thread is not held up by it.
    other = await admit(storage, make_run(await new_thread(storage)))
    assert [r.run_id for r in await claim(storage)] == [other.run_id]
    assert (await storage.runs.get(later.run_id)).status == RunStatus.PENDING


async def test_concurrent_claims_never_run_a_thread_twice(storage: Storage) -> None:
    threads = [await new_thread(storage) for _ in range(5)]
    times = staggered(50)
    expected = {
        (await admit(storage, make_run(threads[i % 5], created_at=at))).run_id
        for i, at in enumerate(times)
    }
    claims: collections.Counter[str] = collections.Counter()
    busy: set[str] = set()
    violations: list[str] = []
    done = 0

    async def worker(number: int) -> None:
        nonlocal done
        idle_rounds = 0
        while done < len(expected) and idle_rounds < 400:
            claimed = await claim(storage, worker=f"w{number}", limit=2)
            if not claimed:
                idle_rounds += 1
                await asyncio.sleep(0.005)
                continue
            idle_rounds = 0
            db_running = await running_threads(storage)
            if len(db_running) != len(set(db_running)):
                violations.append(f"two running runs on one thread: {db_running}")
            for run in claimed:
                claims[run.run_id] += 1
                if run.thread_id in busy:
                    violations.append(f"thread {run.thread_id} claimed while running")
                busy.add(run.thread_id)
            await asyncio.sleep(0.002)
            for run in claimed:
                # Leave the thread before the finish commits: after it, another claimer
                # may legitimately take the thread's next run.
                busy.discard(run.thread_id)
                await storage.runs.finish(run.run_id, Outcome(status=RunStatus.SUCCESS))
                done += 1

    await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(8))), timeout=90)
    assert violations == []
    assert set(claims) == expected
    assert set(claims.values()) == {1}
    assert await storage.runs.in_flight() == []
    for thread_id in threads:
        assert (await storage.threads.get(thread_id)).status == ThreadStatus.IDLE


async def test_concurrent_claims_from_separate_connections(storage_uri: str) -> None:
    """Each claimer has its own engine, as separate server processes would."""
    stores = [Storage(storage_uri) for _ in range(4)]
    for store in stores:
        await store.open()
    try:
        threads = [await new_thread(stores[0]) for _ in range(3)]
        times = staggered(24)
        expected = {
            (await admit(stores[0], make_run(threads[i % 3], created_at=at))).run_id
            for i, at in enumerate(times)
        }
        claims: collections.Counter[str] = collections.Counter()
        violations: list[str] = []
        done = 0

        async def worker(number: int, store: Storage) -> None:
            nonlocal done
            rounds = 0
            while done < len(expected) and rounds < 2000:
                rounds += 1
                claimed = await claim(store, worker=f"p{number}", limit=3)
                running = await running_threads(store)
                if len(running) != len(set(running)):
                    violations.append(f"two running runs on one thread: {running}")
                for run in claimed:
                    claims[run.run_id] += 1
                    await store.runs.finish(run.run_id, Outcome(status=RunStatus.SUCCESS))
                    done += 1
                if not claimed:
                    await asyncio.sleep(0.005)

        await asyncio.wait_for(
            asyncio.gather(*(worker(n, s) for n, s in enumerate(stores))), timeout=90
        )
        assert violations == []
        assert set(claims) == expected
        assert set(claims.values()) == {1}
    finally:
        for store in stores:
            await store.close()


# -- finish --------------------------------------------------------------------


async def test_finish_success_stores_values_and_idles_thread(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    run = await admit(storage, make_run(thread_id))
    await claim(storage)
    final = await storage.runs.finish(
        run.run_id,
        Outcome(status=RunStatus.SUCCESS, values={"messages": ["hi"], "ok": True}, interrupts={}),
    )
    assert final is not None
    assert final.status == RunStatus.SUCCESS
    assert final.ended_at is not None
    thread = await storage.threads.get(thread_id)
    assert thread.status == ThreadStatus.IDLE
    assert thread.values == {"messages": ["hi"], "ok": True}
    assert thread.interrupts == {}
    assert thread.state_updated_at is not None


async def test_finish_error_and_paused(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    run = await admit(storage, make_run(thread_id))
    await claim(storage)
    error = {"error": "ValueError", "message": "boom"}
    final = await storage.runs.finish(run.run_id, Outcome(status=RunStatus.ERROR, error=error))
    assert final is not None and final.status == RunStatus.ERROR and final.error == error
    thread = await storage.threads.get(thread_id)
    assert thread.status == ThreadStatus.ERROR
    assert thread.error == error

    paused = await admit(storage, make_run(thread_id))
    await claim(storage)
    interrupts = {"task-1": [{"id": "i1", "value": "ask"}]}
    await storage.runs.finish(
        paused.run_id,
        Outcome(status=RunStatus.SUCCESS, values={"n": 1}, interrupts=interrupts, paused=True),
    )
    thread = await storage.threads.get(thread_id)
    assert thread.status == ThreadStatus.INTERRUPTED
    assert thread.interrupts == interrupts


async def test_finish_keeps_thread_busy_while_runs_queue(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    first, second = [await admit(storage, make_run(thread_id, created_at=t)) for t in staggered(2)]
    await claim(storage)
    await storage.runs.finish(first.run_id, Outcome(status=RunStatus.ERROR, error={"error": "X"}))
    assert (await storage.threads.get(thread_id)).status == ThreadStatus.BUSY
    (claimed,) = await claim(storage)
    assert claimed.run_id == second.run_id


async def test_finish_deletes_temporary_thread(storage: Storage) -> None:
    thread_id = ids.new_id()
    run = await admit(storage, make_run(thread_id, temporary=True), create_thread=True)
    await claim(storage)
    await put_checkpoint(storage, thread_id, run.run_id)
    await storage.runs.finish(run.run_id, Outcome(status=RunStatus.SUCCESS, values={"a": 1}))
    with pytest.raises(errors.NotFound):
        await storage.threads.get(thread_id)
    with pytest.raises(errors.NotFound):
        await storage.runs.get(run.run_id)
    assert await checkpoint_runs(storage, thread_id) == []


async def test_finish_of_deleted_run_is_none(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    run = await admit(storage, make_run(thread_id))
    await storage.threads.delete(thread_id)
    assert await storage.runs.finish(run.run_id, Outcome(status=RunStatus.SUCCESS)) is None


async def test_finish_does_not_overwrite_a_final_run(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    run = await admit(storage, make_run(thread_id))
    await storage.runs.cancel([run.run_id], CancelAction.INTERRUPT)
    final = await storage.runs.finish(run.run_id, Outcome(status=RunStatus.SUCCESS))
    assert final is not None and final.status == RunStatus.INTERRUPTED
    assert (await storage.runs.get(run.run_id)).status == RunStatus.INTERRUPTED


# -- release and recover ---------------------------------------------------------


async def test_release_requeues_and_counts_attempts(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    run = await admit(storage, make_run(thread_id))
    for attempt in range(1, MAX_ATTEMPTS):
        (claimed,) = await claim(storage)
        assert claimed.attempt == attempt
        assert await storage.runs.release(run.run_id, max_attempts=MAX_ATTEMPTS) is True
        requeued = await storage.runs.get(run.run_id)
        assert requeued.status == RunStatus.PENDING
        assert (await storage.threads.get(thread_id)).status == ThreadStatus.BUSY
    (claimed,) = await claim(storage)
    assert claimed.attempt == MAX_ATTEMPTS
    assert await storage.runs.release(run.run_id, max_attempts=MAX_ATTEMPTS) is False
    failed = await storage.runs.get(run.run_id)
    assert failed.status == RunStatus.ERROR
    assert failed.error is not None
    assert failed.error["error"] == "WorkerLost"
    assert f"{MAX_ATTEMPTS} times" in failed.error["message"]
    thread = await storage.threads.get(thread_id)
    assert thread.status == ThreadStatus.ERROR
    assert thread.error == failed.error
    # Releasing a run that is not running changes nothing.
    assert await storage.runs.release(run.run_id, max_attempts=MAX_ATTEMPTS) is False
    assert (await storage.runs.get(run.run_id)).status == RunStatus.ERROR


async def test_recover_expired_leases_only(storage: Storage) -> None:
    t1, t2 = await new_thread(storage), await new_thread(storage)
    lost = await admit(storage, make_run(t1))
    alive = await admit(storage, make_run(t2))
    await storage.runs.claim(worker_id="gone", limit=1, lease_seconds=-1)
    await storage.runs.claim(worker_id="alive", limit=1, lease_seconds=LEASE)
    assert await storage.runs.recover(max_attempts=MAX_ATTEMPTS, only_expired=True) == [lost.run_id]
    assert (await storage.runs.get(lost.run_id)).status == RunStatus.PENDING
    assert (await storage.runs.get(alive.run_id)).status == RunStatus.RUNNING
    (again,) = await claim(storage)
    assert again.run_id == lost.run_id and again.attempt == 2
    # At an embedded start every running run lost its worker.
    requeued = await storage.runs.recover(max_attempts=MAX_ATTEMPTS, only_expired=False)
    assert sorted(requeued) == sorted([lost.run_id, alive.run_id])
    assert await storage.runs.in_flight(status="running") == []


async def test_recover_fails_exhausted_runs(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    run = await admit(storage, make_run(thread_id))
    for _ in range(MAX_ATTEMPTS):
        await claim(storage)
        await storage.runs.recover(max_attempts=MAX_ATTEMPTS, only_expired=False)
    final = await storage.runs.get(run.run_id)
    assert final.status == RunStatus.ERROR
    assert final.error is not None and "giving up" in final.error["message"]
    assert (await storage.threads.get(thread_id)).status == ThreadStatus.ERROR
    assert await claim(storage) == []


async def test_exhausted_temporary_run_removes_its_thread(storage: Storage) -> None:
    thread_id = ids.new_id()
    run = await admit(storage, make_run(thread_id, temporary=True), create_thread=True)
    await claim(storage)
    assert await storage.runs.release(run.run_id, max_attempts=1) is False
    with pytest.raises(errors.NotFound):
        await storage.threads.get(thread_id)


async def test_extend_leases_reports_cancel_requests(storage: Storage) -> None:
    t1, t2 = await new_thread(storage), await new_thread(storage)
    a = await admit(storage, make_run(t1))
    b = await admit(storage, make_run(t2))
    await storage.runs.claim(worker_id="w", limit=2, lease_seconds=-1)
    assert await storage.runs.cancel([b.run_id], CancelAction.INTERRUPT) == [b.run_id]
    flagged = await storage.runs.extend_leases(
        worker_id="w", run_ids=[a.run_id, b.run_id], lease_seconds=LEASE
    )
    assert flagged == [b.run_id]
    # The renewed leases are no longer expired.
    assert await storage.runs.recover(max_attempts=MAX_ATTEMPTS, only_expired=True) == []


# -- cancel and delete -------------------------------------------------------------


async def test_cancel_pending_interrupt_and_rollback(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    run = await admit(storage, make_run(thread_id))
    assert await storage.runs.cancel([run.run_id], CancelAction.INTERRUPT) == []
    assert (await storage.runs.get(run.run_id)).status == RunStatus.INTERRUPTED
    assert (await storage.threads.get(thread_id)).status == ThreadStatus.IDLE

    other = await admit(storage, make_run(thread_id))
    await put_checkpoint(storage, thread_id, other.run_id)
    assert await storage.runs.cancel([other.run_id], CancelAction.ROLLBACK) == []
    with pytest.raises(errors.NotFound):
        await storage.runs.get(other.run_id)
    assert await checkpoint_runs(storage, thread_id) == []
    assert (await storage.threads.get(thread_id)).status == ThreadStatus.IDLE
    # Cancelling a finished run is a no-op.
    assert await storage.runs.cancel([run.run_id], CancelAction.ROLLBACK) == []
    assert (await storage.runs.get(run.run_id)).status == RunStatus.INTERRUPTED


async def test_cancel_running_flags_it(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    run = await admit(storage, make_run(thread_id))
    await claim(storage)
    assert await storage.runs.cancel([run.run_id], CancelAction.INTERRUPT) == [run.run_id]
    assert (await storage.runs.get(run.run_id)).status == RunStatus.RUNNING
    assert await storage.runs.cancel_action(run.run_id) == CancelAction.INTERRUPT
    assert (await storage.threads.get(thread_id)).status == ThreadStatus.BUSY
    await storage.runs.finish(run.run_id, Outcome(status=RunStatus.INTERRUPTED))
    assert (await storage.threads.get(thread_id)).status == ThreadStatus.IDLE


async def test_delete_removes_run_and_its_checkpoints(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    keep, doomed = [await admit(storage, make_run(thread_id, created_at=t)) for t in staggered(2)]
    for run in (keep, doomed):
        await claim(storage)
        await put_checkpoint(storage, thread_id, run.run_id)
        await storage.runs.finish(run.run_id, Outcome(status=RunStatus.SUCCESS))
    deleted = await storage.runs.delete(doomed.run_id, thread_id)
    assert deleted.run_id == doomed.run_id
    with pytest.raises(errors.NotFound):
        await storage.runs.get(doomed.run_id)
    assert await checkpoint_runs(storage, thread_id) == [keep.run_id]
    with pytest.raises(errors.NotFound):
        await storage.runs.delete(doomed.run_id, thread_id)
    with pytest.raises(errors.NotFound):
        await storage.runs.delete(keep.run_id, ids.new_id())


async def test_delete_refuses_a_running_run(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    run = await admit(storage, make_run(thread_id))
    await claim(storage)
    with pytest.raises(errors.Conflict):
        await storage.runs.delete(run.run_id, thread_id)
    assert (await storage.runs.get(run.run_id)).status == RunStatus.RUNNING


async def test_list_filters_and_missing_thread(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    runs = [await admit(storage, make_run(thread_id, created_at=t)) for t in staggered(3)]
    await claim(storage)
    listed = await storage.runs.list(thread_id)
    assert [r.run_id for r in listed] == [r.run_id for r in reversed(runs)]
    assert [r.run_id for r in await storage.runs.list(thread_id, status="running")] == [
        runs[0].run_id
    ]
    assert [r.run_id for r in await storage.runs.list(thread_id, limit=1, offset=1)] == [
        runs[1].run_id
    ]
    with pytest.raises(errors.NotFound):
        await storage.runs.list(ids.new_id())
