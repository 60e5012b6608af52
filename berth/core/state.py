"""Thread state: reading, writing and listing checkpoints through the thread's graph."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langgraph.types import StateSnapshot

from berth import serde
from berth.core import errors, ids

if TYPE_CHECKING:
    from berth.graphs import GraphRegistry
    from berth.storage.base import Storage
    from berth.streaming.base import Broker


def _checkpoint(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    conf = config.get("configurable", {})
    if "checkpoint_id" not in conf:
        return None
    out = {
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
    }
    if conf.get("checkpoint_map"):
        out["checkpoint_map"] = conf["checkpoint_map"]
    return out


def snapshot_dict(snapshot: StateSnapshot) -> dict[str, Any]:
    """A `StateSnapshot` as the API serves it (contract §2, ThreadState)."""
    checkpoint = _checkpoint(snapshot.config)
    parent = _checkpoint(snapshot.parent_config)
    tasks = []
    for task in snapshot.tasks:
        state = task.state
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path),
                "error": None
                if task.error is None
                else f"{type(task.error).__name__}({task.error})",
                "interrupts": [serde.interrupt_dict(i) for i in task.interrupts],
                "checkpoint": _checkpoint(state) if isinstance(state, dict) else None,
                "state": snapshot_dict(state) if isinstance(state, StateSnapshot) else None,
                "result": task.result,
            }
        )
    return serde.to_jsonable(
        {
            "values": snapshot.values,
            "next": list(snapshot.next),
            "tasks": tasks,
            "checkpoint": checkpoint,
            "parent_checkpoint": parent,
            "metadata": snapshot.metadata,
            "created_at": snapshot.created_at,
            "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
            "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
            "interrupts": [serde.interrupt_dict(i) for i in snapshot.interrupts],
        }
    )


EMPTY_STATE: dict[str, Any] = {
    "values": {},
    "next": [],
    "tasks": [],
    "checkpoint": None,
    "parent_checkpoint": None,
    "metadata": None,
    "created_at": None,
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
    "interrupts": [],
}


def checkpoint_config(
    thread_id: str, checkpoint: dict[str, Any] | None = None, checkpoint_id: str | None = None
) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    checkpoint = checkpoint or {}
    for key in ("checkpoint_ns", "checkpoint_id", "checkpoint_map"):
        if checkpoint.get(key) is not None:
            configurable[key] = checkpoint[key]
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    if configurable.get("checkpoint_id") and not ids.is_uuid(str(configurable["checkpoint_id"])):
        raise errors.InvalidInput(
            f"checkpoint_id must be a UUID, not {configurable['checkpoint_id']!r}"
        )
    return {"configurable": configurable}


class ThreadState:
    """State reads and writes for a thread, through the graph its runs use."""

    def __init__(self, *, storage: Storage, registry: GraphRegistry, broker: Broker) -> None:
        self.storage = storage
        self.registry = registry
        self.broker = broker

    async def _graph_id(self, thread_id: str) -> str | None:
        thread = await self.storage.threads.get(thread_id)
        graph_id = thread.metadata.get("graph_id")
        return graph_id if isinstance(graph_id, str) and graph_id in self.registry else None

    async def get(
        self,
        thread_id: str,
        *,
        checkpoint: dict[str, Any] | None = None,
        checkpoint_id: str | None = None,
        subgraphs: bool = False,
    ) -> dict[str, Any]:
        graph_id = await self._graph_id(thread_id)
        config = checkpoint_config(thread_id, checkpoint, checkpoint_id)
        if graph_id is None:
            return {**EMPTY_STATE, "values": {}}
        async with self.registry.get(graph_id).build(
            config, checkpointer=self.storage.checkpointer
        ) as graph:
            if config["configurable"].get("checkpoint_id"):
                found = await self.storage.checkpointer.aget_tuple(config)  # type: ignore[arg-type]
                if found is None:
                    raise errors.NotFound(
                        f"Checkpoint {config['configurable']['checkpoint_id']} not found"
                    )
            snapshot = await graph.aget_state(config, subgraphs=subgraphs)
        if not snapshot.config.get("configurable", {}).get("checkpoint_id") and not snapshot.values:
            return dict(EMPTY_STATE)
        return snapshot_dict(snapshot)

    async def history(
        self,
        thread_id: str,
        *,
        limit: int,
        before: str | dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        checkpoint: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        graph_id = await self._graph_id(thread_id)
        if graph_id is None:
            return []
        config = checkpoint_config(thread_id, checkpoint)
        before_config = None
        if isinstance(before, dict):
            before_config = checkpoint_config(thread_id, before)
        elif before:
            before_config = checkpoint_config(thread_id, checkpoint_id=before)
        async with self.registry.get(graph_id).build(
            config, checkpointer=self.storage.checkpointer
        ) as graph:
            return [
                snapshot_dict(s)
                async for s in graph.aget_state_history(
                    config, filter=metadata or None, before=before_config, limit=limit
                )
            ]

    async def update(
        self,
        thread_id: str,
        *,
        values: Any,
        as_node: str | None,
        checkpoint: dict[str, Any] | None,
        checkpoint_id: str | None,
    ) -> dict[str, Any]:
        thread = await self.storage.threads.get(thread_id)
        graph_id = thread.metadata.get("graph_id")
        if not isinstance(graph_id, str) or graph_id not in self.registry:
            raise errors.BadRequest(
                f"Thread {thread_id} has no graph: create it with graph_id or run it first"
            )
        if await self.storage.runs.in_flight(thread_id=thread_id):
            raise errors.Conflict(f"Thread {thread_id} has a run in flight; try again after it")
        config = checkpoint_config(thread_id, checkpoint, checkpoint_id)
        async with self.registry.get(graph_id).build(
            config, checkpointer=self.storage.checkpointer
        ) as graph:
            try:
                new_config = await graph.aupdate_state(config, values, as_node=as_node)
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.BadRequest(f"Cannot update state: {exc}") from exc
            snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        interrupts = {
            t.id: [serde.interrupt_dict(i) for i in t.interrupts]
            for t in snapshot.tasks
            if t.interrupts
        }
        await self.storage.threads.record_state(
            thread_id,
            values=serde.to_jsonable(snapshot.values),
            interrupts=interrupts,
            paused=bool(snapshot.next),
        )
        return {"checkpoint": _checkpoint(new_config)}
