"""One node, ``flaky``, that fails with ``ConnectionError`` before it succeeds.

It carries ``RetryPolicy(max_attempts=3, initial_interval=0.01)``: failing twice, it
succeeds on LangGraph's third attempt. ``config["configurable"]["failures"]`` (default
2) sets how many attempts fail; 3 or more exhausts the policy and the run errors.

Attempts are counted per thread in this module (the server process runs it), and
LangGraph's own count (``runtime.execution_info.node_attempt``) goes into the result
beside it, so a client sees how many times the node ran.
"""

from __future__ import annotations

from typing import Any

from langgraph.config import get_config
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy
from typing_extensions import TypedDict

#: thread_id → attempts of the `flaky` node so far
ATTEMPTS: dict[str, int] = {}


class State(TypedDict, total=False):
    #: attempts this module counted for the thread
    attempts: int
    #: LangGraph's attempt number of the execution that succeeded
    node_attempt: int


def flaky(state: State, runtime: Runtime) -> dict[str, Any]:
    configurable = get_config().get("configurable", {})
    thread_id = str(configurable.get("thread_id", ""))
    ATTEMPTS[thread_id] = ATTEMPTS.get(thread_id, 0) + 1
    info = runtime.execution_info
    node_attempt = info.node_attempt if info is not None else ATTEMPTS[thread_id]
    if node_attempt <= int(configurable.get("failures", 2)):
        # ConnectionError: retried by LangGraph's default `retry_on`.
        raise ConnectionError(f"flaky failure on attempt {node_attempt}")
    return {"attempts": ATTEMPTS[thread_id], "node_attempt": node_attempt}


graph = (
    StateGraph(State)
    .add_node(
        "flaky",
        flaky,
        retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False),
    )
    .add_edge(START, "flaky")
    .compile()
)
