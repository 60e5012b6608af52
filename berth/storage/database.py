"""The engine and its transactions; dialect differences live in `dialects/`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from berth.storage.dialects import base as dialect_base


class Database:
    """A connection to Berth's database: read and write transactions, plus dialect hooks.

    Args:
        uri: `postgresql://…` or `sqlite:///path`; the async driver is chosen here.
    """

    def __init__(self, uri: str) -> None:
        self.dialect = dialect_base.for_uri(uri)

    @property
    def name(self) -> str:
        return self.dialect.name

    async def open(self) -> None:
        await self.dialect.open()

    async def close(self) -> None:
        await self.dialect.close()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.dialect.read_engine.connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self.dialect.write_engine.begin() as conn:
            yield conn

    async def migrate(self) -> None:
        from berth.storage import migrations

        async with self.dialect.write_engine.begin() as conn:
            await conn.run_sync(migrations.upgrade)

    def contains(self, column: Any, value: dict[str, Any]) -> sa.ColumnElement[bool]:
        """`column` (JSON) holds every key/value of `value`, nested dicts included."""
        return self.dialect.json_contains(column, value)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return self.dialect.is_unique_violation(exc)
