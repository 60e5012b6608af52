"""Sorting for the search endpoints."""

from __future__ import annotations

import sqlalchemy as sa

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
