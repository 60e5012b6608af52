"""One node that waits `configurable.sleep` seconds, then appends the run's mark.

Double-texting tests read the marks to see which runs took effect, and in what order.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    marks: Annotated[list[str], operator.add]


async def mark(state: State, config: RunnableConfig) -> dict[str, Any]:
    await asyncio.sleep(float(config.get("configurable", {}).get("sleep", 0.0)))
    return {"marks": [str(config.get("configurable", {}).get("mark", "?"))]}


builder = StateGraph(State)
builder.add_node("mark", mark)
builder.add_edge(START, "mark")
graph = builder.compile()
