"""Assistants and their versions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from berth.core import errors
from berth.core.models import Assistant, RunStatus
from berth.storage import schema, sorting
from berth.storage.database import Database
from berth.storage.dialects.base import Operation, T

_A = schema.assistants
_V = schema.assistant_versions
_C = schema.crons
_R = schema.runs

SORTABLE = {"assistant_id", "graph_id", "name", "created_at", "updated_at"}


def _assistant(row: Any) -> Assistant:
    return Assistant(**row._mapping)


#: read on every run's admission: built once (see `storage/run_sql.py`)
_BY_ID = sa.select(_A).where(_A.c.assistant_id == sa.bindparam("b_assistant_id"))


def _row(conn: Connection, assistant_id: str) -> Any:
    return conn.execute(_BY_ID, {"b_assistant_id": assistant_id}).first()


def _insert(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(sa.insert(_A).values(values))
    conn.execute(sa.insert(_V).values({k: v for k, v in values.items() if k != "updated_at"}))


def _filters(
    *,
    graph_ids: list[str],
    graph_id: str | None,
    metadata: dict[str, Any] | None,
    name: str | None,
    db: Database,
) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = [_A.c.graph_id.in_(graph_ids)]
    if graph_id:
        where.append(_A.c.graph_id == graph_id)
    if metadata:
        where.append(db.contains(_A.c.metadata, metadata))
    if name:
        where.append(sa.func.lower(_A.c.name).contains(name.lower(), autoescape=True))
    return where


class AssistantStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # An embedded database has a single server process (its data directory is
        # locked), so every change to an assistant passes through this store and the
        # assistants read on each run's admission can be kept. Not so on PostgreSQL.
        self._kept: dict[str, Assistant] | None = {} if db.name == "sqlite" else None
        #: bumped as each write starts and ends: a read that overlapped one is not kept
        self._writes = 0

    async def _write(self, op: Operation[T]) -> T:
        self._forget()
        try:
            return await self.db.write(op)
        finally:
            self._forget()

    def _forget(self) -> None:
        self._writes += 1
        if self._kept is not None:
            self._kept.clear()

    async def ensure_default(self, *, assistant_id: str, graph_id: str, name: str) -> None:
        """Create a graph's system assistant unless it already exists."""
        now = datetime.now(UTC)
        values = {
            "assistant_id": assistant_id,
            "graph_id": graph_id,
            "name": name,
            "description": None,
            "config": {},
            "context": {},
            "metadata": {"created_by": "system"},
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }

        def op(conn: Connection) -> None:
            if _row(conn, assistant_id) is None:
                _insert(conn, values)

        await self._write(op)

    async def create(
        self,
        *,
        assistant_id: str,
        graph_id: str,
        name: str,
        description: str | None,
        config: dict[str, Any],
        context: dict[str, Any],
        metadata: dict[str, Any],
        if_exists: str,
    ) -> Assistant:
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "assistant_id": assistant_id,
            "graph_id": graph_id,
            "name": name,
            "description": description,
            "config": config,
            "context": context,
            "metadata": metadata,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }

        def op(conn: Connection) -> Assistant | None:
            row = _row(conn, assistant_id)
            if row is not None:
                return _assistant(row) if if_exists == "do_nothing" else None
            _insert(conn, values)
            return Assistant(**values)

        try:
            created = await self._write(op)
        except sa.exc.IntegrityError as exc:
            # A concurrent create of the same id won the race: the same as finding it.
            if not self.db.is_unique_violation(exc):
                raise
            created = await self.get(assistant_id) if if_exists == "do_nothing" else None
        if created is None:
            raise errors.Conflict(f"Assistant {assistant_id} already exists")
        return created

    async def get(self, assistant_id: str) -> Assistant:
        if self._kept is not None and (kept := self._kept.get(assistant_id)) is not None:
            return kept
        writes = self._writes
        row = await self.db.read(lambda conn: _row(conn, assistant_id))
        if row is None:
            raise errors.NotFound(f"Assistant {assistant_id} not found")
        assistant = _assistant(row)
        if self._kept is not None and writes == self._writes:
            self._kept[assistant_id] = assistant
        return assistant

    async def update(self, assistant_id: str, changes: dict[str, Any]) -> Assistant:
        """Store `changes` as a new version and make it the current one."""
        now = datetime.now(UTC)

        def op(conn: Connection) -> Assistant:
            row = _row(conn, assistant_id)
            if row is None:
                raise errors.NotFound(f"Assistant {assistant_id} not found")
            current = dict(row._mapping)
            latest = conn.scalar(
                sa.select(sa.func.max(_V.c.version)).where(_V.c.assistant_id == assistant_id)
            )
            merged = {**current, **changes, "version": (latest or 0) + 1, "updated_at": now}
            if "metadata" in changes:
                merged["metadata"] = {**current["metadata"], **changes["metadata"]}
            conn.execute(
                sa.insert(_V).values(
                    {**{k: merged[k] for k in _V.c.keys() if k != "created_at"}, "created_at": now}
                )
            )
            conn.execute(
                sa.update(_A)
                .where(_A.c.assistant_id == assistant_id)
                .values(
                    {k: v for k, v in merged.items() if k not in ("assistant_id", "created_at")}
                )
            )
            return Assistant(**merged)

        return await self._write(op)

    async def delete(self, assistant_id: str) -> list[str]:
        """Delete the assistant, its versions and crons; return its runs still in flight."""

        def op(conn: Connection) -> list[str]:
            result = conn.execute(sa.delete(_A).where(_A.c.assistant_id == assistant_id))
            if result.rowcount == 0:
                raise errors.NotFound(f"Assistant {assistant_id} not found")
            conn.execute(sa.delete(_V).where(_V.c.assistant_id == assistant_id))
            conn.execute(sa.delete(_C).where(_C.c.assistant_id == assistant_id))
            return list(
                conn.scalars(
                    sa.select(_R.c.run_id).where(
                        _R.c.assistant_id == assistant_id,
                        _R.c.status.in_([RunStatus.PENDING.value, RunStatus.RUNNING.value]),
                    )
                ).all()
            )

        return await self._write(op)

    async def search(
        self,
        *,
        graph_ids: list[str],
        graph_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> tuple[list[Assistant], int]:
        where = _filters(
            graph_ids=graph_ids, graph_id=graph_id, metadata=metadata, name=name, db=self.db
        )
        order = sorting.order_by(_A, sort_by or "created_at", sort_order or "desc", SORTABLE)

        def op(conn: Connection) -> tuple[list[Assistant], int]:
            rows, total = sorting.page(conn, _A, where, order, limit=limit, offset=offset)
            return [_assistant(r) for r in rows], total

        return await self.db.read(op)

    async def count(
        self,
        *,
        graph_ids: list[str],
        graph_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> int:
        where = _filters(
            graph_ids=graph_ids, graph_id=graph_id, metadata=metadata, name=name, db=self.db
        )
        query = sa.select(sa.func.count()).select_from(_A).where(*where)
        total: int | None = await self.db.read(lambda conn: conn.scalar(query))
        return int(total or 0)

    async def versions(
        self,
        assistant_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        where: list[sa.ColumnElement[bool]] = [_V.c.assistant_id == assistant_id]
        if metadata:
            where.append(self.db.contains(_V.c.metadata, metadata))
        query = (
            sa.select(_V).where(*where).order_by(_V.c.version.desc()).limit(limit).offset(offset)
        )
        rows = await self.db.read(lambda conn: conn.execute(query).all())
        return [dict(r._mapping) for r in rows]

    async def set_latest(self, assistant_id: str, version: int) -> Assistant:
        now = datetime.now(UTC)

        def op(conn: Connection) -> Assistant:
            row = conn.execute(
                sa.select(_V).where(_V.c.assistant_id == assistant_id, _V.c.version == version)
            ).first()
            if row is None:
                raise errors.NotFound(f"Assistant {assistant_id} has no version {version}")
            created = conn.scalar(
                sa.select(_A.c.created_at).where(_A.c.assistant_id == assistant_id)
            )
            values = {**row._mapping, "created_at": created, "updated_at": now}
            conn.execute(
                sa.update(_A)
                .where(_A.c.assistant_id == assistant_id)
                .values(
                    {k: v for k, v in values.items() if k not in ("assistant_id", "created_at")}
                )
            )
            return Assistant(**values)

        return await self._write(op)
