"""Benchmark graph: one node that appends ``"echo: <text>"`` to ``messages``.

``builder`` is exported uncompiled so the in-process floor can compile it with its
own checkpointer; the server loads ``graph``.
"""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def echo(state: State) -> dict[str, Any]:
    last = state["messages"][-1]
    return {"messages": [AIMessage(content=f"echo: {last.text}")]}


builder = StateGraph(State).add_node(echo).add_edge(START, "echo")
graph = builder.compile()
