"""The database: transactions run by the dialect, plus the small dialect hooks."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from berth.storage.dialects import base as dialect_base
from berth.storage.dialects.base import Operation, T


class Database:
    """Berth's database: read and write transactions, plus dialect hooks.

    Args:
        uri: `postgresql://…` or `sqlite:///path`.
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

    async def read(self, operation: Operation[T]) -> T:
        """Run `operation(conn)` in a read transaction and return its result."""
        return await self.dialect.read(operation)

    async def write(self, operation: Operation[T]) -> T:
        """Run `operation(conn)` in a write transaction; committed when this returns."""
        return await self.dialect.write(operation)

    async def migrate(self) -> None:
        from berth.storage import migrations

        await self.write(migrations.upgrade)

    def contains(self, column: Any, value: dict[str, Any]) -> sa.ColumnElement[bool]:
        """`column` (JSON) holds every key/value of `value`, as PostgreSQL's `@>`."""
        return self.dialect.json_contains(column, value)

    def insert(self, table: sa.Table) -> Any:
        return self.dialect.insert(table)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return self.dialect.is_unique_violation(exc)
