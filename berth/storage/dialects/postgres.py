"""PostgreSQL through psycopg 3: the distributed backend."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import create_async_engine

from berth.storage.dialects.base import Dialect, json_serializer


class PostgresDialect(Dialect):
    name = "postgresql"

    def __init__(self, uri: str) -> None:
        rest = uri.split("://", 1)[1]
        url = "postgresql+psycopg://" + rest
        self.write_engine = create_async_engine(
            url,
            pool_size=20,
            max_overflow=10,
            pool_pre_ping=False,
            json_serializer=json_serializer,
            json_deserializer=orjson.loads,
        )
        self.read_engine = self.write_engine

    def json_contains(self, column: Any, value: dict[str, Any]) -> sa.ColumnElement[bool]:
        return column.op("@>")(sa.bindparam(None, value, type_=JSONB))

    def insert(self, table: sa.Table) -> Any:
        return postgresql_dialect.insert(table)

    def is_unique_violation(self, exc: BaseException) -> bool:
        orig = getattr(exc, "orig", exc)
        return isinstance(orig, psycopg.errors.UniqueViolation)
