"""Asks for approval of the last human message through an interrupt, then answers.

The A2A tests drive it as a messages agent that pauses: ``"deploy"`` interrupts with
``"approve 'deploy'?"``; resumed with ``"yes"`` it replies ``"approved: deploy (yes)"``.
"""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def approve(state: State) -> dict[str, Any]:
    request = next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
    answer = interrupt(f"approve {request.text!r}?")
    return {"messages": [AIMessage(content=f"approved: {request.text} ({answer})")]}


graph = StateGraph(State).add_node(approve).add_edge(START, "approve").compile()
