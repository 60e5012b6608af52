"""The statements the run store executes, built once, and its row helpers.

Building and cache-keying a SQLAlchemy statement costs several times what executing
it does, so the run path's statements are built here at import. Parameters are bound
per call; an UPDATE's SET columns are the parameters named after columns, and
`b_`-prefixed names are the WHERE clause's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from berth.core.models import MultitaskStrategy, Run, RunStatus
from berth.storage import schema

_R = schema.runs
_T = schema.threads

RUN_FIELDS = [f.name for f in dataclasses.fields(Run)]
IN_FLIGHT = (RunStatus.PENDING.value, RunStatus.RUNNING.value)


def run_from_row(row: Any) -> Run:
    data = {k: row._mapping[k] for k in RUN_FIELDS}
    data["status"] = RunStatus(data["status"])
    data["multitask_strategy"] = MultitaskStrategy(data["multitask_strategy"])
    return Run(**data)


def _runnable() -> sa.Select[tuple[str]]:
    other = _R.alias("other")
    now = sa.bindparam("now", type_=schema.UTCDateTime)
    return (
        sa.select(_R.c.run_id)
        .where(
            _R.c.status == RunStatus.PENDING,
            _R.c.available_at <= now,
            ~sa.exists().where(
                other.c.thread_id == _R.c.thread_id, other.c.status == RunStatus.RUNNING
            ),
            # FIFO per thread: an older due run on the same thread goes first.
            ~sa.exists().where(
                other.c.thread_id == _R.c.thread_id,
                other.c.status == RunStatus.PENDING,
                other.c.available_at <= now,
                sa.or_(
                    other.c.created_at < _R.c.created_at,
                    sa.and_(other.c.created_at == _R.c.created_at, other.c.run_id < _R.c.run_id),
                ),
            ),
        )
        .order_by(_R.c.created_at, _R.c.run_id)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .with_for_update(skip_locked=True, of=_R)
    )


#: runs a worker may start now (built once; `now` and `limit` are bound per claim)
RUNNABLE = _runnable()

THREAD_ID: sa.BindParameter[str] = sa.bindparam("b_thread_id")
RUN_ID: sa.BindParameter[str] = sa.bindparam("b_run_id")
LOCK_THREAD = sa.select(_T.c.thread_id).where(_T.c.thread_id == THREAD_ID).with_for_update()
THREAD_FOR_UPDATE = sa.select(_T).where(_T.c.thread_id == THREAD_ID).with_for_update()
THREAD_STATUS = sa.select(_T.c.status).where(_T.c.thread_id == THREAD_ID)
UPDATE_THREAD = _T.update().where(_T.c.thread_id == THREAD_ID)
DELETE_THREAD = _T.delete().where(_T.c.thread_id == THREAD_ID)
INSERT_THREAD = _T.insert()
RUN_ROW = sa.select(_R).where(_R.c.run_id == RUN_ID)
UPDATE_RUN = _R.update().where(_R.c.run_id == RUN_ID)
DELETE_RUN = _R.delete().where(_R.c.run_id == RUN_ID)
INSERT_RUN = _R.insert()
IN_FLIGHT_ON_THREAD = sa.select(_R.c.run_id, _R.c.status).where(
    _R.c.thread_id == THREAD_ID, _R.c.status.in_(IN_FLIGHT)
)
#: locks the thread of run `b_run_id` (one round trip instead of a read, then a lock)
LOCK_RUN_THREAD = (
    sa.select(_T.c.thread_id)
    .where(
        _T.c.thread_id == sa.select(_R.c.thread_id).where(_R.c.run_id == RUN_ID).scalar_subquery()
    )
    .with_for_update()
)
#: whether a run other than `b_run_id` is in flight on the thread
OTHERS_IN_FLIGHT = (
    sa.select(sa.literal(1))
    .where(_R.c.thread_id == THREAD_ID, _R.c.status.in_(IN_FLIGHT), _R.c.run_id != RUN_ID)
    .limit(1)
)
THREAD_BUSY = (
    sa.select(sa.literal(1)).where(_R.c.thread_id == THREAD_ID, _R.c.status.in_(IN_FLIGHT)).limit(1)
)
DELETE_THREAD_RUNS = _R.delete().where(_R.c.thread_id == THREAD_ID)
RUN_IDS: sa.BindParameter[list[str]] = sa.bindparam("b_run_ids", expanding=True)
RUNS_BY_IDS = sa.select(_R).where(_R.c.run_id.in_(RUN_IDS))
#: a claim: the chosen pending runs become running under the claimer's lease
START_RUNS = (
    _R.update()
    .where(_R.c.run_id.in_(RUN_IDS), _R.c.status == RunStatus.PENDING.value)
    .values(status=RunStatus.RUNNING.value, attempt=_R.c.attempt + 1)
)
ANY_PENDING = sa.select(sa.literal(1)).where(_R.c.status == RunStatus.PENDING.value).limit(1)


def lock_threads(conn: Connection, thread_ids: Any) -> None:
    """Take the threads' row locks (PostgreSQL) before reading their in-flight runs.

    Every transaction that settles a thread's status locks the thread first, always in
    id order, so two of them on one thread serialize and each sees the other's commit
    (no write skew leaving a thread `busy` with nothing in flight). SQLite has a single
    writer already: nothing to do there.
    """
    if conn.dialect.name != "postgresql":
        return
    for thread_id in sorted(set(thread_ids)):
        conn.execute(LOCK_THREAD, {"b_thread_id": thread_id})


def run_row(conn: Connection, run_id: str) -> Any:
    return conn.execute(RUN_ROW, {"b_run_id": run_id}).first()


def locked_run_row(conn: Connection, run_id: str) -> Any:
    """The run's row, read after its thread's lock is taken (see `lock_threads`)."""
    if conn.dialect.name == "postgresql":
        conn.execute(LOCK_RUN_THREAD, {"b_run_id": run_id})
    return run_row(conn, run_id)


class Mapped:
    """A dict standing in for a row, for `run_from_row`."""

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping


def run_values(run: Run) -> dict[str, Any]:
    values = {f: getattr(run, f) for f in RUN_FIELDS}
    values["status"] = run.status.value
    values["multitask_strategy"] = run.multitask_strategy.value
    return values
