"""The store on PostgreSQL: LangGraph's `AsyncPostgresStore`, made to agree with SQLite.

See `berth.storage.store` for what the subclass changes and why. A module of its own so
an embedded server never imports psycopg or LangGraph's PostgreSQL store.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import psycopg
from langgraph.store.base import Op, Result, SearchOp
from langgraph.store.postgres.aio import AsyncPostgresStore

from berth.core import errors
from berth.storage.store import RANGE_OPS, tie_break

log = logging.getLogger("berth.store")


class PostgresStore(AsyncPostgresStore):
    #: why `query` search is off although `store.index` is configured, if it is
    semantic_unavailable: str | None = None

    async def setup(self) -> None:
        await super().setup()
        # LangGraph declares `ttl_minutes INT`, so a refresh of a 1.5-minute TTL gives
        # 1 minute and of a 0.5-minute one expires the item at once; TTLs are floats.
        async with self._cursor() as cur:
            await cur.execute(
                "SELECT data_type FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = 'store' AND column_name = 'ttl_minutes'"
            )
            row = await cur.fetchone()
            if row is not None and row["data_type"] == "integer":
                await cur.execute(
                    "ALTER TABLE store ALTER COLUMN ttl_minutes TYPE double precision"
                )

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        if self.semantic_unavailable and any(isinstance(op, SearchOp) and op.query for op in ops):
            raise errors.ConfigError(self.semantic_unavailable)
        return await super().abatch(ops)

    def _prepare_batch_search_queries(self, search_ops: Any) -> Any:
        queries, embedding_requests = super()._prepare_batch_search_queries(search_ops)
        return [
            (tie_break(query, "ORDER BY store.updated_at DESC", "store.prefix, store.key"), params)
            for query, params in queries
        ], embedding_requests

    def _get_filter_condition(self, key: str, op: str, value: Any) -> tuple[str, list[Any]]:
        # LangGraph compares `value->>key` as text here, so 10 < 9; compare as jsonb
        # (numbers numerically, like the SQLite store), and only values of the same type.
        sql_op = RANGE_OPS.get(op)
        if sql_op is None:
            return super()._get_filter_condition(key, op, value)
        return (
            f"(jsonb_typeof(value->%s) = jsonb_typeof(%s::jsonb) AND value->%s {sql_op} %s::jsonb)",
            [key, json.dumps(value), key, json.dumps(value)],
        )


async def _pgvector_missing(uri: str) -> bool:
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
            " UNION ALL SELECT 1 FROM pg_extension WHERE extname = 'vector'"
        )
        return await cur.fetchone() is None


@contextlib.asynccontextmanager
async def open_postgres_store(
    database_url: str, index: dict[str, Any] | None, ttl: dict[str, Any]
) -> AsyncIterator[PostgresStore]:
    uri = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    unavailable = None
    if index and await _pgvector_missing(uri):
        unavailable = (
            "Semantic search (query) is unavailable: store.index is configured but the "
            "PostgreSQL server lacks the pgvector extension ('vector'); install it "
            "(Debian: postgresql-<version>-pgvector) and restart"
        )
        log.warning("%s; serving the store without vector search", unavailable)
        index = None
    async with PostgresStore.from_conn_string(
        uri,
        pool_config={"min_size": 1, "max_size": 10},
        index=index,  # type: ignore[arg-type]
        ttl=ttl,  # type: ignore[arg-type]
    ) as pg_store:
        assert isinstance(pg_store, PostgresStore)
        pg_store.semantic_unavailable = unavailable
        await pg_store.setup()
        yield pg_store
