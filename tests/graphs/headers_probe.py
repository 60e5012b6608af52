"""Returns the request headers the server copied into `config.configurable`."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    seen: dict[str, Any]


def probe(state: State, config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable", {})
    names = ("x-", "authorization", "cookie")
    return {"seen": {k: v for k, v in configurable.items() if k.startswith(names)}}


builder = StateGraph(State)
builder.add_node("probe", probe)
builder.add_edge(START, "probe")
graph = builder.compile()
