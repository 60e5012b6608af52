"""Three nodes ``s1 -> s2 -> s3`` that log each execution and then sleep.

Durability tests kill the server mid-run and read the log named by
``BERTH_TEST_COUNTER_FILE`` to prove committed nodes never run twice.
Each node sleeps for ``config["configurable"]["sleep"]`` seconds (default 0).
"""

from __future__ import annotations

import asyncio
import operator
import os
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    steps: Annotated[list[str], operator.add]


def _record(node: str, thread_id: str) -> None:
    path = os.environ.get("BERTH_TEST_COUNTER_FILE")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{node} {thread_id}\n")
        f.flush()
        # The writer may be SIGKILLed right after; the line must already be on disk.
        os.fsync(f.fileno())


async def _step(name: str, config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable", {})
    _record(name, str(configurable.get("thread_id", "")))
    await asyncio.sleep(float(configurable.get("sleep", 0.0)))
    return {"steps": [name]}


async def s1(state: State, config: RunnableConfig) -> dict[str, Any]:
    return await _step("s1", config)


async def s2(state: State, config: RunnableConfig) -> dict[str, Any]:
    return await _step("s2", config)


async def s3(state: State, config: RunnableConfig) -> dict[str, Any]:
    return await _step("s3", config)


graph = (
    StateGraph(State)
    .add_node(s1)
    .add_node(s2)
    .add_node(s3)
    .add_edge(START, "s1")
    .add_edge("s1", "s2")
    .add_edge("s2", "s3")
    .compile()
)
