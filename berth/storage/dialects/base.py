"""The dialect hook interface and the URI → dialect choice.

Stores express each operation as a plain function of a SQLAlchemy `Connection`, run
as one transaction by `read()` or `write()`. The dialect decides where it runs: SQLite
runs it whole on a thread that owns a connection (one thread hop per transaction, not
per statement); PostgreSQL runs it on the async driver through SQLAlchemy's greenlet
bridge.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from berth import serde

T = TypeVar("T")

#: an operation on the database: runs inside one transaction
Operation = Callable[[Connection], T]


class Dialect(abc.ABC):
    name: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Prepare the database for use (create folders, start threads)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def read(self, operation: Operation[T]) -> T:
        """Run `operation` in a read transaction (a consistent snapshot)."""

    @abc.abstractmethod
    async def write(self, operation: Operation[T]) -> T:
        """Run `operation` in a write transaction, committed before this returns."""

    @abc.abstractmethod
    def json_contains(self, column: Any, value: dict[str, Any]) -> sa.ColumnElement[bool]: ...

    @abc.abstractmethod
    def is_unique_violation(self, exc: BaseException) -> bool: ...

    @abc.abstractmethod
    def insert(self, table: sa.Table) -> Any:
        """An INSERT that supports `on_conflict_do_update` / `on_conflict_do_nothing`."""


def json_serializer(value: Any) -> str:
    return orjson.dumps(value, default=serde.default).decode()


def for_uri(uri: str) -> Dialect:
    if uri.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from berth.storage.dialects.postgres import PostgresDialect

        return PostgresDialect(uri)
    if uri.startswith("sqlite"):
        from berth.storage.dialects.sqlite import SqliteDialect

        return SqliteDialect(uri)
    raise ValueError(f"unsupported database URI {uri!r}: use postgresql://… or sqlite:///…")
