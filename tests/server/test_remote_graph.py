"""`langgraph.pregel.remote.RemoteGraph` against Berth, sync and async."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.pregel.remote import RemoteException, RemoteGraph
from langgraph.types import Command

from tests.berth_server import BerthServer

HI = {"messages": [{"role": "user", "content": "hi"}]}


def contents(values: dict[str, Any]) -> list[str]:
    return [m["content"] if isinstance(m, dict) else m.content for m in values["messages"]]


def thread_config() -> dict[str, Any]:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


def test_invoke_sync(server: BerthServer) -> None:
    graph = RemoteGraph("echo", url=server.url)
    result = graph.invoke(HI)
    assert contents(result) == ["hi", "echo: hi"]


@pytest.mark.anyio
async def test_invoke_async(server: BerthServer) -> None:
    graph = RemoteGraph("echo", url=server.url)
    result = await graph.ainvoke(HI)
    assert contents(result) == ["hi", "echo: hi"]


def test_invoke_with_thread_keeps_state(server: BerthServer) -> None:
    graph = RemoteGraph("echo", url=server.url)
    config = thread_config()
    graph.invoke(HI, config)
    result = graph.invoke({"messages": [{"role": "user", "content": "again"}]}, config)
    assert contents(result) == ["hi", "echo: hi", "again", "echo: again"]
    state = graph.get_state(config)
    assert contents(state.values)[-1] == "echo: again"
    assert state.next == ()
    assert state.config["configurable"]["thread_id"] == config["configurable"]["thread_id"]


def test_stream_values_and_updates_sync(server: BerthServer) -> None:
    graph = RemoteGraph("echo", url=server.url)
    values = list(graph.stream(HI, stream_mode="values"))
    assert [contents(v) for v in values] == [["hi"], ["hi", "echo: hi"]]
    updates = list(graph.stream(HI, thread_config(), stream_mode="updates"))
    assert len(updates) == 1
    assert contents(updates[0]["echo"]) == ["echo: hi"]
    both = list(graph.stream(HI, stream_mode=["values", "updates"]))
    assert [part[0] for part in both] == ["values", "updates", "values"]


@pytest.mark.anyio
async def test_stream_async(server: BerthServer) -> None:
    graph = RemoteGraph("chain10", url=server.url)
    updates = [u async for u in graph.astream({"count": 0}, stream_mode="updates")]
    assert updates == [{f"n{i}": {"count": i + 1}} for i in range(10)]
    config = thread_config()
    values = [v async for v in graph.astream({"count": 0}, config, stream_mode="values")]
    assert values[-1] == {"count": 10}
    assert (await graph.aget_state(config)).values == {"count": 10}


@pytest.mark.anyio
async def test_stream_messages(server: BerthServer) -> None:
    graph = RemoteGraph("messages", url=server.url)
    parts = [p async for p in graph.astream(HI, stream_mode="messages")]
    texts = []
    for message, metadata in parts:
        assert metadata["langgraph_node"] == "chat"
        texts.append(message["content"] if isinstance(message, dict) else message.content)
    assert "".join(texts) == "hello there friend"
    sync_parts = list(RemoteGraph("messages", url=server.url).stream(HI, stream_mode="messages"))
    assert len(sync_parts) == len(parts)


def test_remote_error_raises(server: BerthServer) -> None:
    graph = RemoteGraph("failing", url=server.url)
    with pytest.raises(RemoteException) as info:
        graph.invoke({})
    assert info.value.args[0] == {"error": "ValueError", "message": "boom"}


def test_interrupt_then_resume_sync(server: BerthServer) -> None:
    graph = RemoteGraph("interrupting", url=server.url)
    config = thread_config()
    paused = graph.invoke({}, config)
    (item,) = paused["__interrupt__"]
    assert item["value"] == {"question": "what?"} and item["id"]
    state = graph.get_state(config)
    assert state.next == ("ask",)
    (interrupt,) = state.interrupts
    assert interrupt.value == {"question": "what?"}
    done = graph.invoke(Command(resume="yes"), config)
    assert done == {"answer": "yes", "value": "done:yes"}
    assert graph.get_state(config).next == ()


@pytest.mark.anyio
async def test_interrupt_then_resume_async(server: BerthServer) -> None:
    graph = RemoteGraph("interrupting", url=server.url)
    config = thread_config()
    updates = [u async for u in graph.astream({}, config, stream_mode="updates")]
    (item,) = updates[-1]["__interrupt__"]
    assert item["value"] == {"question": "what?"} and item["id"]
    resumed = [u async for u in graph.astream(Command(resume=42), config, stream_mode="values")]
    assert resumed[-1] == {"answer": 42, "value": "done:42"}


def test_message_objects_as_input(server: BerthServer) -> None:
    graph = RemoteGraph("echo", url=server.url)
    result = graph.invoke({"messages": [HumanMessage("obj")]})
    assert contents(result)[-1] == "echo: obj"
