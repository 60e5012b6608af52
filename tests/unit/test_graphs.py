"""The deterministic test graphs run in-process, with LangGraph's InMemorySaver."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel import Pregel
from langgraph.types import Command

from tests.berth_server import GRAPHS_CONFIG

#: the graphs these unit tests exercise directly; the config may register more
GRAPH_IDS = {
    "echo",
    "chain10",
    "interrupting",
    "failing",
    "slow",
    "messages",
    "custom",
    "subgraph",
    "factory",
}


def _load(graph_id: str) -> Any:
    """Load ``./file.py:attr`` by file path, the way the server does."""
    spec = json.loads(GRAPHS_CONFIG.read_text())["graphs"][graph_id]
    file, attr = spec.rsplit(":", 1)
    name = f"berth_test_graphs_{graph_id}"
    module_spec = importlib.util.spec_from_file_location(name, GRAPHS_CONFIG.parent / file)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    # Registered before exec: with postponed annotations LangGraph resolves the
    # state's type hints through sys.modules[State.__module__].
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return getattr(module, attr)


def _graph(graph_id: str, config: RunnableConfig | None = None) -> Pregel[Any, Any, Any, Any]:
    target = _load(graph_id)
    graph = target if isinstance(target, Pregel) else target(config or {})
    assert isinstance(graph, Pregel)
    return graph.copy(update={"checkpointer": InMemorySaver()})


def _thread() -> RunnableConfig:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


def test_config_registers_every_graph() -> None:
    spec = json.loads(GRAPHS_CONFIG.read_text())
    assert GRAPH_IDS <= set(spec["graphs"])
    assert spec["dependencies"] == ["."]
    for ref in spec["graphs"].values():
        file, _, attr = (ref if isinstance(ref, str) else ref["path"]).partition(":")
        assert file.startswith("./") and attr
        assert (GRAPHS_CONFIG.parent / file).is_file()


@pytest.mark.parametrize("graph_id", sorted(GRAPH_IDS))
def test_module_loads(graph_id: str) -> None:
    target = _load(graph_id)
    assert isinstance(target, Pregel) or callable(target)


def test_echo() -> None:
    result = _graph("echo").invoke({"messages": [{"role": "user", "content": "hi"}]}, _thread())
    reply = result["messages"][-1]
    assert isinstance(reply, AIMessage)
    assert reply.content == "echo: hi"
    assert len(result["messages"]) == 2


def test_chain10() -> None:
    graph = _graph("chain10")
    updates = list(graph.stream({"count": 0}, _thread(), stream_mode="updates"))
    assert [next(iter(u)) for u in updates] == [f"n{i}" for i in range(10)]
    assert graph.invoke({"count": 5}, _thread()) == {"count": 15}


def test_interrupting() -> None:
    graph = _graph("interrupting")
    config = _thread()
    first = graph.invoke({"value": "start"}, config)
    [pending] = first["__interrupt__"]
    assert pending.value == {"question": "what?"}
    assert graph.get_state(config).next == ("ask",)
    result = graph.invoke(Command(resume="42"), config)
    assert result == {"value": "done:42", "answer": "42"}


def test_failing() -> None:
    with pytest.raises(ValueError) as caught:
        _graph("failing").invoke({}, _thread())
    assert caught.value.args == ("boom",)


@pytest.mark.anyio
async def test_slow_records_executions(counter_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_TEST_COUNTER_FILE", str(counter_file))
    config = _thread()
    config["configurable"]["sleep"] = 0.01
    result = await _graph("slow").ainvoke({"steps": []}, config)
    assert result == {"steps": ["s1", "s2", "s3"]}
    thread_id = config["configurable"]["thread_id"]
    assert counter_file.read_text().splitlines() == [
        f"s1 {thread_id}",
        f"s2 {thread_id}",
        f"s3 {thread_id}",
    ]


@pytest.mark.anyio
async def test_slow_without_counter_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BERTH_TEST_COUNTER_FILE", raising=False)
    result = await _graph("slow").ainvoke({"steps": []}, _thread())
    assert result == {"steps": ["s1", "s2", "s3"]}


@pytest.mark.anyio
async def test_messages_streams_word_chunks() -> None:
    graph = _graph("messages")
    chunks: list[str] = []
    async for message, metadata in graph.astream(
        {"messages": [{"role": "user", "content": "hi"}]}, _thread(), stream_mode="messages"
    ):
        assert isinstance(message, AIMessageChunk)
        assert isinstance(metadata, dict) and metadata["langgraph_node"] == "chat"
        chunks.append(message.text)
    assert [c for c in chunks if c] == ["hello", " there", " friend"]

    result = await graph.ainvoke({"messages": [{"role": "user", "content": "hi"}]}, _thread())
    assert result["messages"][-1].content == "hello there friend"


def test_custom_stream() -> None:
    graph = _graph("custom")
    parts = list(graph.stream({}, _thread(), stream_mode=["custom", "values"]))
    assert [data for mode, data in parts if mode == "custom"] == [
        {"progress": 1},
        {"progress": 2},
    ]
    assert parts[-1] == ("values", {"done": True})


def test_subgraph() -> None:
    graph = _graph("subgraph")
    result = graph.invoke({"items": []}, _thread())
    assert result == {"items": ["child_a", "child_b", "after"]}

    namespaces = [ns for ns, _ in graph.stream({"items": []}, _thread(), subgraphs=True)]
    assert any(ns and ns[0].startswith("inner:") for ns in namespaces)
    assert () in namespaces


@pytest.mark.parametrize(("configurable", "name"), [({"model_name": "m1"}, "m1"), ({}, "default")])
def test_factory(configurable: dict[str, Any], name: str) -> None:
    graph = _graph("factory", {"configurable": configurable})
    result = graph.invoke({"messages": [{"role": "user", "content": "hi"}]}, _thread())
    assert result["messages"][-1].content == f"{name}: echo: hi"


def test_graph_modules_are_standalone() -> None:
    """The server imports each file on its own; none may import another."""
    for path in GRAPHS_CONFIG.parent.glob("*.py"):
        source = path.read_text()
        assert "from ." not in source, path
        assert "import tests" not in source and "from tests" not in source, path
