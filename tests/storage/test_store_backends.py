"""`open_store` on SQLite and PostgreSQL: the same behaviour through LangGraph's stores.

These run the store directly (no server) so the time-based checks stay short: TTLs are
a few seconds, written as fractions of a minute.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
import pytest

from berth.core import errors
from berth.storage.store import open_store

GRAPHS = Path(__file__).parent.parent / "graphs"
INDEX = {"embed": "./embed.py:embed", "dims": 27, "fields": ["text"]}

pytestmark = pytest.mark.anyio


def _vector_available(uri: str) -> bool:
    with psycopg.connect(uri) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        return row.fetchone() is not None


async def test_update_keeps_created_at_and_moves_updated_at(storage_uri: str) -> None:
    async with open_store(storage_uri, {}, GRAPHS) as store:
        await store.aput(("users", "u1"), "prefs", {"theme": "dark"})
        first = await store.aget(("users", "u1"), "prefs")
        await asyncio.sleep(1.1)  # SQLite timestamps have one-second resolution
        await store.aput(("users", "u1"), "prefs", {"theme": "light"})
        second = await store.aget(("users", "u1"), "prefs")
    assert first is not None and second is not None
    assert second.value == {"theme": "light"}
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at


async def test_expired_items_are_never_read(storage_uri: str) -> None:
    async with open_store(storage_uri, {}, GRAPHS) as store:
        await store.aput(("ttl", "a"), "short", {"v": 1}, ttl=0.02)  # 1.2 s
        await store.aput(("ttl", "b"), "forever", {"v": 2})
        assert (await store.aget(("ttl", "a"), "short")) is not None
        await asyncio.sleep(2.5)
        assert await store.aget(("ttl", "a"), "short") is None
        found = await store.asearch(("ttl",))
        assert [(i.namespace, i.key) for i in found] == [(("ttl", "b"), "forever")]
        assert await store.alist_namespaces(prefix=("ttl",)) == [("ttl", "b")]


async def test_refresh_ttl_follows_the_request(storage_uri: str) -> None:
    """With `refresh_on_read` off, only reads that ask for it extend an item's life."""
    config = {"ttl": {"refresh_on_read": False}}
    async with open_store(storage_uri, config, GRAPHS) as store:
        items = [(("get",), "asked"), (("get",), "not"), (("s1",), "x"), (("s2",), "x")]
        for ns, key in items:
            await store.aput(ns, key, {"k": key}, ttl=0.1)  # 6 s
        await asyncio.sleep(4)
        assert await store.aget(("get",), "asked", refresh_ttl=True) is not None
        assert await store.aget(("get",), "not") is not None  # default: no refresh
        assert len(await store.asearch(("s1",), refresh_ttl=True)) == 1
        assert len(await store.asearch(("s2",))) == 1
        await asyncio.sleep(3.5)  # past the first 6 s, well before the refreshed ones
        assert await store.aget(("get",), "asked", refresh_ttl=False) is not None
        assert await store.aget(("get",), "not") is None
        assert len(await store.asearch(("s1",), refresh_ttl=False)) == 1
        assert await store.asearch(("s2",)) == []


async def test_default_ttl_applies_when_put_gives_none(storage_uri: str) -> None:
    config = {"ttl": {"default_ttl": 0.02}}
    async with open_store(storage_uri, config, GRAPHS) as store:
        await store.aput(("d",), "defaulted", {"v": 1})
        await store.aput(("d",), "never", {"v": 2}, ttl=None)
        await asyncio.sleep(2.5)
        assert await store.aget(("d",), "defaulted", refresh_ttl=False) is None
        assert await store.aget(("d",), "never") is not None


async def test_filters_compare_numbers_numerically(storage_uri: str) -> None:
    async with open_store(storage_uri, {}, GRAPHS) as store:
        for key, n in (("one", 1), ("nine", 9), ("ten", 10)):
            await store.aput(("f",), key, {"n": n, "kind": "odd" if n % 2 else "even"})
        await store.aput(("f",), "text", {"n": "zzz", "kind": "text"})

        async def keys(flt: dict[str, Any]) -> set[str]:
            return {i.key for i in await store.asearch(("f",), filter=flt)}

        assert await keys({"n": {"$gt": 5}}) == {"nine", "ten"}
        assert await keys({"n": {"$lt": 10}}) == {"one", "nine"}
        assert await keys({"n": {"$gte": 9, "$lte": 9}}) == {"nine"}
        assert await keys({"n": 10}) == {"ten"}
        assert await keys({"kind": {"$ne": "odd"}}) == {"ten", "text"}
        assert await keys({"kind": "odd", "n": {"$gt": 1}}) == {"nine"}


async def test_pages_are_stable_when_timestamps_tie(storage_uri: str) -> None:
    async with open_store(storage_uri, {}, GRAPHS) as store:
        await store.abatch(
            [_put(("p",), f"k{i}", {"i": i}) for i in range(7)]  # one statement, one instant
        )
        pages = [await store.asearch(("p",), limit=3, offset=o) for o in (0, 3, 6)]
    seen = [item.key for page in pages for item in page]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(seen) == [f"k{i}" for i in range(7)]


def _put(namespace: tuple[str, ...], key: str, value: dict[str, Any]) -> Any:
    from langgraph.store.base import PutOp

    return PutOp(namespace, key, value)


async def test_semantic_search_ranks_by_embedding(storage_uri: str) -> None:
    """Bag-of-letters embeddings: the closest letters rank first; `index=False` is unranked.

    A PostgreSQL server without pgvector keeps the store working but refuses `query`
    search with a clear configuration error instead.
    """
    no_vector = storage_uri.startswith("postgresql") and not _vector_available(storage_uri)
    async with open_store(storage_uri, {"index": INDEX}, GRAPHS) as store:
        await store.aput(("docs",), "a", {"text": "aaaa"})
        await store.aput(("docs",), "z", {"text": "zzzz"})
        await store.aput(("docs",), "az", {"text": "aazz zz"})
        await store.aput(("docs",), "hidden", {"text": "zzzz"}, index=False)
        assert len(await store.asearch(("docs",))) == 4
        if no_vector:
            with pytest.raises(errors.ConfigError, match="pgvector"):
                await store.asearch(("docs",), query="zzz")
            return
        found = await store.asearch(("docs",), query="zzz")
    assert [i.key for i in found] == ["z", "az", "a"]
    scores = [i.score for i in found]
    assert all(isinstance(s, float) for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert scores[0] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"index": {"embed": "./embed.py:embed"}}, "dims"),
        ({"index": {"dims": 3}}, "embed"),
        ({"index": {"embed": "./missing.py:embed", "dims": 3}}, "not found"),
        ({"index": {"embed": "./embed.py:nothing", "dims": 3}}, "no attribute"),
        ({"index": {"embed": "./embed.py:embed", "dims": 3, "fields": "text"}}, "fields"),
        ({"ttl": {"default_ttl": -1}}, "default_ttl"),
        ({"ttl": {"sweep_interval_minutes": "often"}}, "sweep_interval_minutes"),
        ({"ttl": 5}, "store.ttl"),
    ],
)
async def test_bad_store_config_is_a_config_error(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        async with open_store(f"sqlite:///{tmp_path / 'store.db'}", config, GRAPHS):
            pass
