"""The cross-thread store, through LangGraph's own store implementations.

`AsyncSqliteStore` and `AsyncPostgresStore` already implement namespaces, filters, TTLs
and vector search on the two databases Berth runs on, and graph nodes expect exactly
their semantics; they keep their own tables beside ours and their own connection.

The two differ in places the API makes visible, so the thin subclasses here make them
agree (tests/storage/test_store_backends.py runs the same checks on both):

* expired items are never read back (PostgreSQL filters them, SQLite only swept them);
* an update keeps the item's `created_at` (SQLite's `INSERT OR REPLACE` reset it);
* an explicit `refresh_ttl=True` refreshes even with `refresh_on_read` off (SQLite
  ignored it), and fractional TTLs survive a refresh (PostgreSQL stored `INT` minutes);
* range filters compare numbers as numbers and only like types (PostgreSQL compared
  text, so 10 < 9; SQLite cast "abc" to 0);
* search pages are ordered by `updated_at` then namespace and key, so ties cannot
  repeat or skip items between pages;
* `store.index.fields` is honoured on SQLite (its store reads `text_fields`).

Vector search needs sqlite-vec (SQLite) or pgvector (PostgreSQL). A Python that cannot
load SQLite extensions gets the three distance functions in Python; a PostgreSQL server
without pgvector serves the store but refuses `query` search with a `ConfigError`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
from array import array
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore, GetOp, ListNamespacesOp, Op, Result, SearchOp
from langgraph.store.sqlite.aio import AsyncSqliteStore

from berth.core import errors
from berth.graphs import load_object

log = logging.getLogger("berth.store")

_READS = (GetOp, SearchOp, ListNamespacesOp)
RANGE_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}

#: what LangGraph's SQLite store writes for every put; rewritten into an upsert
_SQLITE_REPLACE = (
    "INSERT OR REPLACE INTO store (prefix, key, value, created_at, updated_at, "
    "expires_at, ttl_minutes)"
)
_SQLITE_UPSERT_TAIL = """
    ON CONFLICT (prefix, key) DO UPDATE SET
        value = excluded.value,
        updated_at = excluded.updated_at,
        expires_at = excluded.expires_at,
        ttl_minutes = excluded.ttl_minutes
