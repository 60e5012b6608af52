"""`/assistants`: create, read, update, delete, search, versions and graph introspection."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import langgraph_sdk
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)

from tests.berth_server import GRAPHS_CONFIG, BerthServer
from tests.conftest import StartServer
from tests.helpers import tag

ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
ASSISTANT_KEYS = {
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "metadata",
    "version",
    "created_at",
    "updated_at",
}


@pytest.mark.anyio
async def test_create_with_custom_id_and_get(client: LangGraphClient) -> None:
    assistant_id = str(uuid.uuid4())
    created = await client.assistants.create(
        "echo",
        assistant_id=assistant_id,
        name="Echo bot",
        description="replies",
        metadata={"team": "a"},
        context={"model": "x"},
    )
    assert set(created) >= ASSISTANT_KEYS
    assert created["assistant_id"] == assistant_id
    assert created["graph_id"] == "echo"
    assert created["name"] == "Echo bot"
    assert created["description"] == "replies"
    assert created["metadata"] == {"team": "a"}
    assert created["version"] == 1
    # `context` and `config.configurable` are two spellings of one thing.
    assert created["context"] == {"model": "x"}
    assert created["config"]["configurable"] == {"model": "x"}
    fetched = await client.assistants.get(assistant_id)
    assert fetched == created


@pytest.mark.anyio
async def test_create_defaults(client: LangGraphClient) -> None:
    created = await client.assistants.create("echo", config={"configurable": {"k": 1}})
    uuid.UUID(created["assistant_id"])
    assert created["name"] == "Untitled"
    assert created["metadata"] == {}
    assert created["context"] == {"k": 1}


@pytest.mark.anyio
async def test_server_owned_keys_are_dropped(client: LangGraphClient) -> None:
    created = await client.assistants.create(
        "echo",
        context={
            "keep": 1,
            "langgraph_auth_user": "x",
            "langgraph_request_id": "r",
            "__pregel_x__": 1,
        },
    )
    assert created["context"] == {"keep": 1}
    assert created["config"]["configurable"] == {"keep": 1}


@pytest.mark.anyio
async def test_create_if_exists(client: LangGraphClient) -> None:
    assistant_id = str(uuid.uuid4())
    first = await client.assistants.create("echo", assistant_id=assistant_id, name="one")
    with pytest.raises(ConflictError) as exc:
        await client.assistants.create("echo", assistant_id=assistant_id, name="two")
    assert exc.value.status_code == 409
    again = await client.assistants.create(
        "chain10", assistant_id=assistant_id, name="two", if_exists="do_nothing"
    )
    assert again == first


@pytest.mark.anyio
async def test_create_unknown_graph_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.create("no-such-graph")


@pytest.mark.anyio
async def test_create_with_configurable_and_context_is_400(client: LangGraphClient) -> None:
    with pytest.raises(BadRequestError) as exc:
        await client.assistants.create("echo", config={"configurable": {"a": 1}}, context={"b": 2})
    assert "context" in exc.value.response.json()["detail"]


@pytest.mark.anyio
async def test_get_unknown_is_404_and_non_uuid_is_422(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get(str(uuid.uuid4()))
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.get("not-a-uuid")


@pytest.mark.anyio
async def test_default_assistant_by_graph_id(client: LangGraphClient) -> None:
    default_id = str(uuid.uuid5(ASSISTANT_NAMESPACE, "echo"))
    default = await client.assistants.get(default_id)
    assert default["metadata"] == {"created_by": "system"}
    assert default["version"] == 1
    assert default["name"] == "echo"


@pytest.mark.anyio
async def test_update_creates_version_and_merges_metadata(client: LangGraphClient) -> None:
    created = await client.assistants.create(
        "echo", name="v1", metadata={"a": 1, "b": 1}, context={"x": 1}
    )
    assistant_id = created["assistant_id"]
    updated = await client.assistants.update(
        assistant_id, name="v2", metadata={"b": 2, "c": 3}, context={"x": 2}
    )
    assert updated["version"] == 2
    assert updated["name"] == "v2"
    assert updated["metadata"] == {"a": 1, "b": 2, "c": 3}
    assert updated["context"] == {"x": 2}
    assert updated["config"]["configurable"] == {"x": 2}
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] >= created["updated_at"]
    assert await client.assistants.get(assistant_id) == updated

    # An update that does not touch config keeps it.
    renamed = await client.assistants.update(assistant_id, description="d")
    assert renamed["version"] == 3
    assert renamed["context"] == {"x": 2}
    assert renamed["name"] == "v2"

    # Context alone keeps the rest of the config; config alone keeps the context.
    tagged = await client.assistants.update(assistant_id, config={"tags": ["t"]})
    assert tagged["config"] == {"tags": ["t"], "configurable": {"x": 2}}
    assert tagged["context"] == {"x": 2}
    recontext = await client.assistants.update(assistant_id, context={"y": 1})
    assert recontext["config"] == {"tags": ["t"], "configurable": {"y": 1}}
    reconfig = await client.assistants.update(assistant_id, config={"configurable": {"z": 1}})
    assert reconfig["context"] == {"z": 1}
    assert reconfig["version"] == 6
    await client.assistants.set_latest(assistant_id, 3)

    versions = (await client.assistants.get_versions(assistant_id))[3:]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[2]["name"] == "v1"
    assert versions[2]["context"] == {"x": 1}
    assert all("updated_at" not in v for v in versions)
    assert {v["assistant_id"] for v in versions} == {assistant_id}

    limited = await client.assistants.get_versions(assistant_id, limit=2, offset=4)
    assert [v["version"] for v in limited] == [2, 1]
    by_meta = await client.assistants.get_versions(assistant_id, metadata={"c": 3}, limit=100)
    assert [v["version"] for v in by_meta] == [6, 5, 4, 3, 2]


@pytest.mark.anyio
async def test_runs_follow_the_assistants_current_version(client: LangGraphClient) -> None:
    """A run admitted right after a change (update, set_latest) uses the new config."""
    created = await client.assistants.create(
        "factory", config={"configurable": {"model_name": "a"}}
    )
    assistant_id = created["assistant_id"]

    async def reply() -> str:
        result = await client.runs.wait(
            None, assistant_id, input={"messages": [{"role": "user", "content": "hi"}]}
        )
        return str(result["messages"][-1]["content"])

    assert await reply() == "a: echo: hi"
    await client.assistants.update(assistant_id, config={"configurable": {"model_name": "b"}})
    assert await reply() == "b: echo: hi"
    await client.assistants.set_latest(assistant_id, 1)
    assert await reply() == "a: echo: hi"
    await client.assistants.delete(assistant_id)
    with pytest.raises(httpx.HTTPStatusError) as gone:
        await reply()
    assert gone.value.response.status_code == 404


@pytest.mark.anyio
async def test_update_errors(client: LangGraphClient) -> None:
    created = await client.assistants.create("echo")
    with pytest.raises(NotFoundError):
        await client.assistants.update(created["assistant_id"], graph_id="no-such-graph")
    with pytest.raises(NotFoundError):
        await client.assistants.update(str(uuid.uuid4()), name="x")
    with pytest.raises(BadRequestError):
        await client.assistants.update(
            created["assistant_id"], config={"configurable": {"a": 1}}, context={"a": 1}
        )


@pytest.mark.anyio
async def test_set_latest(client: LangGraphClient, server: BerthServer) -> None:
    created = await client.assistants.create("echo", name="first")
    assistant_id = created["assistant_id"]
    await client.assistants.update(assistant_id, name="second")
    latest = await client.assistants.set_latest(assistant_id, 1)
    assert latest["version"] == 1
    assert latest["name"] == "first"
    assert (await client.assistants.get(assistant_id))["name"] == "first"
    # Versions are kept; a later update still gets a fresh number.
    third = await client.assistants.update(assistant_id, name="third")
    assert third["version"] == 3
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(assistant_id, 42)
    # The version travels in a JSON body, not the query string.
    response = httpx.post(f"{server.url}/assistants/{assistant_id}/latest", json={"version": 2})
    assert response.status_code == 200
    assert response.json()["name"] == "second"
    missing_body = httpx.post(f"{server.url}/assistants/{assistant_id}/latest", json={})
    assert missing_body.status_code == 422
    assert "version" in missing_body.json()["detail"]


@pytest.mark.anyio
async def test_versions_of_unknown_assistant_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(str(uuid.uuid4()))


@pytest.mark.anyio
async def test_delete(client: LangGraphClient) -> None:
    created = await client.assistants.create("echo")
    await client.assistants.delete(created["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.get(created["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.delete(created["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(created["assistant_id"])


@pytest.mark.anyio
async def test_delete_with_threads(client: LangGraphClient) -> None:
    doomed = await client.assistants.create("echo")
    kept = await client.assistants.create("echo")
    thread = await client.threads.create()
    other = await client.threads.create()
    await client.runs.wait(
        thread["thread_id"], doomed["assistant_id"], input={"messages": [("user", "hi")]}
    )
    await client.runs.wait(
        other["thread_id"], kept["assistant_id"], input={"messages": [("user", "hi")]}
    )
    assert (await client.threads.get(thread["thread_id"]))["metadata"]["assistant_id"] == (
        doomed["assistant_id"]
    )
    await client.assistants.delete(doomed["assistant_id"], delete_threads=True)
    with pytest.raises(NotFoundError):
        await client.threads.get(thread["thread_id"])
    assert (await client.threads.get(other["thread_id"]))["thread_id"] == other["thread_id"]


@pytest.mark.anyio
async def test_delete_stops_its_runs(client: LangGraphClient) -> None:
    assistant = await client.assistants.create("slow")
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"],
        assistant["assistant_id"],
        input={"steps": []},
        config={"configurable": {"sleep": 1}},
    )
    for _ in range(50):
        if (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "running":
            break
        await asyncio.sleep(0.1)
    await client.assistants.delete(assistant["assistant_id"])
    await client.runs.join(thread["thread_id"], run["run_id"])
    ended = await client.runs.get(thread["thread_id"], run["run_id"])
    assert ended["status"] == "interrupted"
    assert (await client.threads.get(thread["thread_id"]))["status"] != "busy"


@pytest.mark.anyio
async def test_search_filters(client: LangGraphClient) -> None:
    marker = tag()
    a = await client.assistants.create(
        "echo", name="Alpha Helper", metadata={"m": marker, "kind": "x", "nested": {"k": 1}}
    )
    b = await client.assistants.create("chain10", name="beta", metadata={"m": marker})
    c = await client.assistants.create(
        "echo", name="gamma HELPER", metadata={"m": marker, "kind": "y"}
    )
    ids = lambda items: [i["assistant_id"] for i in items]  # noqa: E731

    found = await client.assistants.search(metadata={"m": marker})
    assert ids(found) == [c["assistant_id"], b["assistant_id"], a["assistant_id"]]
    assert ids(await client.assistants.search(metadata={"m": marker, "kind": "x"})) == [
        a["assistant_id"]
    ]
    assert ids(await client.assistants.search(metadata={"m": marker, "nested": {"k": 1}})) == [
        a["assistant_id"]
    ]
    assert ids(await client.assistants.search(metadata={"m": marker}, graph_id="chain10")) == [
        b["assistant_id"]
    ]
    assert ids(await client.assistants.search(metadata={"m": marker}, name="helper")) == [
        c["assistant_id"],
        a["assistant_id"],
    ]
    assert await client.assistants.count(metadata={"m": marker}) == 3
    assert await client.assistants.count(metadata={"m": marker}, graph_id="echo") == 2
    assert await client.assistants.count(metadata={"m": marker}, name="BETA") == 1
    assert await client.assistants.count(metadata={"m": tag()}) == 0


@pytest.mark.anyio
async def test_search_pagination_sort_and_select(
    client: LangGraphClient, server: BerthServer
) -> None:
    marker = tag()
    created = [
        await client.assistants.create("echo", name=name, metadata={"m": marker})
        for name in ("c", "a", "b")
    ]
    page = await client.assistants.search(metadata={"m": marker}, limit=2, offset=1)
    assert [p["assistant_id"] for p in page] == [
        created[1]["assistant_id"],
        created[0]["assistant_id"],
    ]
    by_name = await client.assistants.search(
        metadata={"m": marker}, sort_by="name", sort_order="asc"
    )
    assert [p["name"] for p in by_name] == ["a", "b", "c"]
    oldest_first = await client.assistants.search(
        metadata={"m": marker}, sort_by="created_at", sort_order="asc"
    )
    assert [p["assistant_id"] for p in oldest_first] == [a["assistant_id"] for a in created]
    selected = await client.assistants.search(
        metadata={"m": marker}, select=["assistant_id", "name"]
    )
    assert all(set(s) == {"assistant_id", "name"} for s in selected)

    response = httpx.post(
        f"{server.url}/assistants/search", json={"metadata": {"m": marker}, "limit": 2}
    )
    assert response.status_code == 200
    assert len(response.json()) == 2
    assert response.headers["X-Pagination-Total"] == "3"
    assert response.headers["X-Pagination-Next"] == "2"
    last = httpx.post(
        f"{server.url}/assistants/search",
        json={"metadata": {"m": marker}, "limit": 2, "offset": 2},
    )
    assert len(last.json()) == 1
    assert last.headers["X-Pagination-Total"] == "3"
    assert "X-Pagination-Next" not in last.headers

    paged = await client.assistants.search(
        metadata={"m": marker}, limit=2, response_format="object"
    )
    assert paged["next"] == "2"
    assert len(paged["assistants"]) == 2


@pytest.mark.anyio
async def test_search_bad_sort_is_422(server: BerthServer) -> None:
    response = httpx.post(f"{server.url}/assistants/search", json={"sort_by": "bogus"})
    assert response.status_code == 422
    assert "sort_by" in response.json()["detail"]


@pytest.mark.anyio
async def test_get_graph(client: LangGraphClient) -> None:
    created = await client.assistants.create("chain10")
    drawn = await client.assistants.get_graph(created["assistant_id"])
    node_ids = {n["id"] for n in drawn["nodes"]}
    assert {"__start__", "__end__"} <= node_ids
    assert all({"id", "type", "data"} <= set(n) for n in drawn["nodes"])
    assert all({"source", "target"} <= set(e) for e in drawn["edges"])
    # A registered graph id stands for its default assistant here.
    by_graph = await client.assistants.get_graph("subgraph")
    flat = {n["id"] for n in by_graph["nodes"]}
    assert "inner" in flat
    assert {"source": "__start__", "target": "inner"} in [
        {"source": e["source"], "target": e["target"]} for e in by_graph["edges"]
    ]
    xray = await client.assistants.get_graph("subgraph", xray=True)
    deep = {n["id"] for n in xray["nodes"]}
    assert any("child_a" in n for n in deep)
    assert any(
        "child_a" in n
        for n in {n["id"] for n in (await client.assistants.get_graph("subgraph", xray=1))["nodes"]}
    )
    with pytest.raises(NotFoundError):
        await client.assistants.get_graph(str(uuid.uuid4()))
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.get_graph("no-such-graph")


@pytest.mark.anyio
async def test_get_schemas(client: LangGraphClient) -> None:
    schemas = await client.assistants.get_schemas(str(uuid.uuid5(ASSISTANT_NAMESPACE, "echo")))
    assert schemas["graph_id"] == "echo"
    assert set(schemas) >= {
        "input_schema",
        "output_schema",
        "state_schema",
        "config_schema",
        "context_schema",
    }
    assert "messages" in schemas["input_schema"]["properties"]
    assert "messages" in schemas["state_schema"]["properties"]


@pytest.mark.anyio
async def test_get_subgraphs(client: LangGraphClient) -> None:
    assistant_id = str(uuid.uuid5(ASSISTANT_NAMESPACE, "subgraph"))
    subgraphs = await client.assistants.get_subgraphs(assistant_id)
    assert list(subgraphs) == ["inner"]
    assert "items" in subgraphs["inner"]["state_schema"]["properties"]
    assert set(subgraphs["inner"]) >= {"input_schema", "output_schema", "state_schema"}
    assert list(await client.assistants.get_subgraphs(assistant_id, namespace="inner")) == ["inner"]
    assert await client.assistants.get_subgraphs(assistant_id, recurse=True)
    echo_id = str(uuid.uuid5(ASSISTANT_NAMESPACE, "echo"))
    assert await client.assistants.get_subgraphs(echo_id) == {}


def test_sync_client_assistants(sync_client: SyncLangGraphClient) -> None:
    marker = tag()
    created = sync_client.assistants.create("echo", name="sync", metadata={"m": marker})
    assistant_id = created["assistant_id"]
    assert sync_client.assistants.get(assistant_id)["name"] == "sync"
    updated = sync_client.assistants.update(assistant_id, metadata={"extra": True})
    assert updated["version"] == 2
    assert updated["metadata"] == {"m": marker, "extra": True}
    assert [a["assistant_id"] for a in sync_client.assistants.search(metadata={"m": marker})] == [
        assistant_id
    ]
    assert sync_client.assistants.count(metadata={"m": marker}) == 1
    assert [v["version"] for v in sync_client.assistants.get_versions(assistant_id)] == [2, 1]
    assert sync_client.assistants.set_latest(assistant_id, 1)["metadata"] == {"m": marker}
    assert sync_client.assistants.get_graph(assistant_id)["nodes"]
    assert sync_client.assistants.get_schemas(assistant_id)["graph_id"] == "echo"
    assert sync_client.assistants.get_subgraphs(assistant_id) == {}
    with pytest.raises(ConflictError):
        sync_client.assistants.create("echo", assistant_id=assistant_id)
    sync_client.assistants.delete(assistant_id)
    with pytest.raises(NotFoundError):
        sync_client.assistants.get(assistant_id)


def test_assistant_of_unregistered_graph_is_hidden(
    start_server: StartServer, tmp_path: Path
) -> None:
    first = start_server(name="shared")
    sdk = langgraph_sdk.get_sync_client(url=first.url)
    created = sdk.assistants.create("echo", name="orphan")
    sdk.close()
    first.stop()

    config = tmp_path / "only-chain10.json"
    graphs_dir = GRAPHS_CONFIG.parent
    config.write_text(
        json.dumps({"graphs": {"chain10": f"{graphs_dir / 'chain10.py'}:graph"}, "env": {}})
    )
    second = start_server(name="shared", config=config)
    sdk = langgraph_sdk.get_sync_client(url=second.url)
    try:
        with pytest.raises(NotFoundError):
            sdk.assistants.get(created["assistant_id"])
        assert created["assistant_id"] not in [
            a["assistant_id"] for a in sdk.assistants.search(limit=100)
        ]
        assert [a["graph_id"] for a in sdk.assistants.search(limit=100)] == ["chain10"]
        assert sdk.assistants.count() == 1
    finally:
        sdk.close()
