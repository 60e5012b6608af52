"""One node, ``tick``, that records when it ran.

It appends ``tick <thread_id> <unix time>`` to the file named by
``BERTH_TEST_COUNTER_FILE`` (if set) and adds the time to ``ran_at``, so a test can
tell when, and how many times, a (delayed) run executed.
"""

from __future__ import annotations

import operator
import os
import time
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    ran_at: Annotated[list[float], operator.add]


def tick(state: State, config: RunnableConfig) -> dict[str, Any]:
    now = time.time()
    thread_id = str(config.get("configurable", {}).get("thread_id", ""))
    path = os.environ.get("BERTH_TEST_COUNTER_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"tick {thread_id} {now}\n")
            f.flush()
            os.fsync(f.fileno())
    return {"ran_at": [now]}


graph = StateGraph(State).add_node(tick).add_edge(START, "tick").compile()
