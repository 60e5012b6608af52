"""`Database.write`: each operation is one transaction, whatever the backend batches.

The SQLite writer commits queued writes together; when one of them fails, the others
must still commit and the failed one must leave nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from berth.core import ids
from berth.core.models import ThreadStatus
from berth.storage import schema
from berth.storage.base import Storage
from berth.storage.threads import new_thread_values

pytestmark = pytest.mark.anyio


class Refused(Exception):
    pass


def _insert_thread(
    thread_id: str, *, fail: bool, seen: list[object]
) -> Callable[[Connection], str]:
    def op(conn: Connection) -> str:
        seen.append(conn.get_transaction())
        values = new_thread_values(thread_id, {}, datetime.now(UTC), status=ThreadStatus.IDLE)
        conn.execute(sa.insert(schema.threads).values(values))
        if fail:
            raise Refused(thread_id)
        return thread_id

    return op


async def _stored(storage: Storage, thread_ids: list[str]) -> set[str]:
    query = sa.select(schema.threads.c.thread_id).where(schema.threads.c.thread_id.in_(thread_ids))
    return set(await storage.db.read(lambda conn: conn.scalars(query).all()))


async def test_a_failed_write_among_concurrent_ones_is_its_own(storage: Storage) -> None:
    thread_ids = [ids.new_id() for _ in range(40)]
    doomed = thread_ids[17]
    seen: list[object] = []
    results = await asyncio.gather(
        *(storage.db.write(_insert_thread(t, fail=t == doomed, seen=seen)) for t in thread_ids),
        return_exceptions=True,
    )

    for thread_id, result in zip(thread_ids, results, strict=True):
        if thread_id == doomed:
            assert isinstance(result, Refused)
        else:
            assert result == thread_id
    assert await _stored(storage, thread_ids) == set(thread_ids) - {doomed}
    if storage.db.name == "sqlite":
        # The writes were batched (else this test proves nothing about batches).
        assert len({id(t) for t in seen}) < len(seen)


@pytest.mark.parametrize("count", [1, 5])
async def test_failed_writes_leave_nothing(storage: Storage, count: int) -> None:
    thread_ids = [ids.new_id() for _ in range(count)]
    seen: list[object] = []
    results = await asyncio.gather(
        *(storage.db.write(_insert_thread(t, fail=True, seen=seen)) for t in thread_ids),
        return_exceptions=True,
    )
    assert all(isinstance(r, Refused) for r in results)
    assert await _stored(storage, thread_ids) == set()
