"""Thread state: reading, writing and listing checkpoints through the thread's graph."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateSnapshot, StateUpdate

from berth import serde
from berth.core import errors, ids

if TYPE_CHECKING:
    from berth.graphs import GraphRegistry
    from berth.storage.base import Storage
    from berth.streaming.base import Broker


def _checkpoint(config: Mapping[str, Any] | None, *, need_id: bool = True) -> dict[str, Any] | None:
    """The API's Checkpoint object for a config; None when it names no checkpoint.

    A pending subgraph task's config names the child's namespace but no checkpoint id
    yet (`need_id=False` keeps it, so clients can address the child's state).
    """
    if not config:
        return None
    conf = config.get("configurable", {})
    if need_id and "checkpoint_id" not in conf:
        return None
    out: dict[str, Any] = {
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
                "checkpoint": (
                    _checkpoint(state, need_id=False) if isinstance(state, dict) else None
                ),
                "state": snapshot_dict(state) if isinstance(state, StateSnapshot) else None,
                "result": task.result,
            }
        )
    jsonable: dict[str, Any] = serde.to_jsonable(
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
    return jsonable


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
) -> RunnableConfig:
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
            await self._require_checkpoint(config)
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
        before_config: RunnableConfig | None = None
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
        """Apply one update as `as_node` would have; return the new checkpoint.

        At a past checkpoint the update forks the thread: the new checkpoint's parent
        is that one, and the thread's latest state becomes the fork.
        """
        config = checkpoint_config(thread_id, checkpoint, checkpoint_id)
        # LangGraph would write an unknown checkpoint's update onto an empty state.
        await self._require_checkpoint(config)
        return await self._write(
            thread_id, config, lambda graph: graph.aupdate_state(config, values, as_node=as_node)
        )

    async def _require_checkpoint(self, config: RunnableConfig) -> None:
        """404 when `config` names a checkpoint id that the thread does not have."""
        if not config["configurable"].get("checkpoint_id"):
            return
        if await self.storage.checkpointer.aget_tuple(config) is None:
            raise errors.NotFound(f"Checkpoint {config['configurable']['checkpoint_id']} not found")

    async def bulk_update(
        self, thread_id: str, supersteps: list[list[dict[str, Any]]]
    ) -> dict[str, Any]:
        """Apply supersteps of updates, each superstep one checkpoint (`POST /threads`)."""
        config = checkpoint_config(thread_id)
        steps = [
            [StateUpdate(u.get("values"), u.get("as_node"), u.get("task_id")) for u in step]
            for step in supersteps
        ]
        return await self._write(
            thread_id, config, lambda graph: graph.abulk_update_state(config, steps)
        )

    async def _write(
        self,
        thread_id: str,
        config: RunnableConfig,
        apply: Callable[[Any], Awaitable[Any]],
    ) -> dict[str, Any]:
        thread = await self.storage.threads.get(thread_id)
        graph_id = thread.metadata.get("graph_id")
        if not isinstance(graph_id, str) or graph_id not in self.registry:
            raise errors.BadRequest(
                f"Thread {thread_id} has no graph: create it with graph_id or run it first"
            )
        if await self.storage.runs.in_flight(thread_id=thread_id):
            raise errors.Conflict(f"Thread {thread_id} has a run in flight; try again after it")
        async with self.registry.get(graph_id).build(
            config, checkpointer=self.storage.checkpointer
        ) as graph:
            try:
                new_config = await apply(graph)
            except (ValueError, KeyError, TypeError, InvalidUpdateError) as exc:
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
        # `GET /threads/{id}/stream` in `state_update` mode (contract §6.6).
        await self.broker.publish_thread(
            thread_id,
            "state_update",
            serde.dumps({"state": snapshot_dict(snapshot), "thread_id": thread_id}),
        )
        return {"checkpoint": _checkpoint(new_config)}
