"""A single node that always raises ``ValueError("boom")``."""

from __future__ import annotations

from typing import Any

from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    value: str


def fail(state: State) -> dict[str, Any]:
    raise ValueError("boom")


graph = StateGraph(State).add_node(fail).add_edge(START, "fail").compile()