"""


def _index(config: dict[str, Any] | None, root: Path) -> dict[str, Any] | None:
    if not config:
        return None
    if not isinstance(config, dict):
        raise errors.ConfigError("store.index must be an object {embed, dims, fields}")
    index = dict(config)
    embed = index.get("embed")
    if not embed:
        raise errors.ConfigError("store.index needs 'embed' (e.g. './embed.py:embed')")
    # "./embed.py:fn" and "package.module:fn" are ours to import; "openai:text-embedding-3-small"
    # (a provider, no dot or slash) is left for LangChain's init_embeddings.
    if isinstance(embed, str) and ":" in embed:
        location = embed.rsplit(":", 1)[0]
        if location.endswith(".py") or "/" in location or "." in location:
            index["embed"] = load_object(root, embed, "store embeddings")
    dims = index.get("dims")
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
        raise errors.ConfigError("store.index needs 'dims', the embedding size (an integer)")
    fields = index.get("fields")
    if fields is not None and (
        not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)
    ):
        raise errors.ConfigError("store.index.fields must be a list of JSON paths")
    return index


def _ttl(config: dict[str, Any] | None) -> dict[str, Any]:
    """LangGraph's TTL config, always present so both backends behave alike.

    With no `store.ttl` LangGraph defaults to refreshing on read; say so explicitly,
    since the SQLite store reads a missing `refresh_on_read` as false.
    """
    if config is not None and not isinstance(config, dict):
        raise errors.ConfigError("store.ttl must be an object")
    ttl = dict(config or {})
    for name in ("default_ttl", "sweep_interval_minutes"):
        value = ttl.get(name)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or value <= 0
        ):
            raise errors.ConfigError(f"store.ttl.{name} must be a positive number of minutes")
    ttl["refresh_on_read"] = bool(ttl.get("refresh_on_read", True))
    ttl["omit_expired"] = True  # PostgreSQL: filter expired rows the sweeper has not reached
    return ttl


def _vectors(a: bytes, b: bytes) -> tuple[array[float], array[float]]:
    x, y = array("f"), array("f")
    x.frombytes(a)
    y.frombytes(b)
    if len(x) != len(y):
        raise ValueError(f"vector sizes differ: {len(x)} and {len(y)}")
    return x, y


def _cosine_distance(a: bytes, b: bytes) -> float:
    x, y = _vectors(a, b)
    norms = math.sqrt(sum(v * v for v in x)) * math.sqrt(sum(v * v for v in y))
    return 1.0 - (sum(p * q for p, q in zip(x, y, strict=True)) / norms if norms else 0.0)


def _l2_distance(a: bytes, b: bytes) -> float:
    x, y = _vectors(a, b)
    return math.sqrt(sum((p - q) ** 2 for p, q in zip(x, y, strict=True)))


def _l1_distance(a: bytes, b: bytes) -> float:
    x, y = _vectors(a, b)
    return sum(abs(p - q) for p, q in zip(x, y, strict=True))


async def _noop(*_: Any) -> None:
    return None


class _SqliteStore(AsyncSqliteStore):
    async def setup(self) -> None:
        if self.index_config and not hasattr(sqlite3.Connection, "enable_load_extension"):
            # This Python's sqlite3 cannot load sqlite-vec (built without extension
            # support, as pyenv builds often are). The store only needs its three
            # distance functions, so provide them in Python (a linear scan per query)
            # and make the store's extension loading a no-op on this connection.
            log.info("sqlite3 cannot load extensions; store vector search runs in Python")
            for name, fn in (
                ("vec_distance_cosine", _cosine_distance),
                ("vec_distance_L2", _l2_distance),
                ("vec_distance_L1", _l1_distance),
            ):
                await self.conn.create_function(name, 2, fn, deterministic=True)
            self.conn.enable_load_extension = _noop  # type: ignore[method-assign,assignment]
            self.conn.load_extension = _noop  # type: ignore[method-assign,assignment]
        await super().setup()

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        if any(isinstance(op, _READS) for op in ops):
            await self._drop_expired()
        return await super().abatch(ops)

    async def _drop_expired(self) -> None:
        # A read first: the common case (nothing expired) must not take the write lock.
        async with self._cursor(transaction=False) as cur:
            await cur.execute(
                "SELECT 1 FROM store WHERE expires_at IS NOT NULL"
                " AND expires_at < CURRENT_TIMESTAMP LIMIT 1"
            )
            if await cur.fetchone() is None:
                return
        async with self._cursor() as cur:
            if self.index_config:
                await cur.execute(
                    "DELETE FROM store_vectors WHERE (prefix, key) IN (SELECT prefix, key"
                    " FROM store WHERE expires_at IS NOT NULL"
                    " AND expires_at < CURRENT_TIMESTAMP)"
                )
            await cur.execute(
                "DELETE FROM store WHERE expires_at IS NOT NULL AND expires_at < CURRENT_TIMESTAMP"
            )

    def _prepare_batch_PUT_queries(self, put_ops: Any) -> Any:
        queries, embedding_request = super()._prepare_batch_PUT_queries(put_ops)
        fixed = []
        for query, params in queries:
            text = " ".join(query.split())
            if text.startswith(_SQLITE_REPLACE):
                query = "INSERT" + text[len("INSERT OR REPLACE") :] + _SQLITE_UPSERT_TAIL
            fixed.append((query, params))
        return fixed, embedding_request

    def _get_batch_GET_ops_queries(self, get_ops: Any) -> Any:
        with self._refresh_as_asked():
            return super()._get_batch_GET_ops_queries(get_ops)

    def _prepare_batch_search_queries(self, search_ops: Any) -> Any:
        with self._refresh_as_asked():
            queries, embedding_requests = super()._prepare_batch_search_queries(search_ops)
        # Items written in the same second tie on updated_at; break ties so pages are stable.
        return [
            (tie_break(query, "ORDER BY updated_at DESC", "prefix, key"), params, refresh)
            for query, params, refresh in queries
        ], embedding_requests

    @contextlib.contextmanager
    def _refresh_as_asked(self) -> Iterator[None]:
        # The SQLite store refreshes only when `refresh_on_read` is set, whatever the op
        # asks; the op's flag already carries that default (BaseStore resolved it).
        configured = self.ttl_config
        self.ttl_config = {**(configured or {}), "refresh_on_read": True}
        try:
            yield
        finally:
            self.ttl_config = configured

    def _get_filter_condition(self, key: str, op: str, value: Any) -> tuple[str, list[Any]]:
        condition, params = super()._get_filter_condition(key, op, value)  # validates `key`
        if op in RANGE_OPS and not isinstance(value, bool):
            # SQLite casts a non-number to 0 (so "abc" < 10); compare like types only.
            if isinstance(value, int | float):
                condition = f"(json_type(value, '$.{key}') IN ('integer', 'real') AND {condition})"
            elif isinstance(value, str):
                condition = f"(json_type(value, '$.{key}') = 'text' AND {condition})"
        return condition, params


def tie_break(query: str, order_by: str, columns: str) -> str:
    return query.replace(order_by, f"{order_by}, {columns}", 1)


@contextlib.asynccontextmanager
async def open_store(
    database_url: str, config: dict[str, Any], root: Path
) -> AsyncIterator[BaseStore]:
    """Open the store on the same database as the rest of Berth.

    Args:
        config: `langgraph.json`'s `store` section (`index`, `ttl`).
        root: the project folder, for `./embed.py:fn` paths.
    """
    index = _index(config.get("index"), root)
    ttl = _ttl(config.get("ttl"))
    if database_url.startswith("sqlite"):
        import aiosqlite

        path = database_url.split("///", 1)[1]
        async with aiosqlite.connect(path, isolation_level=None) as conn:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA busy_timeout=10000")
            if index and index.get("fields"):
                # LangGraph's SQLite store reads the paths to embed from `text_fields`.
                index = {**index, "text_fields": index["fields"]}
            store = _SqliteStore(conn, index=index, ttl=ttl)  # type: ignore[arg-type]
            await store.setup()
            async with _sweeping(store):
                yield store
        return
    # Imported here: psycopg and LangGraph's PostgreSQL store weigh ~25 MiB of memory
    # that an embedded server never uses.
    from berth.storage.store_postgres import open_postgres_store

    async with open_postgres_store(database_url, index, ttl) as pg_store, _sweeping(pg_store):
        yield pg_store


@contextlib.asynccontextmanager
async def _sweeping(store: Any) -> AsyncIterator[None]:
    # Reads never see expired items either way; the sweeper reclaims their space.
    await store.start_ttl_sweeper()
    try:
        yield
    finally:
        await store.stop_ttl_sweeper()


__all__ = ["open_store"]
