"""Writes ``{"progress": 1}`` and ``{"progress": 2}`` to the custom stream."""

from __future__ import annotations

from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    done: bool


def work(state: State) -> dict[str, Any]:
    write = get_stream_writer()
    write({"progress": 1})
    write({"progress": 2})
    return {"done": True}


graph = StateGraph(State).add_node(work).add_edge(START, "work").compile()
