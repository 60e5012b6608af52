"""Storage fixtures: the same tests run on SQLite and on PostgreSQL.

The PostgreSQL variant takes a fresh database from `pg_database` (tests/conftest.py)
and is skipped only when `BERTH_TEST_PG_URI` is unset (run through `scripts/test`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from berth.core import ids
from berth.core.models import MultitaskStrategy, Run, RunStatus
from berth.storage.base import Storage

#: the lease the tests claim with: long enough never to expire by itself
LEASE = 60.0
GRAPH_ID = "echo"
ASSISTANT_ID = ids.default_assistant_id(GRAPH_ID)


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'berth.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
async def storage(storage_uri: str) -> AsyncIterator[Storage]:
    """A migrated, empty `Storage` on each backend."""
    store = Storage(storage_uri)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def make_run(
    thread_id: str,
    *,
    strategy: MultitaskStrategy = MultitaskStrategy.ENQUEUE,
    created_at: datetime | None = None,
    after_seconds: float = 0.0,
    temporary: bool = False,
    metadata: dict[str, Any] | None = None,
) -> Run:
    """A pending run as `berth.core.runs.Runs.create` would build it."""
    now = created_at or datetime.now(UTC)
    return Run(
        run_id=ids.new_id(),
        thread_id=thread_id,
        assistant_id=ASSISTANT_ID,
        created_at=now,
        updated_at=now,
        status=RunStatus.PENDING,
        metadata=metadata or {},
        kwargs={"input": {"n": 1}, "graph_id": GRAPH_ID, "temporary": temporary},
        multitask_strategy=strategy,
        available_at=now + timedelta(seconds=after_seconds),
        temporary=temporary,
    )


async def new_thread(storage: Storage, **metadata: Any) -> str:
    thread_id = ids.new_id()
    await storage.threads.create(thread_id=thread_id, metadata=metadata)
    return thread_id


async def admit(storage: Storage, run: Run, **kwargs: Any) -> Run:
    kwargs.setdefault("create_thread", False)
    kwargs.setdefault("thread_metadata", {"graph_id": "echo"})
    return (await storage.runs.create(run, **kwargs)).run


def staggered(count: int) -> list[datetime]:
    """Distinct, increasing creation times in the past (so every run is due)."""
    base = datetime.now(UTC) - timedelta(minutes=5)
    return [base + timedelta(milliseconds=10 * i) for i in range(count)]


async def claim(storage: Storage, worker: str = "w1", limit: int = 10) -> list[Run]:
    return await storage.runs.claim(worker_id=worker, limit=limit, lease_seconds=LEASE)


async def running_threads(storage: Storage) -> list[str]:
    return [r.thread_id for r in await storage.runs.in_flight(status="running")]


async def put_checkpoint(storage: Storage, thread_id: str, run_id: str) -> None:
    checkpoint = empty_checkpoint()
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", "run_id": run_id}}
    saved = await storage.checkpointer.aput(
        config, checkpoint, {"source": "loop", "step": 0, "run_id": run_id}, {}
    )
    saved["configurable"]["run_id"] = run_id
    await storage.checkpointer.aput_writes(saved, [("channel", "value")], "task-1")


async def checkpoint_runs(storage: Storage, thread_id: str) -> list[str]:
    config = {"configurable": {"thread_id": thread_id}}
    return sorted(
        {t.metadata["run_id"] async for t in storage.checkpointer.alist(config)}  # type: ignore[misc]
    )
