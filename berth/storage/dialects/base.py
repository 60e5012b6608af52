"""The dialect hook interface and the URI → dialect choice."""

from __future__ import annotations

import abc
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from berth import serde


class Dialect(abc.ABC):
    name: str
    read_engine: AsyncEngine
    write_engine: AsyncEngine

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the database for use (create folders, check the connection)."""

    async def close(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()

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
