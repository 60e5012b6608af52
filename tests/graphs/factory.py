"""A graph factory: the reply names ``configurable.model_name`` (default ``"default"``)."""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def make_graph(config: RunnableConfig) -> CompiledStateGraph[Any, Any, Any, Any]:
    model_name = str(config.get("configurable", {}).get("model_name", "default"))

    def reply(state: State) -> dict[str, Any]:
        text = state["messages"][-1].text
        return {"messages": [AIMessage(content=f"{model_name}: echo: {text}")]}

    return StateGraph(State).add_node(reply).add_edge(START, "reply").compile()
