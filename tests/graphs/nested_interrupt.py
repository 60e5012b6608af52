"""Parent node ``inner`` is a child graph whose node ``ask`` interrupts with ``"inner?"``."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langgraph.graph import START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def before(state: State) -> dict[str, Any]:
    return {"items": ["before"]}


def ask(state: State) -> dict[str, Any]:
    return {"items": [str(interrupt("inner?"))]}


child = (
    StateGraph(State)
    .add_node(before)
    .add_node(ask)
    .add_edge(START, "before")
    .add_edge("before", "ask")
    .compile()
)

graph = StateGraph(State).add_node("inner", child).add_edge(START, "inner").compile()
