"""Threads: their rows, search, copy and the state summary kept on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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

#: the `threads` columns that hold a thread's TTL, not part of `Thread`
_TTL_COLUMNS = ("ttl_strategy", "ttl_minutes", "expires_at")
TTL_STRATEGIES = ("delete", "keep_latest")


def thread_from_mapping(data: Any) -> Thread:
    values = {k: v for k, v in dict(data).items() if k not in _TTL_COLUMNS}
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


def _ttl_values(ttl: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The TTL columns for `{strategy, ttl}` (minutes), counted from `now`."""
    if ttl is None:
        return {}
    strategy = ttl.get("strategy") or "delete"
    minutes = float(ttl["ttl"])
    return {
        "ttl_strategy": strategy,
        "ttl_minutes": minutes,
        "expires_at": now + timedelta(minutes=minutes),
    }


def ttl_view(row: Any) -> dict[str, Any] | None:
    """A thread row's TTL as `GET /threads/{id}?include=ttl` shows it."""
    if row.ttl_strategy is None:
        return None
    return {
        "strategy": row.ttl_strategy,
        "ttl_minutes": row.ttl_minutes,
        "expires_at": row.expires_at,
    }


def _delete(conn: Connection, thread_id: str) -> list[str] | None:
    """Delete a thread with its runs and checkpoints; its in-flight runs, None if absent."""
    active = conn.scalars(
        sa.select(_R.c.run_id).where(
            _R.c.thread_id == thread_id, _R.c.status.in_(["pending", "running"])
        )
    ).all()
    conn.execute(sa.delete(_R).where(_R.c.thread_id == thread_id))
    result = conn.execute(sa.delete(_T).where(_T.c.thread_id == thread_id))
    if result.rowcount == 0:
        return None
    checkpoints.delete_thread(conn, thread_id)
    return list(active)


_BY_ID = sa.select(_T).where(_T.c.thread_id == sa.bindparam("b_thread_id"))


def _row(conn: Connection, thread_id: str) -> Any:
    return conn.execute(_BY_ID, {"b_thread_id": thread_id}).first()


def _existing(conn: Connection, thread_id: str) -> Any:
    row = _row(conn, thread_id)
    if row is None:
        raise errors.NotFound(f"Thread {thread_id} not found")
    return row


class ThreadStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        thread_id: str,
        metadata: dict[str, Any],
        if_exists: str = "raise",
        ttl: dict[str, Any] | None = None,
    ) -> Thread:
        """Args:
        ttl: `{strategy, ttl}` (minutes): what the sweeper does once the thread is idle
            that long.
        """
        now = datetime.now(UTC)

        def op(conn: Connection) -> Thread | None:
            row = _row(conn, thread_id)
            if row is not None:
                return thread_from_row(row) if if_exists == "do_nothing" else None
            values = new_thread_values(thread_id, metadata, now, status=ThreadStatus.IDLE)
            values.update(_ttl_values(ttl, now))
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

    async def get_with_ttl(self, thread_id: str) -> tuple[Thread, dict[str, Any] | None]:
        """The thread and its TTL (`ttl_view`), None when it has none."""
        row = await self.db.read(lambda conn: _existing(conn, thread_id))
        return thread_from_row(row), ttl_view(row)

    async def update(
        self,
        thread_id: str,
        *,
        metadata: dict[str, Any] | None,
        ttl: dict[str, Any] | None = None,
    ) -> Thread:
        def op(conn: Connection) -> Thread:
            row = _existing(conn, thread_id)
            now = datetime.now(UTC)
            values: dict[str, Any] = {"updated_at": now, **_ttl_values(ttl, now)}
            if metadata is not None:
                values["metadata"] = {**row.metadata, **metadata}
            conn.execute(sa.update(_T).where(_T.c.thread_id == thread_id).values(values))
            return thread_from_mapping({**row._mapping, **values})

        return await self.db.write(op)

    async def delete(self, thread_id: str) -> list[str]:
        """Delete the thread, its runs and checkpoints; return the runs that were in flight."""

        def op(conn: Connection) -> list[str]:
            active = _delete(conn, thread_id)
            if active is None:
                raise errors.NotFound(f"Thread {thread_id} not found")
            return active

        return await self.db.write(op)

    async def prune(self, thread_ids: list[str], strategy: str) -> tuple[int, list[str]]:
        """Delete the threads (`delete`) or all but each namespace's latest checkpoint
        (`keep_latest`); return how many threads existed and the runs deleted in flight.
        """
        if strategy not in TTL_STRATEGIES:
            raise errors.InvalidInput(
                f"strategy must be 'delete' or 'keep_latest', not {strategy!r}"
            )

        def op(conn: Connection) -> tuple[int, list[str]]:
            pruned, in_flight = 0, []
            for thread_id in dict.fromkeys(thread_ids):
                if strategy == "delete":
                    active = _delete(conn, thread_id)
                    if active is not None:
                        pruned += 1
                        in_flight.extend(active)
                elif _row(conn, thread_id) is not None:
                    checkpoints.prune_thread(conn, thread_id, strategy)
                    pruned += 1
            return pruned, in_flight

        return await self.db.write(op)

    async def sweep_expired(self, now: datetime, *, limit: int = 100) -> tuple[int, int]:
        """Apply the TTL strategy of threads idle past their TTL.

        Returns how many were deleted or pruned, and how many rows were looked at.

        Activity (runs, state writes, PATCH) moves `updated_at`, which postpones the
        expiry: a thread expires `ttl_minutes` after its last activity. Busy threads wait.
        """

        def op(conn: Connection) -> tuple[int, int]:
            rows = conn.execute(
                sa.select(_T.c.thread_id, _T.c.status, _T.c.updated_at, *_T.c[_TTL_COLUMNS])
                .where(_T.c.expires_at <= now)
                .order_by(_T.c.expires_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            swept = 0
            for row in rows:
                ttl = timedelta(minutes=row.ttl_minutes or 0)
                due = row.updated_at + ttl
                if row.status == ThreadStatus.BUSY.value or due > now:
                    again = now + ttl if row.status == ThreadStatus.BUSY.value else due
                    conn.execute(
                        sa.update(_T)
                        .where(_T.c.thread_id == row.thread_id)
                        .values(expires_at=again)
                    )
                    continue
                if row.ttl_strategy == "keep_latest":
                    checkpoints.prune_thread(conn, row.thread_id, "keep_latest")
                    conn.execute(
                        sa.update(_T)
                        .where(_T.c.thread_id == row.thread_id)
                        .values(expires_at=now + ttl)
                    )
                else:
                    _delete(conn, row.thread_id)
                swept += 1
            return swept, len(rows)

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
            rows, total = sorting.page(conn, _T, where, order, limit=limit, offset=offset)
            return [thread_from_row(r) for r in rows], total

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
        total: int | None = await self.db.read(lambda conn: conn.scalar(query))
        return int(total or 0)

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
