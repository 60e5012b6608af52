"""`/store`: items, search, namespaces, TTLs and semantic search, on SQLite and PostgreSQL.

Every test runs against a real server on each backend, through the SDK clients (and
httpx for malformed requests); namespaces start with a per-test label so tests sharing
the session server never see each other's items.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import langgraph_sdk
import psycopg
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import APIStatusError

from tests.berth_server import BerthServer
from tests.conftest import StartServer

GRAPHS = Path(__file__).parent.parent / "graphs"
STORE_INDEX = GRAPHS / "store_index" / "langgraph.json"
ITEM_KEYS = {"namespace", "key", "value", "created_at", "updated_at"}


def ns() -> str:
    """A first namespace label unique to one test."""
    return f"t{uuid.uuid4().hex[:12]}"


def moment(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None, text
    return parsed


def _env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URI": str(request.getfixturevalue("pg_database"))}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_server(request: pytest.FixtureRequest, start_server: StartServer) -> BerthServer:
    """A server on each backend with the test graphs and no `store` config."""
    if request.param == "sqlite":
        return request.getfixturevalue("server")  # type: ignore[no-any-return]
    return start_server(env=_env(request))


@pytest.fixture(params=["sqlite", "postgresql"])
def index_server(request: pytest.FixtureRequest, start_server: StartServer) -> BerthServer:
    """A server on each backend for the store_index project (`store.index`, `store.ttl`)."""
    return start_server(env=_env(request), config=STORE_INDEX)


@pytest.fixture
async def sdk(store_server: BerthServer) -> Any:
    client = langgraph_sdk.get_client(url=store_server.url)
    yield client
    await client.aclose()


@pytest.mark.anyio
async def test_put_get_update_delete(sdk: LangGraphClient) -> None:
    root = ns()
    assert await sdk.store.put_item([root, "users"], "prefs", {"theme": "dark"}) is None
    item = await sdk.store.get_item([root, "users"], "prefs")
    assert item is not None and set(item) == ITEM_KEYS
    assert item["namespace"] == [root, "users"]
    assert item["key"] == "prefs"
    assert item["value"] == {"theme": "dark"}
    created, updated = moment(item["created_at"]), moment(item["updated_at"])
    assert created == updated

    await asyncio.sleep(1.1)  # SQLite timestamps have one-second resolution
    await sdk.store.put_item([root, "users"], "prefs", {"theme": "light", "size": 2})
    again = await sdk.store.get_item([root, "users"], "prefs")
    assert again is not None and again["value"] == {"theme": "light", "size": 2}
    assert moment(again["created_at"]) == created
    assert moment(again["updated_at"]) > updated

    assert await sdk.store.get_item([root, "users"], "nope") is None
    assert await sdk.store.get_item([root, "other"], "prefs") is None
    await sdk.store.delete_item([root, "users"], "prefs")
    assert await sdk.store.get_item([root, "users"], "prefs") is None
    await sdk.store.delete_item([root, "users"], "prefs")  # deleting twice is fine


def test_sync_client(store_server: BerthServer) -> None:
    root = ns()
    with langgraph_sdk.get_sync_client(url=store_server.url) as client:
        client.store.put_item([root, "a"], "k1", {"n": 1})
        client.store.put_item([root, "b"], "k2", {"n": 2})
        item = client.store.get_item([root, "a"], "k1")
        assert item is not None and item["value"] == {"n": 1}
        assert client.store.get_item([root, "a"], "k2") is None
        found = client.store.search_items([root], filter={"n": 2})
        assert [(i["namespace"], i["key"]) for i in found["items"]] == [([root, "b"], "k2")]
        listed = client.store.list_namespaces(prefix=[root])
        assert listed == {"namespaces": [[root, "a"], [root, "b"]]}
        client.store.delete_item([root, "a"], "k1")
        assert client.store.get_item([root, "a"], "k1") is None


@pytest.mark.anyio
async def test_search_prefix_filter_and_pages(sdk: LangGraphClient) -> None:
    root = ns()
    fruit = {"apple": 3, "banana": 12, "cherry": 9}
    for name, count in fruit.items():
        await sdk.store.put_item([root, "fruit"], name, {"kind": "fruit", "count": count})
    await sdk.store.put_item([root, "veg"], "leek", {"kind": "veg", "count": 12})
    await sdk.store.put_item([f"{root}x"], "apart", {"kind": "fruit"})  # not under [root]

    everything = await sdk.store.search_items([root])
    assert {i["key"] for i in everything["items"]} == {*fruit, "leek"}
    for found in everything["items"]:
        assert set(found) == ITEM_KEYS | {"score"} and found["score"] is None
        moment(found["created_at"])
    assert len((await sdk.store.search_items([root], limit=2))["items"]) == 2

    async def keys(prefix: list[str], **kwargs: Any) -> set[str]:
        return {i["key"] for i in (await sdk.store.search_items(prefix, **kwargs))["items"]}

    assert await keys([root, "fruit"]) == set(fruit)
    assert await keys([root], filter={"kind": "veg"}) == {"leek"}
    assert await keys([root], filter={"count": 12}) == {"banana", "leek"}
    assert await keys([root], filter={"count": {"$gt": 5}}) == {
        "banana",
        "cherry",
        "leek",
    }
    assert await keys([root], filter={"kind": "fruit", "count": {"$lte": 9}}) == {
        "apple",
        "cherry",
    }
    assert await keys([root], filter={"kind": {"$ne": "fruit"}}) == {"leek"}

    pages = [
        (await sdk.store.search_items([root], limit=3, offset=offset))["items"]
        for offset in (0, 3, 6)
    ]
    assert [len(page) for page in pages] == [3, 1, 0]
    assert sorted(i["key"] for page in pages for i in page) == sorted([*fruit, "leek"])
    newest = pages[0][0]["updated_at"]
    assert all(moment(newest) >= moment(i["updated_at"]) for page in pages for i in page)


@pytest.mark.anyio
async def test_list_namespaces(sdk: LangGraphClient) -> None:
    root = ns()
    for path in (["a", "x"], ["a", "y"], ["b"], ["b", "z", "deep"]):
        await sdk.store.put_item([root, *path], "k", {"v": 1})

    async def listed(**kwargs: Any) -> list[list[str]]:
        reply = await sdk.store.list_namespaces(**kwargs)
        assert set(reply) == {"namespaces"}
        return reply["namespaces"]  # type: ignore[no-any-return]

    everything = [[root, "a", "x"], [root, "a", "y"], [root, "b"], [root, "b", "z", "deep"]]
    assert await listed(prefix=[root]) == everything
    assert await listed(prefix=[root], max_depth=2) == [[root, "a"], [root, "b"]]
    assert await listed(prefix=[root], suffix=["x"]) == [[root, "a", "x"]]
    assert await listed(prefix=[root, "a"]) == [[root, "a", "x"], [root, "a", "y"]]
    assert await listed(prefix=[root], limit=2) == everything[:2]
    assert await listed(prefix=[root], limit=2, offset=2) == everything[2:]
    assert await listed(prefix=[root, "nothing"]) == []
    assert [root, "b"] in await listed(suffix=["b"])


@pytest.mark.anyio
async def test_graph_nodes_share_the_store(sdk: LangGraphClient) -> None:
    """A node's writes show through /store, and /store writes reach the node."""
    user = ns()
    await sdk.store.put_item(["api", user], "from_api", {"said": "hello node"})
    thread = await sdk.threads.create()
    result = await sdk.runs.wait(
        thread["thread_id"], "store_graph", input={"user": user, "note": "hi api"}
    )
    assert isinstance(result, dict)
    assert result["api_value"] == {"said": "hello node"}
    assert result["graph_keys"] == ["from_graph"]
    written = await sdk.store.get_item(["graph", user], "from_graph")
    assert written is not None and written["value"] == {"note": "hi api"}
    listed = await sdk.store.list_namespaces(prefix=["graph", user])
    assert listed["namespaces"] == [["graph", user]]

    other = ns()  # nothing from the API for this user: the node sees None
    result = await sdk.runs.wait(None, "store_graph", input={"user": other, "note": "x"})
    assert isinstance(result, dict) and result["api_value"] is None


