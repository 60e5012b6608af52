"""`runs.stream`: every stream mode's event names and payloads, framing and disconnects."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.schema import StreamPart

from tests.berth_server import BerthServer

HI = {"messages": [{"role": "user", "content": "hi"}]}


async def collect(client: LangGraphClient, *args: Any, **kwargs: Any) -> list[StreamPart]:
    return [part async for part in client.runs.stream(*args, **kwargs)]


def events_of(parts: list[StreamPart]) -> list[str]:
    return [part.event for part in parts]


def assert_metadata_first(parts: list[StreamPart]) -> str:
    assert parts[0].event == "metadata"
    assert set(parts[0].data) == {"run_id", "attempt"}
    assert parts[0].data["attempt"] == 1
    return str(parts[0].data["run_id"])


@pytest.mark.anyio
async def test_values_on_thread(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(client, thread["thread_id"], "echo", input=HI)
    run_id = assert_metadata_first(parts)
    assert events_of(parts) == ["metadata", "values", "values"]
    assert [m["content"] for m in parts[1].data["messages"]] == ["hi"]
    last = parts[2].data["messages"]
    assert [(m["type"], m["content"]) for m in last] == [("human", "hi"), ("ai", "echo: hi")]
    run = await client.runs.get(thread["thread_id"], run_id)
    assert run["status"] == "success"


@pytest.mark.anyio
async def test_default_mode_is_values_stateless(client: LangGraphClient) -> None:
    parts = await collect(client, None, "chain10", input={"count": 0})
    assert_metadata_first(parts)
    assert events_of(parts) == ["metadata"] + ["values"] * 11
    assert [p.data["count"] for p in parts[1:]] == list(range(11))


@pytest.mark.anyio
async def test_updates(client: LangGraphClient) -> None:
    parts = await collect(client, None, "chain10", input={"count": 0}, stream_mode="updates")
    assert events_of(parts) == ["metadata"] + ["updates"] * 10
    assert [p.data for p in parts[1:]] == [{f"n{i}": {"count": i + 1}} for i in range(10)]


@pytest.mark.anyio
async def test_messages_tuple(client: LangGraphClient) -> None:
    parts = await collect(client, None, "messages", input=HI, stream_mode="messages-tuple")
    assert set(events_of(parts[1:])) == {"messages"}
    texts = []
    for part in parts[1:]:
        message, metadata = part.data
        assert message["type"] == "AIMessageChunk"
        assert metadata["langgraph_node"] == "chat"
        assert metadata["langgraph_step"] == 1
        texts.append(message["content"])
    assert "".join(texts) == "hello there friend"
    assert texts[:3] == ["hello", " there", " friend"]


@pytest.mark.anyio
async def test_messages_legacy_accumulates(client: LangGraphClient) -> None:
    parts = await collect(client, None, "messages", input=HI, stream_mode="messages")
    names = events_of(parts)
    assert names[:2] == ["metadata", "messages/metadata"]
    assert names.count("messages/metadata") == 1
    assert set(names[2:]) == {"messages/partial"}
    (msg_id, meta), *_ = parts[1].data.items()
    assert meta["metadata"]["langgraph_node"] == "chat"
    contents = [p.data[0]["content"] for p in parts[2:]]
    assert contents[:3] == ["hello", "hello there", "hello there friend"]
    assert all(c == "hello there friend" for c in contents[3:])
    assert all(p.data[0]["id"] == msg_id for p in parts[2:])


@pytest.mark.anyio
async def test_custom(client: LangGraphClient) -> None:
    parts = await collect(client, None, "custom", input={}, stream_mode="custom")
    assert events_of(parts) == ["metadata", "custom", "custom"]
    assert [p.data for p in parts[1:]] == [{"progress": 1}, {"progress": 2}]


@pytest.mark.anyio
async def test_tasks(client: LangGraphClient) -> None:
    parts = await collect(client, None, "echo", input=HI, stream_mode="tasks")
    assert events_of(parts) == ["metadata", "tasks", "tasks"]
    start, result = parts[1].data, parts[2].data
    assert start["name"] == result["name"] == "echo"
    assert start["id"] == result["id"]
    assert {"id", "name", "input", "triggers"} <= set(start)
    assert start["input"]["messages"][0]["content"] == "hi"
    assert {"id", "name", "error", "result", "interrupts"} <= set(result)
    assert result["error"] is None
    assert result["result"]["messages"][0]["content"] == "echo: hi"


@pytest.mark.anyio
async def test_checkpoints(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(client, thread["thread_id"], "echo", input=HI, stream_mode="checkpoints")
    assert events_of(parts) == ["metadata"] + ["checkpoints"] * 3
    for part in parts[1:]:
        assert {"config", "parent_config", "values", "metadata", "next", "tasks"} <= set(part.data)
        assert part.data["config"]["configurable"]["thread_id"] == thread["thread_id"]
    assert parts[-1].data["next"] == []
    assert parts[-1].data["values"]["messages"][-1]["content"] == "echo: hi"


@pytest.mark.anyio
async def test_debug(client: LangGraphClient) -> None:
    parts = await collect(client, None, "echo", input=HI, stream_mode="debug")
    assert set(events_of(parts[1:])) == {"debug"}
    types = [p.data["type"] for p in parts[1:]]
    assert {"checkpoint", "task", "task_result"} <= set(types)
    for part in parts[1:]:
        assert {"type", "step", "timestamp", "payload"} <= set(part.data)


@pytest.mark.anyio
async def test_events(client: LangGraphClient) -> None:
    parts = await collect(client, None, "messages", input=HI, stream_mode="events")
    assert set(events_of(parts[1:])) == {"events"}
    kinds = [p.data["event"] for p in parts[1:]]
    assert kinds[0] == "on_chain_start"
    assert kinds[-1] == "on_chain_end"
    assert {"on_chat_model_start", "on_chat_model_stream", "on_chat_model_end"} <= set(kinds)
    for part in parts[1:]:
        assert {"event", "name", "run_id", "parent_ids", "tags", "metadata", "data"} <= set(
            part.data
        )
        assert "langsmith:hidden" not in part.data["tags"]
    streamed = [
        p.data["data"]["chunk"]["content"]
        for p in parts[1:]
        if p.data["event"] == "on_chat_model_stream"
    ]
    assert "".join(streamed) == "hello there friend"
    end = parts[-1].data
    assert end["data"]["output"]["messages"][-1]["content"] == "hello there friend"


@pytest.mark.anyio
async def test_events_with_other_modes(client: LangGraphClient) -> None:
    parts = await collect(
        client, None, "messages", input=HI, stream_mode=["events", "values", "messages-tuple"]
    )
    names = events_of(parts)
    assert names.count("values") == 2
    assert names.count("messages") == 4
    assert names.count("events") > 5
    assert (
        parts[[i for i, n in enumerate(names) if n == "values"][-1]].data["messages"][-1]["content"]
        == "hello there friend"
    )
    # The root graph's own stream records feed the other modes, not `events`.
    roots = [p for p in parts if p.event == "events" and p.data["event"] == "on_chain_stream"]
    assert all(p.data["parent_ids"] for p in roots)


@pytest.mark.anyio
async def test_multiple_modes(client: LangGraphClient) -> None:
    parts = await collect(
        client, None, "custom", input={"done": False}, stream_mode=["values", "updates", "custom"]
    )
    assert events_of(parts) == ["metadata", "values", "custom", "custom", "updates", "values"]
    assert parts[1].data == {"done": False}
    assert parts[4].data == {"work": {"done": True}}
    assert parts[5].data == {"done": True}


@pytest.mark.anyio
async def test_subgraphs(client: LangGraphClient) -> None:
    parts = await collect(
        client,
        None,
        "subgraph",
        input={"items": []},
        stream_mode=["values", "updates"],
        stream_subgraphs=True,
    )
    names = events_of(parts)
    inner = [n for n in names if "|" in n]
    assert inner, names
    for name in inner:
        mode, ns = name.split("|", 1)
        assert mode in ("values", "updates")
        node, task_id = ns.split(":", 1)
        assert node == "inner" and task_id
    inner_updates = [p.data for p in parts if p.event.startswith("updates|")]
    assert inner_updates == [
        {"child_a": {"items": ["child_a"]}},
        {"child_b": {"items": ["child_b"]}},
    ]
    root_updates = [p.data for p in parts if p.event == "updates"]
    assert [list(u) for u in root_updates] == [["inner"], ["after"]]
    assert [p.data for p in parts if p.event == "values"][-1] == {
        "items": ["child_a", "child_b", "after"]
    }


@pytest.mark.anyio
async def test_no_subgraph_events_by_default(client: LangGraphClient) -> None:
    parts = await collect(client, None, "subgraph", input={"items": []}, stream_mode="updates")
    assert events_of(parts) == ["metadata", "updates", "updates"]


@pytest.mark.anyio
async def test_error_event(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(client, thread["thread_id"], "failing", input={})
    assert parts[-1].event == "error"
    assert parts[-1].data == {"error": "ValueError", "message": "boom"}
    run_id = assert_metadata_first(parts)
    run = await client.runs.get(thread["thread_id"], run_id)
    assert run["status"] == "error"
    assert (await client.threads.get(thread["thread_id"]))["status"] == "error"


@pytest.mark.anyio
async def test_interrupt_in_values_and_updates(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(
        client, thread["thread_id"], "interrupting", input={}, stream_mode=["values", "updates"]
    )
    interrupt_update = [p.data for p in parts if p.event == "updates"][-1]
    (item,) = interrupt_update["__interrupt__"]
    assert item["value"] == {"question": "what?"} and item["id"]
    assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"
    resumed = await collect(client, thread["thread_id"], "interrupting", command={"resume": "yes"})
    assert resumed[-1].data == {"answer": "yes", "value": "done:yes"}


def test_sync_stream(sync_client: SyncLangGraphClient) -> None:
    thread = sync_client.threads.create()
    parts = list(
        sync_client.runs.stream(
            thread["thread_id"], "chain10", input={"count": 5}, stream_mode=["updates"]
        )
    )
    assert parts[0].event == "metadata"
    assert [p.data for p in parts[1:]] == [{f"n{i}": {"count": i + 6}} for i in range(10)]
    stateless = list(sync_client.runs.stream(None, "custom", input={}, stream_mode="custom"))
    assert [p.data for p in stateless[1:]] == [{"progress": 1}, {"progress": 2}]


# -- framing over raw HTTP ---------------------------------------------------------


def test_sse_headers_and_framing(server: BerthServer) -> None:
    thread = httpx.post(f"{server.url}/threads", json={}).json()
    with httpx.stream(
        "POST",
        f"{server.url}/threads/{thread['thread_id']}/runs/stream",
        json={"assistant_id": "echo", "input": HI, "stream_mode": "updates"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-accel-buffering"] == "no"
        body = response.read().decode()
    run_path = response.headers["content-location"]
    assert run_path.startswith(f"/threads/{thread['thread_id']}/runs/")
    assert response.headers["location"] == run_path + "/stream"
    frames = [f for f in body.split("\r\n\r\n") if f]
    assert frames[0].startswith("event: metadata\r\ndata: {")
    assert frames[1].startswith("event: updates\r\ndata: ")
    assert "id:" not in body  # ids only for resumable runs
    assert json.loads(frames[0].split("data: ", 1)[1])["run_id"] == run_path.rsplit("/", 1)[1]


def test_stateless_stream_headers(server: BerthServer) -> None:
    with httpx.stream(
        "POST", f"{server.url}/runs/stream", json={"assistant_id": "echo", "input": HI}
    ) as response:
        response.read()
    run_id = response.headers["content-location"].rsplit("/", 1)[1]
    assert response.headers["content-location"] == f"/runs/{run_id}"
    assert response.headers["location"] == f"/runs/{run_id}/stream"


def test_heartbeats_are_comments(start_server: Any) -> None:
    berth = start_server(env={"BERTH_KEEPALIVE_INTERVAL": "0.2"}, name="heartbeat")
    body = {
        "assistant_id": "slow",
        "input": {"steps": []},
        "config": {"configurable": {"sleep": 0.5}},
        "stream_mode": "updates",
    }
    with httpx.stream("POST", f"{berth.url}/runs/stream", json=body, timeout=30) as response:
        text = response.read().decode()
    frames = [f for f in text.split("\r\n\r\n") if f]
    heartbeats = [f for f in frames if f.startswith(":")]
    assert heartbeats and all(f == ": heartbeat" for f in heartbeats)
    events = [f.split("\r\n", 1)[0] for f in frames if not f.startswith(":")]
    assert events == ["event: metadata"] + ["event: updates"] * 3
    # A wait keeps its JSON body alive with bare newlines, which JSON parsers skip.
    waited = httpx.post(f"{berth.url}/runs/wait", json=body, timeout=30)
    assert waited.headers["content-type"].startswith("application/json")
    assert waited.text.startswith("\n") and waited.text.lstrip("\n").startswith("{")
    assert waited.json() == {"steps": ["s1", "s2", "s3"]}


@pytest.mark.anyio
async def test_on_disconnect_cancel(server: BerthServer, client: LangGraphClient) -> None:
    thread = await client.threads.create()
    body = {
        "assistant_id": "slow",
        "input": {"steps": []},
        "config": {"configurable": {"sleep": 1}},
        "stream_mode": "updates",
        "on_disconnect": "cancel",
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream(
            "POST", f"/threads/{thread['thread_id']}/runs/stream", json=body
        ) as response:
            run_id = response.headers["content-location"].rsplit("/", 1)[1]
            async for line in response.aiter_lines():
                if line.startswith("event: metadata"):
                    break
    run = await wait_for_status(client, thread["thread_id"], run_id, {"interrupted"})
    assert run["status"] == "interrupted"
    state = await client.threads.get_state(thread["thread_id"])
    assert len(state["values"].get("steps", [])) < 3


@pytest.mark.anyio
async def test_on_disconnect_continue_is_default(
    server: BerthServer, client: LangGraphClient
) -> None:
    thread = await client.threads.create()
    body = {
        "assistant_id": "slow",
        "input": {"steps": []},
        "config": {"configurable": {"sleep": 0.2}},
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream(
            "POST", f"/threads/{thread['thread_id']}/runs/stream", json=body
        ) as response:
            run_id = response.headers["content-location"].rsplit("/", 1)[1]
    run = await wait_for_status(client, thread["thread_id"], run_id, {"success"})
    assert run["status"] == "success"


async def wait_for_status(
    client: LangGraphClient, thread_id: str, run_id: str, statuses: set[str], timeout: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = await client.runs.get(thread_id, run_id)
        if run["status"] in statuses or time.monotonic() > deadline:
            return dict(run)
        await asyncio.sleep(0.05)


@pytest.mark.anyio
async def test_events_with_subgraphs_and_errors(client: LangGraphClient) -> None:
    parts = await collect(
        client,
        None,
        "subgraph",
        input={"items": []},
        stream_mode=["events", "updates"],
        stream_subgraphs=True,
    )
    assert [p.data for p in parts if p.event.startswith("updates|inner:")] == [
        {"child_a": {"items": ["child_a"]}},
        {"child_b": {"items": ["child_b"]}},
    ]
    names = {p.data["name"] for p in parts if p.event == "events"}
    assert {"inner", "child_a", "child_b", "after"} <= names
    failed = await collect(client, None, "failing", input={}, stream_mode="events")
    assert failed[-1].event == "error"
    assert failed[-1].data == {"error": "ValueError", "message": "boom"}
    assert {p.event for p in failed[1:-1]} == {"events"}
