"""Sorting and paging for the search endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from berth.core import errors


def order_by(
    table: sa.Table, sort_by: str, sort_order: str, allowed: set[str]
) -> list[sa.UnaryExpression[object]]:
    if sort_by not in allowed:
        raise errors.InvalidInput(f"sort_by must be one of {sorted(allowed)}, not {sort_by!r}")
    column = table.c[sort_by]
    primary = column.asc() if sort_order.lower() == "asc" else column.desc()
    # A stable tie-break so pagination never repeats or skips a row.
    key = table.primary_key.columns.values()[0]
    return [primary, key.asc() if sort_order.lower() == "asc" else key.desc()]


def page(
    conn: Connection,
    table: sa.Table,
    where: Sequence[sa.ColumnElement[bool]],
    order: Sequence[sa.UnaryExpression[object]],
    *,
    limit: int,
    offset: int,
) -> tuple[Sequence[Any], int]:
    """One page of `table`'s rows matching `where`, and how many match in all."""
    rows = conn.execute(
        sa.select(table).where(*where).order_by(*order).limit(limit).offset(offset)
    ).all()
    total = conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where))
    return rows, int(total or 0)