BAD_REQUESTS: list[tuple[str, str, Any]] = [
    ("PUT", "/store/items", {"namespace": ["a", ""], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a.b"], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": [], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": "a", "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": [1, 2], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": [1, 2]}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": "text"}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a"], "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k"}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": -1}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "index": True}),
    ("PUT", "/store/items", "not json"),
    ("GET", "/store/items?namespace=a.b", None),
    ("GET", "/store/items?namespace=a..b&key=k", None),
    ("GET", "/store/items?key=k", None),
    ("GET", "/store/items?namespace=a&key=k&refresh_ttl=maybe", None),
    ("DELETE", "/store/items", {"namespace": ["a"]}),
    ("DELETE", "/store/items", {"namespace": ["a."], "key": "k"}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a", ""]}),
    ("POST", "/store/items/search", {"namespace_prefix": "a"}),
    ("POST", "/store/items/search", {"filter": {"n": {"$regex": "x"}}}),
    ("POST", "/store/items/search", {"filter": {"a'); DROP TABLE store; --": 1}}),
    ("POST", "/store/items/search", {"filter": {"n": {}}}),
    ("POST", "/store/items/search", {"filter": "n"}),
    ("POST", "/store/items/search", {"limit": 0}),
    ("POST", "/store/items/search", {"offset": -1}),
    ("POST", "/store/namespaces", {"prefix": ["a.b"]}),
    ("POST", "/store/namespaces", {"suffix": [""]}),
    ("POST", "/store/namespaces", {"max_depth": 0}),
    ("POST", "/store/namespaces", {"limit": "many"}),
]


