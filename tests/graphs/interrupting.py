"""Asks ``{"question": "what?"}`` through an interrupt, then finishes with the answer."""

from __future__ import annotations

from typing import Any

from langgraph.graph import START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    value: str
    answer: str


def ask(state: State) -> dict[str, Any]:
    return {"answer": interrupt({"question": "what?"})}


def finish(state: State) -> dict[str, Any]:
    return {"value": "done:" + str(state["answer"])}


graph = (
    StateGraph(State)
    .add_node(ask)
    .add_node(finish)
    .add_edge(START, "ask")
    .add_edge("ask", "finish")
    .compile()
)
