"""Creating and cancelling runs: the rules of §4 of the contract, free of HTTP."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from berth.core import errors, ids
from berth.core.models import (
    Assistant,
    CancelAction,
    MultitaskStrategy,
    OnCompletion,
    Run,
    RunStatus,
)

if TYPE_CHECKING:
    from berth.graphs import GraphRegistry
    from berth.storage.base import Storage
    from berth.streaming.base import Broker

#: configurable/context keys the server owns; a client's values are dropped
_SERVER_KEYS = {
    "run_id",
    "thread_id",
    "graph_id",
    "assistant_id",
    "user_id",
    "checkpoint_id",
    "checkpoint_ns",
    "checkpoint_map",
    "langgraph_request_id",
}
#: metadata keys the server owns
_SERVER_METADATA = {"thread_id", "assistant_id", "run_id", "cron_id"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunRequest:
    """A validated run-creation body (contract §4)."""

    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    stream_mode: list[str] = dataclasses.field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: Any = None
    interrupt_after: Any = None
    webhook: str | None = None
    multitask_strategy: MultitaskStrategy = MultitaskStrategy.ENQUEUE
    if_not_exists: str = "reject"
    on_completion: OnCompletion = OnCompletion.DELETE
    after_seconds: float | None = None
    durability: str | None = None
    feedback_keys: list[str] | None = None


def resolve_assistant_id(assistant_id: str, registry: GraphRegistry) -> str:
    """A graph id names its default assistant; anything else must be a UUID."""
    if assistant_id in registry:
        return ids.default_assistant_id(assistant_id)
    if not ids.is_uuid(assistant_id):
        raise errors.InvalidInput(
            f"assistant_id must be a UUID or a graph id, not {assistant_id!r}"
        )
    return assistant_id


def _clean(mapping: dict[str, Any] | None, reserved: set[str]) -> dict[str, Any]:
    return {
        k: v
        for k, v in (mapping or {}).items()
        if k not in reserved and not k.startswith("langgraph_auth_") and not k.startswith("__")
    }


class Runs:
    """Run admission and cancellation, over storage, the broker and the graphs."""

    def __init__(self, *, storage: Storage, broker: Broker, registry: GraphRegistry) -> None:
        self.storage = storage
        self.broker = broker
        self.registry = registry

    async def assistant_for(self, assistant_id: str) -> Assistant:
        resolved = resolve_assistant_id(assistant_id, self.registry)
        try:
            assistant = await self.storage.assistants.get(resolved)
        except errors.NotFound:
            raise errors.NotFound("Thread or assistant not found.") from None
        if assistant.graph_id not in self.registry:
            raise errors.NotFound(f"Graph {assistant.graph_id!r} of assistant not found")
        return assistant

    async def create(
        self, thread_id: str | None, request: RunRequest, *, run_id: str | None = None
    ) -> Run:
        """Validate `request`, store the run as pending, and wake a worker.

        Args:
            thread_id: the thread to run on, or None for a stateless run.
            run_id: the id to give the run (a streaming caller subscribes to it first).
        """
        assistant = await self.assistant_for(request.assistant_id)
        stateless = thread_id is None
        config = dict(request.config or {})
        configurable = _clean(config.get("configurable"), _SERVER_KEYS)
        context = _clean(request.context, _SERVER_KEYS)
        if configurable and context:
            raise errors.BadRequest(
                "Cannot specify both configurable and context. Prefer setting context alone."
            )
        command = request.command or None
        if command and command.get("resume") is not None and stateless:
            raise errors.BadRequest("Cannot resume a stateless run: there is no thread to resume")
        checkpoint_id = request.checkpoint_id
        checkpoint_ns = ""
        if request.checkpoint:
            checkpoint_id = request.checkpoint.get("checkpoint_id") or checkpoint_id
            checkpoint_ns = request.checkpoint.get("checkpoint_ns") or ""
        if checkpoint_id is not None and not ids.is_uuid(checkpoint_id):
            raise errors.InvalidInput(f"checkpoint_id must be a UUID, not {checkpoint_id!r}")

        merged_configurable = {**assistant.config.get("configurable", {}), **configurable}
        merged_context = {**assistant.context, **context}
        graph_config = {
            **{k: v for k, v in assistant.config.items() if k != "configurable"},
            **{k: v for k, v in config.items() if k != "configurable"},
            "configurable": merged_configurable,
        }
        temporary = stateless and request.on_completion == OnCompletion.DELETE
        metadata = _clean(request.metadata, _SERVER_METADATA)
        now = datetime.now(UTC)
        run = Run(
            run_id=run_id or ids.new_id(),
            thread_id=thread_id or ids.new_id(),
            assistant_id=assistant.assistant_id,
            created_at=now,
            updated_at=now,
            status=RunStatus.PENDING,
            metadata=metadata,
            kwargs={
                "input": request.input,
                "command": command,
                "config": graph_config,
                "context": merged_context,
                "stream_mode": request.stream_mode,
                "interrupt_before": request.interrupt_before,
                "interrupt_after": request.interrupt_after,
                "webhook": request.webhook,
                "feedback_keys": request.feedback_keys,
                "temporary": temporary,
                "subgraphs": request.stream_subgraphs,
                "resumable": request.stream_resumable,
                "durability": request.durability,
                "checkpoint_id": checkpoint_id,
                "checkpoint_ns": checkpoint_ns,
                "graph_id": assistant.graph_id,
            },
            multitask_strategy=request.multitask_strategy,
            available_at=now + timedelta(seconds=request.after_seconds or 0),
            temporary=temporary,
        )
        # Pending runs an interrupt/rollback settles in storage have no worker to close
        # their streams; note them now to close them after.
        displaced: list[str] = []
        if not stateless and request.multitask_strategy in (
            MultitaskStrategy.INTERRUPT,
            MultitaskStrategy.ROLLBACK,
        ):
            displaced = [r.run_id for r in await self.storage.runs.in_flight(thread_id=thread_id)]
        admission = await self.storage.runs.create(
            run,
            create_thread=stateless or request.if_not_exists == "create",
            thread_metadata={
                "graph_id": assistant.graph_id,
                "assistant_id": assistant.assistant_id,
            },
        )
        if admission.cancel_action is not None:
            for run_id in admission.to_cancel:
                await self.broker.cancel(run_id, admission.cancel_action)
        for run_id in displaced:
            if run_id not in admission.to_cancel:
                await self._close_settled(run_id)
        await self.broker.wake_workers()
        return admission.run

    async def cancel(self, run_ids: list[str], action: CancelAction) -> list[str]:
        """Cancel runs; pending ones at once, running ones by signalling their worker."""
        running = await self.storage.runs.cancel(run_ids, action)
        for run_id in running:
            await self.broker.cancel(run_id, action)
        for run_id in run_ids:
            if run_id not in running:
                await self._close_settled(run_id)
        return running

    async def delete(self, run_id: str, thread_id: str) -> None:
        """Delete a run that is not running (its checkpoints go with it)."""
        await self.storage.runs.delete(run_id, thread_id)
        await self._close_settled(run_id)

    async def _close_settled(self, run_id: str) -> None:
        """Close the stream of a run that ended without a worker (a cancelled pending run).

        Clients streaming or joining it wait for the stream to close; no worker will.
        """
        if await self.broker.is_finished(run_id) is not False:
            return
        try:
            run = await self.storage.runs.get(run_id)
        except errors.NotFound:
            run = None  # a rollback deleted it
        if run is None or run.status == RunStatus.INTERRUPTED:
            await self.broker.finish(run_id, keep=False)
