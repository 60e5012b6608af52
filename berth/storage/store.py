"""The cross-thread store, through LangGraph's own store implementations.

`AsyncSqliteStore` and `AsyncPostgresStore` already implement namespaces, filters, TTLs
and vector search on the two databases Berth runs on, and graph nodes expect exactly
their semantics; they keep their own tables beside ours and their own connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore

from berth.core import errors
from berth.graphs import load_object


def _index(config: dict[str, Any] | None, root: Path) -> dict[str, Any] | None:
    if not config:
        return None
    index = dict(config)
    embed = index.get("embed")
    # "./embed.py:fn" and "package.module:fn" are ours to import; "openai:text-embedding-3-small"
    # (a provider, no dot or slash) is left for LangChain's init_embeddings.
    if isinstance(embed, str) and ":" in embed:
        location = embed.rsplit(":", 1)[0]
        if location.endswith(".py") or "/" in location or "." in location:
            index["embed"] = load_object(root, embed, "store embeddings")
    if "dims" not in index:
        raise errors.ConfigError("store.index needs 'dims' (the embedding size)")
    return index


def _ttl(config: dict[str, Any] | None) -> dict[str, Any] | None:
    return dict(config) if config else None


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
        from langgraph.store.sqlite.aio import AsyncSqliteStore

        path = database_url.split("///", 1)[1]
        async with aiosqlite.connect(path, isolation_level=None) as conn:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA busy_timeout=10000")
            store = AsyncSqliteStore(conn, index=index, ttl=ttl)  # type: ignore[arg-type]
            await store.setup()
            async with _sweeping(store, ttl):
                yield store
    else:
        from langgraph.store.postgres.aio import AsyncPostgresStore

        uri = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        async with AsyncPostgresStore.from_conn_string(
            uri,
            pool_config={"min_size": 1, "max_size": 10},
            index=index,  # type: ignore[arg-type]
            ttl=ttl,  # type: ignore[arg-type]
        ) as store:
            await store.setup()
            async with _sweeping(store, ttl):
                yield store


@contextlib.asynccontextmanager
async def _sweeping(store: Any, ttl: dict[str, Any] | None) -> AsyncIterator[None]:
    if ttl:
        await store.start_ttl_sweeper()
    try:
        yield
    finally:
        if ttl:
            await store.stop_ttl_sweeper()
