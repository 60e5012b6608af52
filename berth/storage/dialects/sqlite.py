"""SQLite: the embedded default.

SQLite admits one writer at a time, so one thread owns the write connection and runs
whole transactions handed to it; writes that queue up meanwhile are committed together
(group commit; when one of them fails, each is replayed in a transaction of its own).
Two reader threads serve snapshots beside it (WAL mode).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from berth.storage.dialects.base import Dialect, Operation, T, json_serializer

#: the most writes committed in one transaction
GROUP_COMMIT_LIMIT = 64
READER_THREADS = 2


class _Job:
    __slots__ = ("future", "loop", "operation")

    def __init__(self, operation: Operation[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.operation = operation
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        self.loop.call_soon_threadsafe(_settle, self.future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _ConnectionThread:
    """A thread that owns one connection and runs the transactions queued to it."""

    def __init__(
        self, engine: Engine, jobs: queue.SimpleQueue[_Job | None], *, writer: bool
    ) -> None:
        self.engine = engine
        self.jobs = jobs
        self.writer = writer
        kind = "writer" if writer else "reader"
        self.thread = threading.Thread(target=self._main, name=f"berth-sqlite-{kind}", daemon=True)

    def _main(self) -> None:
        with self.engine.connect() as conn:
            conn.info["berth_writer"] = self.writer
            while True:
                job = self.jobs.get()
                if job is None:
                    return
                if not self.writer:
                    self._one(conn, job)
                    continue
                batch = [job]
                while len(batch) < GROUP_COMMIT_LIMIT:
                    try:
                        more = self.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self.jobs.put(None)
                        break
                    batch.append(more)
                if len(batch) == 1:
                    self._one(conn, job)
                else:
                    self._group(conn, batch)

    @staticmethod
    def _one(conn: Connection, job: _Job) -> None:
        try:
            with conn.begin():
                result = job.operation(conn)
        except BaseException as exc:
            job.settle(error=exc)
        else:
            job.settle(result)

    @staticmethod
    def _group(conn: Connection, batch: list[_Job]) -> None:
        results: list[Any] = []
        try:
            with conn.begin():
                for job in batch:
                    results.append(job.operation(conn))
        except BaseException:
            # An operation failed (a conflict, say) and the group's writes rolled back
            # with it. Operations are plain functions of the connection, so each one is
            # replayed alone: the failure stays its own. A savepoint per operation
            # would avoid the replay, at two more statements for every write.
            for job in batch:
                _ConnectionThread._one(conn, job)
            return
        for job, result in zip(batch, results, strict=True):
            job.settle(result)


class SqliteDialect(Dialect):
    name = "sqlite"

    def __init__(self, uri: str) -> None:
        self.path = uri.split("///", 1)[1] if "///" in uri else ""
        self.engine = _engine("sqlite:///" + self.path)
        self._writes: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._reads: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[_ConnectionThread] = []

    async def open(self) -> None:
        if self.path and self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._threads = [_ConnectionThread(self.engine, self._writes, writer=True)] + [
            _ConnectionThread(self.engine, self._reads, writer=False) for _ in range(READER_THREADS)
        ]
        for worker in self._threads:
            worker.thread.start()

    async def close(self) -> None:
        self._writes.put(None)
        for _ in range(READER_THREADS):
            self._reads.put(None)
        for worker in self._threads:
            await asyncio.to_thread(worker.thread.join, 10)
        self._threads = []
        self.engine.dispose()

    async def read(self, operation: Operation[T]) -> T:
        job = _Job(operation, asyncio.get_running_loop())
        self._reads.put(job)
        return await job.future  # type: ignore[no-any-return]

    async def write(self, operation: Operation[T]) -> T:
        job = _Job(operation, asyncio.get_running_loop())
        self._writes.put(job)
        return await job.future  # type: ignore[no-any-return]

    def json_contains(self, column: Any, value: dict[str, Any]) -> sa.ColumnElement[bool]:
        # PostgreSQL's `@>` semantics: nested objects match key by key, a list matches
        # when it holds every element asked for, and JSON types must agree.
        clauses = [_leaf_matches(column, path, leaf) for path, leaf in _leaves(value, "$")]
        return sa.and_(sa.true(), *clauses)

    def insert(self, table: sa.Table) -> Any:
        return sqlite_dialect.insert(table)

    def is_unique_violation(self, exc: BaseException) -> bool:
        orig = getattr(exc, "orig", exc)
        return isinstance(orig, sqlite3.IntegrityError) and "UNIQUE" in str(orig)


def _engine(url: str) -> Engine:
    engine = sa.create_engine(
        url,
        pool_size=READER_THREADS + 2,
        max_overflow=2,
        json_serializer=json_serializer,
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # WAL lets readers run beside the writer; synchronous=NORMAL keeps every
        # commit across a process crash (kill -9) and skips an fsync per commit.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # The writer thread is the only writer in this process; IMMEDIATE still takes
        # the lock up front so a read-then-write cannot be overtaken by another process
        # (a migration tool, say) between the two.
        conn.exec_driver_sql(
            "BEGIN IMMEDIATE" if threading.current_thread().name.endswith("writer") else "BEGIN"
        )

    return engine


def _leaves(value: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, leaf in value.items():
        path = f'{prefix}."{key.replace(chr(34), "")}"'
        if isinstance(leaf, dict) and leaf:
            out.extend(_leaves(leaf, path))
        else:
            out.append((path, leaf))
    return out


def _typed_equals(value_col: Any, type_col: Any, leaf: Any) -> sa.ColumnElement[bool]:
    if leaf is None:
        return type_col == "null"  # type: ignore[no-any-return]
    if isinstance(leaf, bool):
        return type_col == ("true" if leaf else "false")  # type: ignore[no-any-return]
    if isinstance(leaf, int | float):
        return sa.and_(type_col.in_(("integer", "real")), value_col == leaf)
    if isinstance(leaf, str):
        return sa.and_(type_col == "text", value_col == leaf)
    # Objects and lists inside lists compare as canonical JSON text.
    return sa.and_(
        type_col.in_(("object", "array")),
        sa.func.json(value_col) == sa.func.json(json_serializer(leaf)),
    )


def _leaf_matches(column: Any, path: str, leaf: Any) -> sa.ColumnElement[bool]:
    if isinstance(leaf, dict):  # an empty object matches any object
        return sa.func.json_type(column, path) == "object"
    if isinstance(leaf, list):
        clauses = [sa.func.json_type(column, path) == "array"]
        for element in leaf:
            items = sa.func.json_each(column, path).table_valued("value", "type")
            clauses.append(
                sa.exists()
                .select_from(items)
                .where(_typed_equals(items.c.value, items.c.type, element))
            )
        return sa.and_(*clauses)
    return _typed_equals(sa.func.json_extract(column, path), sa.func.json_type(column, path), leaf)
