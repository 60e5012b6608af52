"""Crons: their rows, search, and the claim that makes each fire happen once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from berth.core import errors
from berth.core.crons import Cron, NextFire
from berth.core.models import MultitaskStrategy, OnCompletion
from berth.storage import schema, sorting
from berth.storage.database import Database

log = logging.getLogger("berth.crons")

_C = schema.crons
_T = schema.threads

SORTABLE = {
    "cron_id",
    "assistant_id",
    "thread_id",
    "created_at",
    "updated_at",
    "next_run_date",
    "end_time",
}


def cron_from_mapping(data: Any) -> Cron:
    values = dict(data)
    if values["on_run_completed"] is not None:
        values["on_run_completed"] = OnCompletion(values["on_run_completed"])
    if values["multitask_strategy"] is not None:
        values["multitask_strategy"] = MultitaskStrategy(values["multitask_strategy"])
    return Cron(**values)


def _values(cron: Cron) -> dict[str, Any]:
    return {
        "cron_id": cron.cron_id,
        "assistant_id": cron.assistant_id,
        "thread_id": cron.thread_id,
        "user_id": cron.user_id,
        "schedule": cron.schedule,
        "timezone": cron.timezone,
        "end_time": cron.end_time,
        "next_run_date": cron.next_run_date,
        "payload": cron.payload,
        "metadata": cron.metadata,
        "on_run_completed": cron.on_run_completed.value if cron.on_run_completed else None,
        "multitask_strategy": cron.multitask_strategy.value if cron.multitask_strategy else None,
        "enabled": cron.enabled,
        "created_at": cron.created_at,
        "updated_at": cron.updated_at,
    }


def _existing(conn: Connection, cron_id: str) -> Cron:
    row = conn.execute(sa.select(_C).where(_C.c.cron_id == cron_id)).first()
    if row is None:
        raise errors.NotFound(f"Cron {cron_id} not found")
    return cron_from_mapping(row._mapping)


class CronStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, cron: Cron) -> Cron:
        """Insert `cron`; NotFound if its thread does not exist."""

        def op(conn: Connection) -> Cron:
            if cron.thread_id is not None:
                found = conn.scalar(
                    sa.select(_T.c.thread_id).where(_T.c.thread_id == cron.thread_id)
                )
                if found is None:
                    raise errors.NotFound(f"Thread {cron.thread_id} not found")
            conn.execute(sa.insert(_C).values(_values(cron)))
            return cron

        return await self.db.write(op)

    async def get(self, cron_id: str) -> Cron:
        return await self.db.read(lambda conn: _existing(conn, cron_id))

    async def update(self, cron_id: str, change: Callable[[Cron], dict[str, Any]]) -> Cron:
        """Read the cron, apply `change(cron)` (column → value), in one transaction."""

        def op(conn: Connection) -> Cron:
            cron = _existing(conn, cron_id)
            values = change(cron)
            merged = {**_values(cron), **values}
            row = _values(cron_from_mapping(merged))
            conn.execute(
                sa.update(_C).where(_C.c.cron_id == cron_id).values({k: row[k] for k in values})
            )
            return cron_from_mapping(merged)

        return await self.db.write(op)

    async def delete(self, cron_id: str) -> None:
        def op(conn: Connection) -> None:
            if conn.execute(sa.delete(_C).where(_C.c.cron_id == cron_id)).rowcount == 0:
                raise errors.NotFound(f"Cron {cron_id} not found")

        await self.db.write(op)

    def _filters(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: dict[str, Any] | None,
    ) -> list[sa.ColumnElement[bool]]:
        where: list[sa.ColumnElement[bool]] = []
        if assistant_id:
            where.append(_C.c.assistant_id == assistant_id)
        if thread_id:
            where.append(_C.c.thread_id == thread_id)
        if enabled is not None:
            where.append(_C.c.enabled.is_(enabled))
        if metadata:
            where.append(self.db.contains(_C.c.metadata, metadata))
        return where

    async def search(
        self,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        enabled: bool | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> tuple[list[Cron], int]:
        where = self._filters(
            assistant_id=assistant_id, thread_id=thread_id, enabled=enabled, metadata=metadata
        )
        order = sorting.order_by(_C, sort_by or "created_at", sort_order or "desc", SORTABLE)

        def op(conn: Connection) -> tuple[list[Cron], int]:
            rows, total = sorting.page(conn, _C, where, order, limit=limit, offset=offset)
            return [cron_from_mapping(r._mapping) for r in rows], total

        return await self.db.read(op)

    async def count(
        self,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        enabled: bool | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        where = self._filters(
            assistant_id=assistant_id, thread_id=thread_id, enabled=enabled, metadata=metadata
        )
        query = sa.select(sa.func.count()).select_from(_C).where(*where)
        return int(await self.db.read(lambda conn: conn.scalar(query) or 0))

    async def claim_due(
        self, now: datetime, next_fire: NextFire, *, limit: int = 100
    ) -> list[Cron]:
        """Claim the crons due at `now` and advance each to its next fire after `now`.

        Each is returned as it was before the claim, so `next_run_date` is the fire
        being made. A cron missed for several periods (the server was down) is claimed
        once, and its next fire is after `now`: no backfill. The claim is a
        compare-and-set on `next_run_date`, and on PostgreSQL the rows are locked with
        SKIP LOCKED, so of several processes sharing the database exactly one claims
        each fire. The run is created after this commits: a crash in between loses
        that one fire rather than making it twice.

        A cron whose schedule cannot be computed (stored before a library change, say)
        is disabled and logged, so it never blocks the others.
        """

        def op(conn: Connection) -> list[Cron]:
            rows = conn.execute(
                sa.select(_C)
                .where(
                    _C.c.enabled.is_(True),
                    _C.c.next_run_date.is_not(None),
                    _C.c.next_run_date <= now,
                    sa.or_(_C.c.end_time.is_(None), _C.c.end_time > now),
                )
                .order_by(_C.c.next_run_date)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            claimed: list[Cron] = []
            for row in rows:
                cron = cron_from_mapping(row._mapping)
                advance: dict[str, Any]
                try:
                    advance = {"next_run_date": next_fire(cron, now)}
                except Exception:
                    log.exception("cron %s: cannot compute its next fire; disabled", cron.cron_id)
                    advance = {"enabled": False}
                result = conn.execute(
                    sa.update(_C)
                    .where(_C.c.cron_id == cron.cron_id, _C.c.next_run_date == row.next_run_date)
                    .values(advance)
                )
                if result.rowcount == 1 and "next_run_date" in advance:
                    claimed.append(cron)
            return claimed

        return await self.db.write(op)
