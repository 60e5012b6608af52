"""Thread state and history: reads, writes, checkpoints, and `RemoteGraph` over them."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import httpx
import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError

from tests.berth_server import BerthServer

STATE_KEYS = {
    "values",
    "next",
    "tasks",
    "checkpoint",
    "parent_checkpoint",
    "metadata",
    "created_at",
    "interrupts",
}


def hi(text: str = "hi") -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}]}


def contents(state: dict[str, object]) -> list[str]:
    return [m["content"] for m in state["values"]["messages"]]  # type: ignore[index]


async def echo_thread(client: LangGraphClient, *texts: str) -> str:
    thread = await client.threads.create()
    for text in texts:
        await client.runs.wait(thread["thread_id"], "echo", input=hi(text))
    return str(thread["thread_id"])


@pytest.mark.anyio
async def test_never_run_thread_state(client: LangGraphClient, server: BerthServer) -> None:
    for thread in (await client.threads.create(), await client.threads.create(graph_id="echo")):
        thread_id = thread["thread_id"]
        state = await client.threads.get_state(thread_id)
        assert set(state) >= STATE_KEYS
        assert state["values"] == {}
        assert state["next"] == []
        assert state["tasks"] == []
        assert state["checkpoint"] is None
        assert state["interrupts"] == []
        posted = httpx.post(
            f"{server.url}/threads/{thread_id}/state/checkpoint",
            json={"checkpoint": {"thread_id": thread_id}},
        )
        assert posted.status_code == 200
        assert posted.json()["values"] == {}
        assert posted.json()["checkpoint"] is None
        assert await client.threads.get_history(thread_id) == []


@pytest.mark.anyio
async def test_state_after_runs(client: LangGraphClient) -> None:
    thread_id = await echo_thread(client, "one")
    state = await client.threads.get_state(thread_id)
    assert contents(state) == ["one", "echo: one"]
    assert state["next"] == []
    assert state["tasks"] == []
    checkpoint = state["checkpoint"]
    assert checkpoint["thread_id"] == thread_id
    assert checkpoint["checkpoint_ns"] == ""
    uuid.UUID(checkpoint["checkpoint_id"])
    assert state["checkpoint_id"] == checkpoint["checkpoint_id"]
    assert state["parent_checkpoint"]["checkpoint_id"] == state["parent_checkpoint_id"]
    assert state["metadata"]["source"] == "loop"
    assert isinstance(state["metadata"]["step"], int)
    assert isinstance(state["created_at"], str)


@pytest.mark.anyio
async def test_state_at_checkpoint(client: LangGraphClient, server: BerthServer) -> None:
    thread_id = await echo_thread(client, "one", "two")
    history = await client.threads.get_history(thread_id, limit=100)
    # The state right after the first run finished.
    first_done = next(h for h in history if contents(h) == ["one", "echo: one"])
    checkpoint_id = first_done["checkpoint"]["checkpoint_id"]

    by_id = await client.threads.get_state(thread_id, checkpoint_id=checkpoint_id)
    assert contents(by_id) == ["one", "echo: one"]
    assert by_id["checkpoint"]["checkpoint_id"] == checkpoint_id
    by_object = await client.threads.get_state(
        thread_id, checkpoint={"checkpoint_id": checkpoint_id, "checkpoint_ns": ""}
    )
    assert by_object == by_id
    raw = httpx.post(
        f"{server.url}/threads/{thread_id}/state/checkpoint",
        json={"checkpoint": {"checkpoint_id": checkpoint_id}, "subgraphs": True},
    )
    assert raw.status_code == 200
    assert raw.json()["checkpoint"]["checkpoint_id"] == checkpoint_id

    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread_id, checkpoint_id=str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await client.threads.get_state(str(uuid.uuid4()))


@pytest.mark.anyio
async def test_update_state_as_node(client: LangGraphClient) -> None:
    thread_id = await echo_thread(client, "one")
    before = await client.threads.get_state(thread_id)
    result = await client.threads.update_state(
        thread_id,
        {"messages": [{"role": "ai", "content": "edited", "id": "edited-1"}]},
        as_node="echo",
    )
    assert set(result) == {"checkpoint"}
    new_checkpoint = result["checkpoint"]
    assert new_checkpoint["thread_id"] == thread_id
    assert new_checkpoint["checkpoint_ns"] == ""
    assert new_checkpoint["checkpoint_id"] != before["checkpoint"]["checkpoint_id"]

    after = await client.threads.get_state(thread_id)
    assert contents(after) == ["one", "echo: one", "edited"]
    assert after["checkpoint"]["checkpoint_id"] == new_checkpoint["checkpoint_id"]
    assert after["parent_checkpoint"]["checkpoint_id"] == before["checkpoint"]["checkpoint_id"]
    assert after["metadata"]["source"] == "update"
    thread = await client.threads.get(thread_id)
    assert contents(thread) == ["one", "echo: one", "edited"]
    assert thread["status"] == "idle"

    # Forking from an earlier checkpoint leaves the later one in history.
    forked = await client.threads.update_state(
        thread_id,
        {"messages": [{"role": "ai", "content": "forked", "id": "forked-1"}]},
        as_node="echo",
        checkpoint_id=before["checkpoint"]["checkpoint_id"],
    )
    assert contents(await client.threads.get_state(thread_id)) == ["one", "echo: one", "forked"]
    assert forked["checkpoint"]["checkpoint_id"] != new_checkpoint["checkpoint_id"]


@pytest.mark.anyio
async def test_update_state_errors(client: LangGraphClient) -> None:
    graphless = await client.threads.create()
    with pytest.raises(BadRequestError):
        await client.threads.update_state(graphless["thread_id"], {"messages": []})
    with pytest.raises(NotFoundError):
        await client.threads.update_state(str(uuid.uuid4()), {"messages": []})
    thread = await client.threads.create(graph_id="echo")
    with pytest.raises(BadRequestError):
        await client.threads.update_state(thread["thread_id"], {"value": 1}, as_node="nope")


@pytest.mark.anyio
async def test_update_state_on_fresh_thread_with_graph_id(client: LangGraphClient) -> None:
    thread = await client.threads.create(graph_id="interrupting")
    await client.threads.update_state(thread["thread_id"], {"value": "set"}, as_node="finish")
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {"value": "set"}
    assert (await client.threads.get(thread["thread_id"]))["values"] == {"value": "set"}


@pytest.mark.anyio
async def test_update_state_while_run_in_flight_is_409(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    run = await client.runs.create(
        thread_id, "slow", input={"steps": []}, config={"configurable": {"sleep": 2}}
    )
    for _ in range(50):
        if (await client.runs.get(thread_id, run["run_id"]))["status"] == "running":
            break
        await asyncio.sleep(0.1)
    assert (await client.threads.get(thread_id))["status"] == "busy"
    with pytest.raises(ConflictError):
        await client.threads.update_state(thread_id, {"steps": ["x"]}, as_node="s1")
    await client.runs.join(thread_id, run["run_id"])
    await client.threads.update_state(thread_id, {"steps": ["x"]}, as_node="s3")
    assert (await client.threads.get_state(thread_id))["values"]["steps"] == [
        "s1",
        "s2",
        "s3",
        "x",
    ]


@pytest.mark.anyio
async def test_history(client: LangGraphClient, server: BerthServer) -> None:
    thread_id = await echo_thread(client, "one", "two")
    full = await client.threads.get_history(thread_id, limit=100)
    # Each echo run writes input, loop and echo checkpoints; newest first.
    assert len(full) == 6
    assert contents(full[0]) == ["one", "echo: one", "two", "echo: two"]
    assert all(set(h) >= STATE_KEYS for h in full)
    steps = [h["metadata"]["step"] for h in full]
    assert steps == sorted(steps, reverse=True)
    for newer, older in itertools.pairwise(full):
        assert newer["parent_checkpoint"]["checkpoint_id"] == older["checkpoint"]["checkpoint_id"]

    assert len(await client.threads.get_history(thread_id, limit=2)) == 2
    before = await client.threads.get_history(
        thread_id, limit=2, before=full[1]["checkpoint"]["checkpoint_id"]
    )
    assert [h["checkpoint"] for h in before] == [h["checkpoint"] for h in full[2:4]]
    last = await client.threads.get_history(thread_id, limit=10, metadata={"source": "loop"})
    assert len(last) == 4
    assert contents((await client.threads.get_history(thread_id, limit=1))[0])[-1] == "echo: two"
    before_object = await client.threads.get_history(
        thread_id, limit=2, before=full[1]["checkpoint"]
    )
    assert before_object == before
    inputs = await client.threads.get_history(thread_id, limit=10, metadata={"source": "input"})
    assert [h["metadata"]["source"] for h in inputs] == ["input", "input"]

    # The server's own default is one state; GET takes limit and before as query params.
    default = httpx.post(f"{server.url}/threads/{thread_id}/history", json={})
    assert default.status_code == 200
    assert [h["checkpoint"] for h in default.json()] == [full[0]["checkpoint"]]
    got = httpx.get(f"{server.url}/threads/{thread_id}/history")
    assert [h["checkpoint"] for h in got.json()] == [full[0]["checkpoint"]]
    got = httpx.get(
        f"{server.url}/threads/{thread_id}/history",
        params={"limit": 3, "before": full[0]["checkpoint"]["checkpoint_id"]},
    )
    assert [h["checkpoint"] for h in got.json()] == [h["checkpoint"] for h in full[1:4]]
    with pytest.raises(NotFoundError):
        await client.threads.get_history(str(uuid.uuid4()))


@pytest.mark.anyio
async def test_interrupted_state_via_history(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "interrupting", input={"value": "v"})
    [latest] = await client.threads.get_history(thread["thread_id"], limit=1)
    assert latest["next"] == ["ask"]
    [task] = latest["tasks"]
    [interrupt] = task["interrupts"]
    assert set(interrupt) <= {"id", "value", "response_schema"}
    assert interrupt["value"] == {"question": "what?"}


@pytest.mark.anyio
async def test_subgraph_state(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "nested_interrupt", input={"items": []})
    state = await client.threads.get_state(thread_id, subgraphs=True)
    assert state["next"] == ["inner"]
    [task] = state["tasks"]
    assert task["name"] == "inner"
    inner = task["state"]
    assert inner["next"] == ["ask"]
    assert inner["values"] == {"items": ["before"]}
    assert inner["checkpoint"]["checkpoint_ns"].startswith("inner:")
    assert [i["value"] for i in inner["interrupts"]] == ["inner?"]
    # Without `subgraphs` the task points at the child's checkpoint instead.
    flat = await client.threads.get_state(thread_id)
    assert flat["tasks"][0]["state"] is None
    assert flat["tasks"][0]["checkpoint"]["checkpoint_ns"].startswith("inner:")
    assert [i["value"] for i in flat["interrupts"]] == ["inner?"]
    # The child's own history, addressed by its namespace.
    child_history = await client.threads.get_history(
        thread_id, limit=10, checkpoint={"checkpoint_ns": inner["checkpoint"]["checkpoint_ns"]}
    )
    assert child_history
    assert child_history[0]["values"] == {"items": ["before"]}
    thread_row = await client.threads.get(thread_id)
    assert thread_row["status"] == "interrupted"
    assert [i["value"] for [i] in thread_row["interrupts"].values()] == ["inner?"]


def test_sync_client_state(sync_client: SyncLangGraphClient) -> None:
    thread = sync_client.threads.create(graph_id="echo")
    thread_id = thread["thread_id"]
    assert sync_client.threads.get_state(thread_id)["checkpoint"] is None
    sync_client.runs.wait(thread_id, "echo", input=hi("sync"))
    state = sync_client.threads.get_state(thread_id)
    assert contents(state) == ["sync", "echo: sync"]
    result = sync_client.threads.update_state(
        thread_id, {"messages": [{"role": "ai", "content": "more", "id": "m1"}]}, as_node="echo"
    )
    assert contents(sync_client.threads.get_state(thread_id))[-1] == "more"
    history = sync_client.threads.get_history(thread_id, limit=2)
    assert history[0]["checkpoint"] == result["checkpoint"]
    assert history[1]["checkpoint"] == state["checkpoint"]


def test_remote_graph_state(server: BerthServer, sync_client: SyncLangGraphClient) -> None:
    thread = sync_client.threads.create()
    thread_id = thread["thread_id"]
    sync_client.runs.wait(thread_id, "echo", input=hi("remote"))
    remote = RemoteGraph("echo", url=server.url)
    config = {"configurable": {"thread_id": thread_id}}

    snapshot = remote.get_state(config)
    assert [m["content"] for m in snapshot.values["messages"]] == ["remote", "echo: remote"]
    assert snapshot.next == ()
    assert snapshot.config["configurable"]["thread_id"] == thread_id
    assert snapshot.config["configurable"]["checkpoint_ns"] == ""
    assert snapshot.metadata["source"] == "loop"

    new_config = remote.update_state(
        config, {"messages": [{"role": "ai", "content": "via remote", "id": "r1"}]}, as_node="echo"
    )
    assert new_config["configurable"]["thread_id"] == thread_id
    updated = remote.get_state(config)
    assert updated.values["messages"][-1]["content"] == "via remote"
    assert (
        updated.config["configurable"]["checkpoint_id"]
        == (new_config["configurable"]["checkpoint_id"])
    )
    # A specific checkpoint, then history before it.
    at = remote.get_state(snapshot.config)
    assert at.values == snapshot.values
    history = list(remote.get_state_history(config, limit=3))
    assert [h.config["configurable"]["checkpoint_id"] for h in history][:2] == [
        new_config["configurable"]["checkpoint_id"],
        snapshot.config["configurable"]["checkpoint_id"],
    ]
    older = list(remote.get_state_history(config, before=snapshot.config, limit=10))
    assert (
        older[0].config["configurable"]["checkpoint_id"]
        == (snapshot.parent_config["configurable"]["checkpoint_id"])
    )
    filtered = list(remote.get_state_history(config, filter={"source": "update"}))
    assert [h.metadata["source"] for h in filtered] == ["update"]


@pytest.mark.anyio
async def test_remote_graph_interrupt_state(server: BerthServer, client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "interrupting", input={"value": "v"})
    remote = RemoteGraph("interrupting", url=server.url)
    snapshot = await remote.aget_state({"configurable": {"thread_id": thread["thread_id"]}})
    assert snapshot.next == ("ask",)
    [interrupt] = snapshot.interrupts
    assert interrupt.value == {"question": "what?"}
    [task] = snapshot.tasks
    assert task.interrupts[0].id == interrupt.id
    history = [
        s
        async for s in remote.aget_state_history(
            {"configurable": {"thread_id": thread["thread_id"]}}
        )
    ]
    assert history[0].next == ("ask",)


@pytest.mark.anyio
async def test_state_select(client: LangGraphClient, server: BerthServer) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "interrupting", input={"value": "v"})
    state = await client.threads.get_state(thread_id, select=["values.value", "next"])
    assert state == {"values": {"value": "v"}, "next": ["ask"]}
    full = await client.threads.get_state(thread_id)
    posted = await client.threads.get_state(
        thread_id, checkpoint=full["checkpoint"], select=["checkpoint"]
    )
    assert posted == {"checkpoint": full["checkpoint"]}
    history = await client.threads.get_history(thread_id, limit=2, select=["metadata"])
    assert [set(h) for h in history] == [{"metadata"}, {"metadata"}]
    head = httpx.head(f"{server.url}/threads/{thread_id}/state")
    assert head.status_code == 200
    assert head.content == b""
