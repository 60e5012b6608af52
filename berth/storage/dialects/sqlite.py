"""SQLite: the embedded default, one writer connection and a pool of readers."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from berth.storage.dialects.base import Dialect, json_serializer


class SqliteDialect(Dialect):
    name = "sqlite"

    def __init__(self, uri: str) -> None:
        self.path = uri.split("///", 1)[1] if "///" in uri else ""
        url = "sqlite+aiosqlite:///" + self.path
        # SQLite admits one writer at a time: a single write connection queues writers
        # in the pool instead of letting them spin on SQLITE_BUSY.
        self.write_engine = self._engine(url, pool_size=1, immediate=True)
        self.read_engine = self._engine(url, pool_size=8, immediate=False)

    async def open(self) -> None:
        if self.path and self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _engine(url: str, *, pool_size: int, immediate: bool) -> AsyncEngine:
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            json_serializer=json_serializer,
            json_deserializer=orjson.loads,
        )

        @event.listens_for(engine.sync_engine, "connect")
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

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front, so a read-then-write in one
            # transaction cannot be overtaken by another writer.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def json_contains(self, column: Any, value: dict[str, Any]) -> sa.ColumnElement[bool]:
        clauses: list[sa.ColumnElement[bool]] = []
        for path, leaf in _leaves(value, "$"):
            extracted = sa.func.json_extract(column, path)
            if leaf is None:
                clauses.append(
                    sa.and_(
                        sa.func.json_type(column, path) == "null",
                    )
                )
            elif isinstance(leaf, bool):
                clauses.append(sa.func.json_type(column, path) == ("true" if leaf else "false"))
            elif isinstance(leaf, int | float | str):
                clauses.append(extracted == leaf)
            else:
                # Lists and other values compare as canonical JSON text.
                clauses.append(
                    sa.func.json(sa.func.json_extract(column, path))
                    == sa.func.json(json_serializer(leaf))
                )
        return sa.and_(sa.true(), *clauses)

    def insert(self, table: sa.Table) -> Any:
        return sqlite_dialect.insert(table)

    def is_unique_violation(self, exc: BaseException) -> bool:
        orig = getattr(exc, "orig", exc)
        return isinstance(orig, sqlite3.IntegrityError) and "UNIQUE" in str(orig)


def _leaves(value: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, leaf in value.items():
        path = f'{prefix}."{key.replace(chr(34), "")}"'
        if isinstance(leaf, dict) and leaf:
            out.extend(_leaves(leaf, path))
        else:
            out.append((path, leaf))
    return out