def test_bad_requests_are_clear_4xx(store_server: BerthServer) -> None:
    with httpx.Client(base_url=store_server.url, timeout=10) as http:
        for method, path, body in BAD_REQUESTS:
            if isinstance(body, str):
                reply = http.request(
                    method, path, content=body, headers={"content-type": "application/json"}
                )
            else:
                reply = http.request(method, path, json=body)
            where = f"{method} {path} {body!r}"
            assert reply.status_code == (400 if path.endswith("namespace=a.b") else 422), (
                where,
                reply.text,
            )
            detail = reply.json()["detail"]
            assert isinstance(detail, str) and detail, where
        # The store still answers after all that.
        assert http.get("/store/items", params={"namespace": "a", "key": "k"}).json() is None


def test_bad_namespace_messages_name_the_problem(store_server: BerthServer) -> None:
    with httpx.Client(base_url=store_server.url, timeout=10) as http:
        dot = http.put("/store/items", json={"namespace": ["a.b"], "key": "k", "value": {}})
        empty = http.put("/store/items", json={"namespace": ["a", ""], "key": "k", "value": {}})
        no_key = http.get("/store/items", params={"namespace": "a"})
    assert "'.'" in dot.json()["detail"]
    assert "non-empty" in empty.json()["detail"]
    assert "key" in no_key.json()["detail"]


def _pgvector(berth: BerthServer) -> bool:
    uri = berth.env.get("DATABASE_URI")
    if uri is None:
        return True  # SQLite: vector search always works
    with psycopg.connect(uri) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        return row.fetchone() is not None


