"""Threads: their rows, search, copy and the state summary kept on them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from berth.core import errors
from berth.core.models import Thread, ThreadStatus
from berth.storage import checkpoints, schema, sorting
from berth.storage.database import Database

_T = schema.threads
_R = schema.runs

SORTABLE = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}


def thread_from_row(row: Any) -> Thread:
    data = dict(row._mapping)
    data["status"] = ThreadStatus(data["status"])
    return Thread(**data)


def new_thread_values(
    thread_id: str, metadata: dict[str, Any], now: datetime, *, status: ThreadStatus
) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "created_at": now,
        "updated_at": now,
        "state_updated_at": None,
        "metadata": metadata,
        "config": {},
        "status": status.value,
        "values": None,
        "interrupts": {},
        "error": None,
    }


class ThreadStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, *, thread_id: str, metadata: dict[str, Any], if_exists: str = "raise"
    ) -> Thread:
        now = datetime.now(UTC)
        try:
            async with self.db.write() as conn:
                row = (await conn.execute(sa.select(_T).where(_T.c.thread_id == thread_id))).first()
                if row is None:
                    values = new_thread_values(thread_id, metadata, now, status=ThreadStatus.IDLE)
                    await conn.execute(sa.insert(_T).values(values))
                    return thread_from_row(_Row(values))
        except sa.exc.IntegrityError as exc:
            # A concurrent create of the same id won the race: the same as finding it.
            if not self.db.is_unique_violation(exc):
                raise
        if if_exists == "do_nothing":
            return await self.get(thread_id)
        raise errors.Conflict(f"Thread {thread_id} already exists")

    async def get(self, thread_id: str) -> Thread:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(_T).where(_T.c.thread_id == thread_id))).first()
        if row is None:
            raise errors.NotFound(f"Thread {thread_id} not found")
        return thread_from_row(row)

    async def update(self, thread_id: str, *, metadata: dict[str, Any] | None) -> Thread:
        async with self.db.write() as conn:
            row = (await conn.execute(sa.select(_T).where(_T.c.thread_id == thread_id))).first()
            if row is None:
                raise errors.NotFound(f"Thread {thread_id} not found")
            values = {"updated_at": datetime.now(UTC)}
            if metadata is not None:
                values["metadata"] = {**row.metadata, **metadata}
            await conn.execute(sa.update(_T).where(_T.c.thread_id == thread_id).values(values))
            return thread_from_row(_Row({**row._mapping, **values}))

    async def delete(self, thread_id: str) -> list[str]:
        """Delete the thread, its runs and checkpoints; return the runs that were in flight."""
        async with self.db.write() as conn:
            active = (
                await conn.scalars(
                    sa.select(_R.c.run_id).where(
                        _R.c.thread_id == thread_id, _R.c.status.in_(["pending", "running"])
                    )
                )
            ).all()
            await conn.execute(sa.delete(_R).where(_R.c.thread_id == thread_id))
            result = await conn.execute(sa.delete(_T).where(_T.c.thread_id == thread_id))
            if result.rowcount == 0:
                raise errors.NotFound(f"Thread {thread_id} not found")
            await checkpoints.delete_thread(conn, thread_id)
        return list(active)

    def _filters(
        self,
        *,
        ids: list[str] | None,
        metadata: dict[str, Any] | None,
        values: dict[str, Any] | None,
        status: str | None,
    ) -> list[sa.ColumnElement[bool]]:
        where: list[sa.ColumnElement[bool]] = []
        if ids:
            where.append(_T.c.thread_id.in_(ids))
        if metadata:
            where.append(self.db.contains(_T.c.metadata, metadata))
        if values:
            where.append(self.db.contains(_T.c["values"], values))
        if status:
            where.append(_T.c.status == status)
        return where

    async def search(
        self,
        *,
        ids: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> tuple[list[Thread], int]:
        where = self._filters(ids=ids, metadata=metadata, values=values, status=status)
        order = sorting.order_by(_T, sort_by or "created_at", sort_order or "desc", SORTABLE)
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(_T).where(*where).order_by(*order).limit(limit).offset(offset)
                )
            ).all()
            total = await conn.scalar(sa.select(sa.func.count()).select_from(_T).where(*where))
        return [thread_from_row(r) for r in rows], int(total or 0)

    async def count(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
        status: str | None = None,
    ) -> int:
        where = self._filters(ids=None, metadata=metadata, values=values, status=status)
        async with self.db.read() as conn:
            return int(
                await conn.scalar(sa.select(sa.func.count()).select_from(_T).where(*where)) or 0
            )

    async def copy(self, thread_id: str, new_thread_id: str) -> Thread:
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            row = (await conn.execute(sa.select(_T).where(_T.c.thread_id == thread_id))).first()
            if row is None:
                raise errors.NotFound(f"Thread {thread_id} not found")
            values = {
                **row._mapping,
                "thread_id": new_thread_id,
                "created_at": now,
                "updated_at": now,
                "status": (
                    ThreadStatus.IDLE.value if row.status == ThreadStatus.BUSY else row.status
                ),
            }
            await conn.execute(sa.insert(_T).values(values))
            await checkpoints.copy_thread(conn, thread_id, new_thread_id)
        return thread_from_row(_Row(values))

    async def record_state(
        self,
        thread_id: str,
        *,
        values: Any,
        interrupts: dict[str, Any],
        paused: bool,
    ) -> None:
        """Refresh the thread's values after a state write outside a run."""
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            row = (
                await conn.execute(sa.select(_T.c.status).where(_T.c.thread_id == thread_id))
            ).first()
            if row is None:
                raise errors.NotFound(f"Thread {thread_id} not found")
            changes: dict[str, Any] = {
                "values": values,
                "interrupts": interrupts,
                "updated_at": now,
                "state_updated_at": now,
            }
            if row.status != ThreadStatus.BUSY:
                changes["status"] = (
                    ThreadStatus.INTERRUPTED if paused else ThreadStatus.IDLE
                ).value
            await conn.execute(sa.update(_T).where(_T.c.thread_id == thread_id).values(changes))


class _Row:
    """Adapts a plain dict to what `thread_from_row` reads."""

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping
