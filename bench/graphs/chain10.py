"""Benchmark graph: ten nodes ``n0..n9`` in a line, each adding one to ``count``.

``builder`` is exported uncompiled so the in-process floor can compile it with its
own checkpointer; the server loads ``graph``.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    count: int


def increment(state: State) -> dict[str, Any]:
    return {"count": state.get("count", 0) + 1}


builder = StateGraph(State)
previous = START
for i in range(10):
    builder.add_node(f"n{i}", increment)
    builder.add_edge(previous, f"n{i}")
    previous = f"n{i}"
graph = builder.compile()
