"""``prepare -> review -> finish``; ``review`` asks for approval through ``interrupt()``.

Every node execution is appended to the file named by ``BERTH_TEST_COUNTER_FILE`` as
``"<node> <thread_id>"``, so tests prove which nodes ran and how often. ``review``
logs before it interrupts: LangGraph re-runs an interrupted node from its start.
The interrupt carries a ``response_schema`` for the expected answer. Once answered,
``review`` sleeps ``config["configurable"]["sleep"]`` seconds (default 0), so a
resumed run can be kept in flight.
"""

from __future__ import annotations

import operator
import os
import time
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}},
    "required": ["approved"],
}


class State(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]
    answer: Any


def record(node: str, config: RunnableConfig) -> None:
    path = os.environ.get("BERTH_TEST_COUNTER_FILE")
    if path:
        thread_id = config.get("configurable", {}).get("thread_id", "")
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{node} {thread_id}\n")


def prepare(state: State, config: RunnableConfig) -> dict[str, Any]:
    record("prepare", config)
    return {"steps": ["prepare"]}


def review(state: State, config: RunnableConfig) -> dict[str, Any]:
    record("review", config)
    answer = interrupt({"question": "approve?"}, response_schema=ANSWER_SCHEMA)
    time.sleep(float(config.get("configurable", {}).get("sleep", 0.0)))
    return {"steps": ["review"], "answer": answer}


def finish(state: State, config: RunnableConfig) -> dict[str, Any]:
    record("finish", config)
    return {"steps": ["finish"]}


graph = (
    StateGraph(State)
    .add_node(prepare)
    .add_node(review)
    .add_node(finish)
    .add_edge(START, "prepare")
    .add_edge("prepare", "review")
    .add_edge("review", "finish")
    .compile()
)
