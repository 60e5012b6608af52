"""`/threads`: create, read, update, delete, search, count and copy."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import langgraph_sdk
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.berth_server import BerthServer
from tests.conftest import StartServer
from tests.helpers import tag

THREAD_KEYS = {
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
}


def hi(text: str = "hi") -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.mark.anyio
async def test_create_and_get(client: LangGraphClient) -> None:
    created = await client.threads.create(metadata={"owner": "me"})
    assert set(created) >= THREAD_KEYS
    assert uuid.UUID(created["thread_id"]).version == 7
    assert created["status"] == "idle"
    assert created["metadata"] == {"owner": "me"}
    assert created["values"] is None
    assert created["interrupts"] == {}
    assert await client.threads.get(created["thread_id"]) == created


@pytest.mark.anyio
async def test_create_custom_id_graph_id_and_if_exists(client: LangGraphClient) -> None:
    thread_id = str(uuid.uuid4())
    created = await client.threads.create(thread_id=thread_id, metadata={"a": 1}, graph_id="echo")
    assert created["thread_id"] == thread_id
    assert created["metadata"] == {"a": 1, "graph_id": "echo"}
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id)
    again = await client.threads.create(
        thread_id=thread_id, metadata={"b": 2}, if_exists="do_nothing"
    )
    assert again == created


@pytest.mark.anyio
async def test_create_with_supersteps(client: LangGraphClient) -> None:
    thread = await client.threads.create(
        graph_id="interrupting",
        supersteps=[
            {"updates": [{"values": {"value": "seeded"}, "as_node": "__input__"}]},
            {"updates": [{"values": {"value": "seeded"}, "as_node": "__start__"}]},
            {"updates": [{"values": {"answer": "a"}, "as_node": "ask"}]},
        ],
    )
    thread_id = thread["thread_id"]
    # Each superstep is one checkpoint, as if the graph had run those steps.
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"value": "seeded", "answer": "a"}
    assert state["next"] == ["finish"]
    assert state["metadata"]["step"] == 1
    history = await client.threads.get_history(thread_id, limit=10)
    assert len(history) == 3
    assert thread["values"] == {"value": "seeded", "answer": "a"}
    # Resuming from the seeded state runs the rest of the graph.
    await client.runs.wait(thread_id, "interrupting", input=None)
    assert (await client.threads.get_state(thread_id))["values"]["value"] == "done:a"


@pytest.mark.anyio
async def test_create_supersteps_need_a_graph(server: BerthServer) -> None:
    response = httpx.post(
        f"{server.url}/threads",
        json={"supersteps": [{"updates": [{"values": {}, "as_node": "__input__"}]}]},
    )
    assert response.status_code == 400
    assert "graph_id" in response.json()["detail"]


async def create_race(client: LangGraphClient) -> None:
    """Concurrent creates of one id: one wins, the rest conflict or get the winner."""
    thread_id, assistant_id = str(uuid.uuid4()), str(uuid.uuid4())
    results = await asyncio.gather(
        *(client.threads.create(thread_id=thread_id) for _ in range(8)),
        *(client.assistants.create("echo", assistant_id=assistant_id) for _ in range(8)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, dict) for r in results) == 2, results
    assert all(isinstance(r, (dict, ConflictError)) for r in results), results
    same = await asyncio.gather(
        *(client.threads.create(thread_id=thread_id, if_exists="do_nothing") for _ in range(4))
    )
    assert {t["thread_id"] for t in same} == {thread_id}


@pytest.mark.anyio
async def test_concurrent_create(client: LangGraphClient) -> None:
    await create_race(client)


@pytest.mark.anyio
async def test_get_unknown_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.threads.get(str(uuid.uuid4()))


@pytest.mark.anyio
async def test_update_merges_metadata(client: LangGraphClient, server: BerthServer) -> None:
    created = await client.threads.create(metadata={"a": 1, "b": 1})
    thread_id = created["thread_id"]
    updated = await client.threads.update(thread_id, metadata={"b": 2, "c": 3})
    assert updated["metadata"] == {"a": 1, "b": 2, "c": 3}
    assert updated["updated_at"] >= created["updated_at"]
    assert (await client.threads.get(thread_id))["metadata"] == updated["metadata"]

    minimal = httpx.patch(
        f"{server.url}/threads/{thread_id}",
        json={"metadata": {"d": 4}},
        headers={"Prefer": "return=minimal"},
    )
    assert minimal.status_code == 204
    assert minimal.content == b""
    assert (await client.threads.get(thread_id))["metadata"]["d"] == 4
    assert await client.threads.update(thread_id, metadata={"e": 5}, return_minimal=True) is None
    assert (await client.threads.get(thread_id))["metadata"]["e"] == 5
    with pytest.raises(NotFoundError):
        await client.threads.update(str(uuid.uuid4()), metadata={})


@pytest.mark.anyio
async def test_delete_cascades_to_runs(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    run = await client.runs.create(thread_id, "echo", input=hi())
    await client.runs.join(thread_id, run["run_id"])
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"
    await client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread_id)


@pytest.mark.anyio
async def test_search_filters(client: LangGraphClient) -> None:
    marker = tag()
    a = await client.threads.create(metadata={"m": marker, "kind": "x", "deep": {"k": [1, 2]}})
    b = await client.threads.create(metadata={"m": marker, "kind": "y"}, graph_id="echo")
    await client.runs.wait(b["thread_id"], "echo", input=hi("searched"))
    ids = lambda items: [i["thread_id"] for i in items]  # noqa: E731

    assert ids(await client.threads.search(metadata={"m": marker})) == [
        b["thread_id"],
        a["thread_id"],
    ]
    assert ids(await client.threads.search(metadata={"m": marker, "kind": "x"})) == [a["thread_id"]]
    # Containment reaches into nested objects.
    assert ids(await client.threads.search(metadata={"deep": {"k": [1, 2]}, "m": marker})) == [
        a["thread_id"]
    ]
    assert ids(await client.threads.search(ids=[a["thread_id"]])) == [a["thread_id"]]
    assert ids(
        await client.threads.search(metadata={"m": marker}, ids=[a["thread_id"], b["thread_id"]])
    ) == [b["thread_id"], a["thread_id"]]
    # idle is the status both before any run and after a successful one.
    assert ids(await client.threads.search(metadata={"m": marker}, status="idle")) == [
        b["thread_id"],
        a["thread_id"],
    ]
    assert await client.threads.search(metadata={"m": marker}, status="busy") == []
    assert await client.threads.count(metadata={"m": marker}) == 2
    assert await client.threads.count(metadata={"m": marker, "kind": "y"}) == 1
    assert await client.threads.count(metadata={"m": marker}, status="error") == 0


@pytest.mark.anyio
async def test_search_values(client: LangGraphClient) -> None:
    marker = tag()
    thread = await client.threads.create(metadata={"m": marker})
    other = await client.threads.create(metadata={"m": marker})
    await client.runs.wait(thread["thread_id"], "interrupting", input={"value": marker})
    await client.runs.wait(other["thread_id"], "interrupting", input={"value": "other"})
    found = await client.threads.search(values={"value": marker})
    assert [t["thread_id"] for t in found] == [thread["thread_id"]]
    assert found[0]["values"] == {"value": marker}
    assert await client.threads.count(values={"value": marker}) == 1
    extracted = await client.threads.search(
        metadata={"m": marker},
        extract={"v": "values.value", "first": "metadata.m", "missing": "values.nope[0]"},
        select=["thread_id"],
    )
    assert {e["thread_id"]: e["extracted"] for e in extracted} == {
        thread["thread_id"]: {"v": marker, "first": marker, "missing": None},
        other["thread_id"]: {"v": "other", "first": marker, "missing": None},
    }
    assert await client.threads.count(metadata={"m": marker}, status="interrupted") == 2


@pytest.mark.anyio
async def test_search_pagination_sort_and_select(
    client: LangGraphClient, server: BerthServer
) -> None:
    marker = tag()
    created = [await client.threads.create(metadata={"m": marker}) for _ in range(3)]
    newest_first = [t["thread_id"] for t in reversed(created)]
    page = await client.threads.search(metadata={"m": marker}, limit=2, offset=1)
    assert [t["thread_id"] for t in page] == newest_first[1:]
    asc = await client.threads.search(
        metadata={"m": marker}, sort_by="created_at", sort_order="asc"
    )
    assert [t["thread_id"] for t in asc] == newest_first[::-1]
    by_id = await client.threads.search(metadata={"m": marker}, sort_by="thread_id")
    assert [t["thread_id"] for t in by_id] == sorted(newest_first, reverse=True)
    # Touching the oldest thread makes it the most recently updated.
    await client.threads.update(created[0]["thread_id"], metadata={"touched": True})
    by_update = await client.threads.search(
        metadata={"m": marker}, sort_by="updated_at", sort_order="desc"
    )
    assert by_update[0]["thread_id"] == created[0]["thread_id"]
    selected = await client.threads.search(metadata={"m": marker}, select=["thread_id", "status"])
    assert all(set(s) == {"thread_id", "status"} for s in selected)

    response = httpx.post(
        f"{server.url}/threads/search", json={"metadata": {"m": marker}, "limit": 2}
    )
    assert response.status_code == 200
    assert response.headers["X-Pagination-Total"] == "3"
    assert response.headers["X-Pagination-Next"] == "2"
    last = httpx.post(
        f"{server.url}/threads/search",
        json={"metadata": {"m": marker}, "limit": 2, "offset": 2},
    )
    assert [t["thread_id"] for t in last.json()] == newest_first[2:]
    assert "X-Pagination-Next" not in last.headers


@pytest.mark.anyio
async def test_copy_has_same_state_and_history(client: LangGraphClient) -> None:
    thread = await client.threads.create(metadata={"origin": "yes"})
    await client.runs.wait(thread["thread_id"], "echo", input=hi("one"))
    await client.runs.wait(thread["thread_id"], "echo", input=hi("two"))
    copied = await client.threads.copy(thread["thread_id"])
    assert copied["thread_id"] != thread["thread_id"]
    assert copied["metadata"]["origin"] == "yes"
    original_state = await client.threads.get_state(thread["thread_id"])
    copied_state = await client.threads.get_state(copied["thread_id"])
    assert copied_state["values"] == original_state["values"]
    assert [m["content"] for m in copied_state["values"]["messages"]] == [
        "one",
        "echo: one",
        "two",
        "echo: two",
    ]
    assert copied_state["checkpoint"]["thread_id"] == copied["thread_id"]
    assert (
        copied_state["checkpoint"]["checkpoint_id"]
        == (original_state["checkpoint"]["checkpoint_id"])
    )
    original_history = await client.threads.get_history(thread["thread_id"], limit=100)
    copied_history = await client.threads.get_history(copied["thread_id"], limit=100)
    assert len(copied_history) == len(original_history) > 2
    assert [h["checkpoint"]["checkpoint_id"] for h in copied_history] == [
        h["checkpoint"]["checkpoint_id"] for h in original_history
    ]
    assert [h["values"] for h in copied_history] == [h["values"] for h in original_history]
    # The copy is independent of the original.
    await client.runs.wait(copied["thread_id"], "echo", input=hi("three"))
    assert len((await client.threads.get_state(thread["thread_id"]))["values"]["messages"]) == 4
    with pytest.raises(NotFoundError):
        await client.threads.copy(str(uuid.uuid4()))


@pytest.mark.anyio
async def test_status_after_success(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "echo", input=hi())
    after = await client.threads.get(thread["thread_id"])
    assert after["status"] == "idle"
    assert [m["content"] for m in after["values"]["messages"]] == ["hi", "echo: hi"]
    assert after["interrupts"] == {}
    echo_id = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "echo"))
    assert after["metadata"]["graph_id"] == "echo"
    assert after["metadata"]["assistant_id"] == echo_id


@pytest.mark.anyio
async def test_status_after_error(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "failing", input={})
    await client.runs.join(thread["thread_id"], run["run_id"])
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "error"
    after = await client.threads.get(thread["thread_id"])
    assert after["status"] == "error"


@pytest.mark.anyio
async def test_status_after_interrupt(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "interrupting", input={"value": "v"})
    after = await client.threads.get(thread["thread_id"])
    assert after["status"] == "interrupted"
    assert after["values"] == {"value": "v"}
    [(task_id, interrupts)] = after["interrupts"].items()
    assert isinstance(task_id, str)
    [interrupt] = interrupts
    assert interrupt["value"] == {"question": "what?"}
    assert isinstance(interrupt["id"], str)

    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["ask"]
    [state_interrupt] = state["interrupts"]
    assert state_interrupt["id"] == interrupt["id"]
    assert state_interrupt["value"] == {"question": "what?"}
    [task] = state["tasks"]
    assert task["id"] == task_id
    assert task["name"] == "ask"
    assert task["interrupts"] == [state_interrupt]

    # Resuming clears the interrupt and the thread becomes idle with the answer.
    await client.runs.wait(thread["thread_id"], "interrupting", command={"resume": "42"})
    done = await client.threads.get(thread["thread_id"])
    assert done["status"] == "idle"
    assert done["interrupts"] == {}
    assert done["values"] == {"value": "done:42", "answer": "42"}


def test_sync_client_threads(sync_client: SyncLangGraphClient) -> None:
    marker = tag()
    created = sync_client.threads.create(metadata={"m": marker}, graph_id="echo")
    thread_id = created["thread_id"]
    assert sync_client.threads.get(thread_id)["metadata"] == {"m": marker, "graph_id": "echo"}
    updated = sync_client.threads.update(thread_id, metadata={"x": 1})
    assert updated["metadata"]["x"] == 1
    sync_client.runs.wait(thread_id, "echo", input=hi("sync"))
    assert [t["thread_id"] for t in sync_client.threads.search(metadata={"m": marker})] == [
        thread_id
    ]
    assert sync_client.threads.count(metadata={"m": marker}) == 1
    copied = sync_client.threads.copy(thread_id)
    assert (
        sync_client.threads.get_state(copied["thread_id"])["values"]
        == (sync_client.threads.get_state(thread_id)["values"])
    )
    sync_client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        sync_client.threads.get(thread_id)
    with pytest.raises(ConflictError):
        sync_client.threads.create(thread_id=copied["thread_id"])


def test_threads_and_assistants_on_postgres(start_server: StartServer, pg_database: str) -> None:
    """Search containment, copy, state and create races through the PostgreSQL dialect."""
    berth = start_server(env={"DATABASE_URI": pg_database}, name="pg")

    async def race() -> None:
        async with langgraph_sdk.get_client(url=berth.url) as client:
            await create_race(client)

    asyncio.run(race())
    sdk = langgraph_sdk.get_sync_client(url=berth.url)
    try:
        marker = tag()
        a = sdk.threads.create(metadata={"m": marker, "deep": {"k": [1, 2]}, "n": 1})
        b = sdk.threads.create(metadata={"m": marker, "n": 2})
        sdk.runs.wait(b["thread_id"], "interrupting", input={"value": marker})
        ids = lambda items: [i["thread_id"] for i in items]  # noqa: E731
        assert ids(sdk.threads.search(metadata={"m": marker})) == [b["thread_id"], a["thread_id"]]
        assert ids(sdk.threads.search(metadata={"deep": {"k": [1, 2]}})) == [a["thread_id"]]
        assert ids(sdk.threads.search(metadata={"n": 1, "m": marker})) == [a["thread_id"]]
        assert ids(sdk.threads.search(values={"value": marker})) == [b["thread_id"]]
        assert ids(sdk.threads.search(metadata={"m": marker}, status="interrupted")) == [
            b["thread_id"]
        ]
        assert sdk.threads.count(metadata={"m": marker}) == 2
        assert ids(sdk.threads.search(metadata={"m": marker}, sort_by="thread_id")) == sorted(
            [a["thread_id"], b["thread_id"]], reverse=True
        )
        copied = sdk.threads.copy(b["thread_id"])
        assert sdk.threads.get_state(copied["thread_id"])["values"] == {"value": marker}
        assert copied["status"] == "interrupted"
        assert len(sdk.threads.get_history(copied["thread_id"])) == len(
            sdk.threads.get_history(b["thread_id"])
        )
        sdk.threads.update_state(b["thread_id"], {"answer": "x"}, as_node="ask")
        assert sdk.threads.get(b["thread_id"])["values"] == {"value": marker, "answer": "x"}

        assistant = sdk.assistants.create(
            "echo", name="PG Helper", metadata={"m": marker, "deep": {"a": 1}}
        )
        assert [x["assistant_id"] for x in sdk.assistants.search(name="pg help")] == [
            assistant["assistant_id"]
        ]
        assert sdk.assistants.count(metadata={"deep": {"a": 1}, "m": marker}) == 1
        sdk.assistants.update(assistant["assistant_id"], metadata={"v": 2})
        assert [v["version"] for v in sdk.assistants.get_versions(assistant["assistant_id"])] == [
            2,
            1,
        ]
        sdk.threads.delete(a["thread_id"])
        with pytest.raises(NotFoundError):
            sdk.threads.get(a["thread_id"])
    finally:
        sdk.close()