@pytest.mark.anyio
async def test_semantic_search(index_server: BerthServer) -> None:
    """store_index embeds `text` by letter counts: the query ranks items by shared letters.

    On PostgreSQL without pgvector the store still serves everything but `query`,
    which is refused with a 400 that says why.
    """
    root = ns()
    client = langgraph_sdk.get_client(url=index_server.url)
    try:
        await client.store.put_item([root, "docs"], "a", {"text": "aaaa", "tag": "x"})
        await client.store.put_item([root, "docs"], "z", {"text": "zzzz", "tag": "y"})
        await client.store.put_item([root, "docs"], "mixed", {"text": "aazz zz", "tag": "y"})
        await client.store.put_item([root, "docs"], "unindexed", {"text": "zzz"}, index=False)
        await client.store.put_item(
            [root, "docs"], "other", {"text": "aaaa", "title": "zzzzzz b"}, index=["title"]
        )
        plain = await client.store.search_items([root])
        assert len(plain["items"]) == 5
        if not _pgvector(index_server):
            with pytest.raises(APIStatusError) as refused:
                await client.store.search_items([root], query="zzz")
            assert refused.value.response.status_code == 400
            assert "pgvector" in refused.value.response.json()["detail"]
            return
        found = (await client.store.search_items([root], query="zzz"))["items"]
        assert [i["key"] for i in found] == ["z", "other", "mixed", "a"]
        scores = [i["score"] for i in found]
        assert scores == sorted(scores, reverse=True)
        assert scores[0] == pytest.approx(1.0, abs=1e-3)
        assert scores[-1] == pytest.approx(0.0, abs=1e-2)
        filtered = await client.store.search_items([root], query="zzz", filter={"tag": "y"})
        assert [i["key"] for i in filtered["items"]] == ["z", "mixed"]
        page = await client.store.search_items([root], query="zzz", limit=2, offset=1)
        assert [i["key"] for i in page["items"]] == ["other", "mixed"]
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_ttl_expiry_and_refresh(index_server: BerthServer) -> None:
    """store_index sets `refresh_on_read`: reads extend TTLs unless `refresh_ttl=False`.

    TTLs are 0.1 minutes (6 s): reads at 4 s push the refreshed items past 9 s, so at
    7.5 s only the items nobody refreshed are gone.
    """
    root = ns()
    client = langgraph_sdk.get_client(url=index_server.url)
    try:
        for label in ("get", "noget", "search", "nosearch"):
            await client.store.put_item([root, label], "k", {"text": label}, ttl=0.1)
        await client.store.put_item([root, "forever"], "k", {"text": "stays"}, ttl=None)
        await asyncio.sleep(4)
        assert await client.store.get_item([root, "get"], "k") is not None
        assert await client.store.get_item([root, "noget"], "k", refresh_ttl=False) is not None
        assert len((await client.store.search_items([root, "search"]))["items"]) == 1
        nosearch = await client.store.search_items([root, "nosearch"], refresh_ttl=False)
        assert len(nosearch["items"]) == 1
        await asyncio.sleep(3.5)

        async def alive(label: str) -> bool:
            item = await client.store.get_item([root, label], "k", refresh_ttl=False)
            return item is not None

        assert {label: await alive(label) for label in ("get", "noget", "search", "nosearch")} == {
            "get": True,
            "noget": False,
            "search": True,
            "nosearch": False,
        }
        assert await alive("forever")
        remaining = await client.store.search_items([root], refresh_ttl=False)
        assert {i["namespace"][1] for i in remaining["items"]} == {"get", "search", "forever"}
        listed = await client.store.list_namespaces(prefix=[root])
        assert listed["namespaces"] == [[root, "forever"], [root, "get"], [root, "search"]]
    finally:
        await client.aclose()


@pytest.fixture(params=["sqlite", "postgresql"])
def default_ttl_server(
    request: pytest.FixtureRequest, start_server: StartServer, tmp_path: Path
) -> BerthServer:
    """A project whose `store.ttl.default_ttl` is 0.03 minutes (1.8 s)."""
    config = tmp_path / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "graphs": {"store_graph": str(GRAPHS / "store_graph.py") + ":graph"},
                "store": {"ttl": {"default_ttl": 0.03, "refresh_on_read": False}},
            }
        )
    )
    return start_server(env=_env(request), config=config)


@pytest.mark.anyio
async def test_default_ttl(default_ttl_server: BerthServer) -> None:
    """A put without `ttl` takes the configured default; `ttl: null` never expires."""
    root = ns()
    with httpx.Client(base_url=default_ttl_server.url, timeout=10) as http:
        body = {"namespace": [root], "value": {"v": 1}}
        assert http.put("/store/items", json={**body, "key": "default"}).status_code == 204
        forever = {**body, "key": "forever", "ttl": None}
        assert http.put("/store/items", json=forever).status_code == 204
        longer = {**body, "key": "longer", "ttl": 5}
        assert http.put("/store/items", json=longer).status_code == 204
        await asyncio.sleep(3)
        params = {"namespace": root}
        assert http.get("/store/items", params={**params, "key": "default"}).json() is None
        assert http.get("/store/items", params={**params, "key": "forever"}).json() is not None
        assert http.get("/store/items", params={**params, "key": "longer"}).json() is not None
