"""Drafts an action, then waits for a human to approve it (`interrupt()` + `Command(resume=…)`)."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    request: str
    draft: str
    approved: bool
    result: str


def draft(state: State) -> dict[str, Any]:
    return {"draft": f"I will {state.get('request', 'do nothing')}."}


def review(state: State) -> dict[str, Any]:
    answer = interrupt({"question": "Approve this action?", "draft": state["draft"]})
    return {"approved": bool(answer)}


def act(state: State) -> dict[str, Any]:
    return {"result": "done" if state.get("approved") else "cancelled"}


builder = StateGraph(State)
builder.add_node("draft", draft)
builder.add_node("review", review)
builder.add_node("act", act)
builder.add_edge(START, "draft")
builder.add_edge("draft", "review")
builder.add_edge("review", "act")
builder.add_edge("act", END)
graph = builder.compile()
