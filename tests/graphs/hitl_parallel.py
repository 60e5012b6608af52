"""Three parallel branches that meet in ``merge``; two of them pause at once.

``a`` interrupts with ``"a?"``; ``b`` is a child graph (``b_prep -> b_ask``) whose
``b_ask`` interrupts with ``"b?"``; ``c`` never pauses. Each node execution is logged
to ``BERTH_TEST_COUNTER_FILE`` as ``"<node> <thread_id>"`` (see ``hitl.py``), so a
resume can be shown to run only what was still pending.
"""

from __future__ import annotations

import operator
import os
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def record(node: str, config: RunnableConfig) -> None:
    path = os.environ.get("BERTH_TEST_COUNTER_FILE")
    if path:
        # A child graph's nodes see the parent's thread_id in their config.
        thread_id = config.get("configurable", {}).get("thread_id", "")
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{node} {thread_id}\n")


def a(state: State, config: RunnableConfig) -> dict[str, Any]:
    record("a", config)
    return {"items": [f"a={interrupt('a?')}"]}


def b_prep(state: State, config: RunnableConfig) -> dict[str, Any]:
    record("b_prep", config)
    return {"items": ["b_prep"]}


def b_ask(state: State, config: RunnableConfig) -> dict[str, Any]:
    record("b_ask", config)
    return {"items": [f"b={interrupt('b?')}"]}


def c(state: State, config: RunnableConfig) -> dict[str, Any]:
    record("c", config)
    return {"items": ["c"]}


def merge(state: State, config: RunnableConfig) -> dict[str, Any]:
    record("merge", config)
    return {"items": ["merge"]}


child = (
    StateGraph(State)
    .add_node(b_prep)
    .add_node(b_ask)
    .add_edge(START, "b_prep")
    .add_edge("b_prep", "b_ask")
    .compile()
)

graph = (
    StateGraph(State)
    .add_node(a)
    .add_node("b", child)
    .add_node(c)
    .add_node(merge)
    .add_edge(START, "a")
    .add_edge(START, "b")
    .add_edge(START, "c")
    .add_edge(["a", "b", "c"], "merge")
    .compile()
)
