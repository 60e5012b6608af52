"""Parent node ``inner`` is a compiled child graph (``child_a -> child_b``), then ``after``."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def child_a(state: State) -> dict[str, Any]:
    return {"items": ["child_a"]}


def child_b(state: State) -> dict[str, Any]:
    return {"items": ["child_b"]}


def after(state: State) -> dict[str, Any]:
    return {"items": ["after"]}


child = (
    StateGraph(State)
    .add_node(child_a)
    .add_node(child_b)
    .add_edge(START, "child_a")
    .add_edge("child_a", "child_b")
    .compile()
)

graph = (
    StateGraph(State)
    .add_node("inner", child)
    .add_node(after)
    .add_edge(START, "inner")
    .add_edge("inner", "after")
    .compile()
)
