"""Reads and writes the server's cross-thread store from graph nodes.

`write` (sync, `store` parameter) puts `{"note": note}` under `("graph", user)` key
`"from_graph"` and reads `("api", user)` key `"from_api"`; `read` (async, `get_store()`)
lists the keys under `("graph", user)`.
"""

from __future__ import annotations

from typing import Any

from langgraph.config import get_store
from langgraph.graph import START, StateGraph
from langgraph.store.base import BaseStore
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    user: str
    note: str
    api_value: dict[str, Any] | None
    graph_keys: list[str]


def write(state: State, store: BaseStore) -> dict[str, Any]:
    user = state["user"]
    store.put(("graph", user), "from_graph", {"note": state.get("note", "")})
    item = store.get(("api", user), "from_api")
    return {"api_value": item.value if item is not None else None}


async def read(state: State) -> dict[str, Any]:
    found = await get_store().asearch(("graph", state["user"]))
    return {"graph_keys": sorted(item.key for item in found)}


graph = (
    StateGraph(State)
    .add_node(write)
    .add_node(read)
    .add_edge(START, "write")
    .add_edge("write", "read")
    .compile()
)
