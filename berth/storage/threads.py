"""Threads: their rows, search, copy and the state summary kept on them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from berth.core import errors
from berth.core.models import Thread, ThreadStatus
from berth.storage import checkpoints, schema, sorting
from berth.storage.database import Database

_T = schema.threads
_R = schema.runs

SORTABLE = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}


def thread_from_mapping(data: Any) -> Thread:
    values = dict(data)
    values["status"] = ThreadStatus(values["status"])
    return Thread(**values)


def thread_from_row(row: Any) -> Thread:
    return thread_from_mapping(row._mapping)


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


def _row(conn: Connection, thread_id: str) -> Any:
    return conn.execute(sa.select(_T).where(_T.c.thread_id == thread_id)).first()


def _existing(conn: Connection, thread_id: str) -> Any:
    row = _row(conn, thread_id)
    if row is None:
        raise errors.NotFound(f"Thread {thread_id} not found")
    return row


class ThreadStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, *, thread_id: str, metadata: dict[str, Any], if_exists: str = "raise"
    ) -> Thread:
        now = datetime.now(UTC)

        def op(conn: Connection) -> Thread | None:
            row = _row(conn, thread_id)
            if row is not None:
                return thread_from_row(row) if if_exists == "do_nothing" else None
            values = new_thread_values(thread_id, metadata, now, status=ThreadStatus.IDLE)
            conn.execute(sa.insert(_T).values(values))
            return thread_from_mapping(values)

        try:
            created = await self.db.write(op)
        except sa.exc.IntegrityError as exc:
            # A concurrent create of the same id won the race: the same as finding it.
            if not self.db.is_unique_violation(exc):
                raise
            created = await self.get(thread_id) if if_exists == "do_nothing" else None
        if created is None:
            raise errors.Conflict(f"Thread {thread_id} already exists")
        return created

    async def get(self, thread_id: str) -> Thread:
        return thread_from_row(await self.db.read(lambda conn: _existing(conn, thread_id)))

    async def update(self, thread_id: str, *, metadata: dict[str, Any] | None) -> Thread:
        def op(conn: Connection) -> Thread:
            row = _existing(conn, thread_id)
            values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
            if metadata is not None:
                values["metadata"] = {**row.metadata, **metadata}
            conn.execute(sa.update(_T).where(_T.c.thread_id == thread_id).values(values))
            return thread_from_mapping({**row._mapping, **values})

        return await self.db.write(op)

    async def delete(self, thread_id: str) -> list[str]:
        """Delete the thread, its runs and checkpoints; return the runs that were in flight."""

        def op(conn: Connection) -> list[str]:
            active = conn.scalars(
                sa.select(_R.c.run_id).where(
                    _R.c.thread_id == thread_id, _R.c.status.in_(["pending", "running"])
                )
            ).all()
            conn.execute(sa.delete(_R).where(_R.c.thread_id == thread_id))
            result = conn.execute(sa.delete(_T).where(_T.c.thread_id == thread_id))
            if result.rowcount == 0:
                raise errors.NotFound(f"Thread {thread_id} not found")
            checkpoints.delete_thread(conn, thread_id)
            return list(active)

        return await self.db.write(op)

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

        def op(conn: Connection) -> tuple[list[Thread], int]:
            rows = conn.execute(
                sa.select(_T).where(*where).order_by(*order).limit(limit).offset(offset)
            ).all()
            total = conn.scalar(sa.select(sa.func.count()).select_from(_T).where(*where))
            return [thread_from_row(r) for r in rows], int(total or 0)

        return await self.db.read(op)

    async def count(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
        status: str | None = None,
    ) -> int:
        where = self._filters(ids=None, metadata=metadata, values=values, status=status)
        query = sa.select(sa.func.count()).select_from(_T).where(*where)
        return int(await self.db.read(lambda conn: conn.scalar(query)) or 0)

    async def copy(self, thread_id: str, new_thread_id: str) -> Thread:
        now = datetime.now(UTC)

        def op(conn: Connection) -> Thread:
            row = _existing(conn, thread_id)
            values = {
                **row._mapping,
                "thread_id": new_thread_id,
                "created_at": now,
                "updated_at": now,
                "status": (
                    ThreadStatus.IDLE.value if row.status == ThreadStatus.BUSY else row.status
                ),
            }
            conn.execute(sa.insert(_T).values(values))
            checkpoints.copy_thread(conn, thread_id, new_thread_id)
            return thread_from_mapping(values)

        return await self.db.write(op)

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

        def op(conn: Connection) -> None:
            row = _existing(conn, thread_id)
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
            conn.execute(sa.update(_T).where(_T.c.thread_id == thread_id).values(changes))

        await self.db.write(op)
