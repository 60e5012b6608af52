"""Two nodes, ``first -> second``; ``first`` reports the trace context it runs under.

``seen`` holds the LangSmith entries of ``configurable`` and the trace id of the current
LangSmith parent run, so tests can check what the server carried into the run.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langsmith.run_helpers import get_current_run_tree
from typing_extensions import TypedDict

LANGSMITH_KEYS = ("langsmith-trace", "langsmith-metadata", "langsmith-tags", "langsmith-project")


class State(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]
    seen: dict[str, Any]


def first(state: State, config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable") or {}
    seen: dict[str, Any] = {key: configurable.get(key) for key in LANGSMITH_KEYS}
    parent = get_current_run_tree()
    seen["langsmith_parent_trace_id"] = str(parent.trace_id) if parent is not None else None
    return {"steps": ["first"], "seen": seen}


def second(state: State) -> dict[str, Any]:
    return {"steps": ["second"]}


graph = (
    StateGraph(State)
    .add_node(first)
    .add_node(second)
    .add_edge(START, "first")
    .add_edge("first", "second")
    .compile()
)
