"""PostgreSQL through psycopg 3: the distributed backend."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import create_async_engine

from berth.storage.dialects.base import Dialect, Operation, T, json_serializer


class PostgresDialect(Dialect):
    name = "postgresql"

    def __init__(self, uri: str) -> None:
        rest = uri.split("://", 1)[1]
        self.engine = create_async_engine(
            "postgresql+psycopg://" + rest,
            pool_size=20,
            max_overflow=10,
            json_serializer=json_serializer,
            json_deserializer=orjson.loads,
        )
        # Reads skip BEGIN and ROLLBACK: two round trips each. Under READ COMMITTED
        # every statement takes its own snapshot inside a transaction too, so a
        # read-only operation sees the same either way.
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        await self.engine.dispose()

    async def read(self, operation: Operation[T]) -> T:
        async with self._reader.connect() as conn:
            return await conn.run_sync(operation)

    async def write(self, operation: Operation[T]) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(operation)

    def json_contains(self, column: Any, value: dict[str, Any]) -> sa.ColumnElement[bool]:
        clause: sa.ColumnElement[bool] = column.op("@>")(sa.bindparam(None, value, type_=JSONB))
        return clause

    def insert(self, table: sa.Table) -> Any:
        return postgresql_dialect.insert(table)

    def is_unique_violation(self, exc: BaseException) -> bool:
        orig = getattr(exc, "orig", exc)
        return isinstance(orig, psycopg.errors.UniqueViolation)
