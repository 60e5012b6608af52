"""Creating and cancelling runs: the rules of §4 of the contract, free of HTTP."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from berth import serde, tracing
from berth.core import errors, ids
from berth.core.models import (
    Assistant,
    CancelAction,
    Claim,
    MultitaskStrategy,
    OnCompletion,
    Run,
    RunStatus,
    ThreadStatus,
)
from berth.webhooks import policy

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
#: run options an assistant's config may carry; they are not part of the graph's config
_BREAKPOINTS = ("interrupt_before", "interrupt_after")
#: LangGraph interrupt ids (xxh3-128 hex digests): a resume keyed by them is a map
_INTERRUPT_ID = re.compile(r"^[0-9a-f]{32}$")


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
    #: a resume naming an interrupt that is not pending fails the run (LangGraph's strict resume)
    strict_resume: bool | None = None


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


def _breakpoint(key: str, requested: Any, configured: Any) -> Any:
    """The run's `interrupt_before`/`_after`: its own, else its assistant's config's."""
    value = requested if requested is not None else configured
    if value is None or value == "*":
        return value
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise errors.BadRequest(f'{key} must be "*" or a list of node names, not {value!r}')
    return value


class LocalWorkers(Protocol):
    """The worker pool of this process, as run admission sees it."""

    worker_id: str

    @property
    def lease_seconds(self) -> float: ...

    def reserve(self) -> bool: ...

    def unreserve(self) -> None: ...

    def adopt(self, run: Run) -> None: ...


class Runs:
    """Run admission and cancellation, over storage, the broker and the graphs."""

    def __init__(
        self,
        *,
        storage: Storage,
        broker: Broker,
        registry: GraphRegistry,
        webhook_policy: policy.UrlPolicy | None = None,
        workers: LocalWorkers | None = None,
    ) -> None:
        self.storage = storage
        self.broker = broker
        self.registry = registry
        #: this process's worker pool, to start new runs without a queue round trip
        self.workers = workers
        #: checks run webhooks (contract §7); the defaults are the safe ones
        self.webhook_policy = webhook_policy or policy.UrlPolicy()

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
        self,
        thread_id: str | None,
        request: RunRequest,
        *,
        run_id: str | None = None,
        trace: tracing.Incoming | None = None,
        server_metadata: dict[str, Any] | None = None,
        server_configurable: dict[str, Any] | None = None,
    ) -> Run:
        """Validate `request`, store the run as pending, and wake a worker.

        Args:
            thread_id: the thread to run on, or None for a stateless run.
            run_id: the id to give the run (a streaming caller subscribes to it first).
            trace: the caller's trace context (`tracing.incoming(headers)`); without it,
                the current span, if tracing is on.
            server_metadata: metadata the server itself attaches (a cron's `cron_id`);
                added after the request's is cleaned of server-owned keys.
            server_configurable: `config.configurable` entries the server attaches,
                added after the configurable/context check, which they do not count in.
        """
        if trace is None:
            trace = tracing.incoming()
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
        if checkpoint_id is not None and thread_id is not None:
            await self._check_checkpoint(thread_id, checkpoint_ns, checkpoint_id)
        if command and command.get("resume") is not None and thread_id is not None:
            await self._check_resume(thread_id, command["resume"], request, checkpoint_id)
        breakpoints = {
            key: _breakpoint(key, getattr(request, key), assistant.config.get(key))
            for key in _BREAKPOINTS
        }
        webhook = await self.webhook_policy.admit(request.webhook)

        merged_configurable = {**assistant.config.get("configurable", {}), **configurable}
        if trace is not None:
            # Contract §9: always copied, after the configurable/context check above.
            merged_configurable.update(trace.langsmith)
        merged_configurable.update(server_configurable or {})
        merged_context = {**assistant.context, **context}
        graph_config = {
            **{
                k: v
                for k, v in assistant.config.items()
                if k != "configurable" and k not in _BREAKPOINTS
            },
            **{k: v for k, v in config.items() if k != "configurable" and k not in _BREAKPOINTS},
            "configurable": merged_configurable,
        }
        temporary = stateless and request.on_completion == OnCompletion.DELETE
        metadata = {**_clean(request.metadata, _SERVER_METADATA), **(server_metadata or {})}
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
                "interrupt_before": breakpoints["interrupt_before"],
                "interrupt_after": breakpoints["interrupt_after"],
                "webhook": webhook,
                "feedback_keys": request.feedback_keys,
                "temporary": temporary,
                "subgraphs": request.stream_subgraphs,
                "resumable": request.stream_resumable,
                "durability": request.durability,
                **({"strict_resume": True} if request.strict_resume else {}),
                "checkpoint_id": checkpoint_id,
                "checkpoint_ns": checkpoint_ns,
                "graph_id": assistant.graph_id,
                # Restored by the worker: the run's spans are children of the caller's.
                **({"trace": trace.w3c} if trace is not None and trace.w3c else {}),
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
        workers = self.workers
        claim = None
        if workers is not None and not request.after_seconds and workers.reserve():
            claim = Claim(worker_id=workers.worker_id, lease_seconds=workers.lease_seconds)
        try:
            admission = await self.storage.runs.create(
                run,
                create_thread=stateless or request.if_not_exists == "create",
                new_thread=stateless,
                thread_metadata={
                    "graph_id": assistant.graph_id,
                    "assistant_id": assistant.assistant_id,
                },
                claim=claim,
            )
        except BaseException:
            if claim is not None and workers is not None:
                workers.unreserve()
            raise
        adopted = False
        if claim is not None and workers is not None:
            adopted = admission.run.status == RunStatus.RUNNING
            if adopted:
                workers.adopt(admission.run)
            else:
                workers.unreserve()
        if admission.cancel_action is not None:
            for run_id in admission.to_cancel:
                await self.broker.cancel(run_id, admission.cancel_action)
        for run_id in displaced:
            if run_id not in admission.to_cancel:
                await self._close_settled(run_id)
        if not adopted:  # queued: a worker (here or in another process) should look
            await self.broker.wake_workers()
        return admission.run

    async def _check_checkpoint(self, thread_id: str, ns: str, checkpoint_id: str) -> None:
        """404 for a replay from a checkpoint the thread does not have (else the run fails)."""
        config: Any = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint_id,
            }
        }
        if await self.storage.checkpointer.aget_tuple(config) is None:
            raise errors.NotFound(f"Checkpoint {checkpoint_id} not found on thread {thread_id}")

    async def _check_resume(
        self, thread_id: str, resume: Any, request: RunRequest, checkpoint_id: str | None
    ) -> None:
        """Refuse a resume that has no interrupt to answer (or cannot say which one).

        Only a settled thread is judged: with runs in flight, the multitask strategy
        decides, and a queued resume that finds nothing left to answer is ignored, as
        LangGraph ignores it. A resume at an explicit checkpoint is LangGraph's to judge.
        """
        try:
            thread = await self.storage.threads.get(thread_id)
        except errors.NotFound:
            if request.if_not_exists == "create":
                raise errors.BadRequest(
                    f"Cannot resume thread {thread_id}: it does not exist yet, so it has "
                    "no interrupt to answer; start it with input instead"
                ) from None
            return  # storage answers 404 for the missing thread
        if checkpoint_id is not None or await self.storage.runs.in_flight(thread_id=thread_id):
            return
        pending = [i for items in (thread.interrupts or {}).values() for i in items]
        # An error (a resume that failed) leaves its interrupts pending: still answerable.
        if thread.status != ThreadStatus.INTERRUPTED and not pending:
            raise errors.BadRequest(
                f"Cannot resume thread {thread_id}: it is not interrupted (status "
                f"{thread.status.value}), so there is no interrupt to answer. Send input "
                "instead, or resume from an interrupted checkpoint with checkpoint_id."
            )
        by_id = isinstance(resume, dict) and all(_INTERRUPT_ID.match(str(k)) for k in resume)
        if len(pending) > 1 and not by_id:
            ids_ = ", ".join(str(i.get("id")) for i in pending)
            raise errors.BadRequest(
                f"Thread {thread_id} has {len(pending)} pending interrupts: resume with a "
                f"map of interrupt id to value, e.g. {{<interrupt id>: value}} ({ids_})"
            )

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
        run = await self.storage.runs.delete(run_id, thread_id)
        await self._refresh_thread(thread_id, run.kwargs.get("graph_id"))
        await self._close_settled(run_id)

    async def _refresh_thread(self, thread_id: str, graph_id: Any) -> None:
        """Reset the thread's values and interrupts to its latest remaining checkpoint.

        The deleted run's checkpoints are gone, so the values it left on the thread
        must go too.
        """
        if not isinstance(graph_id, str) or graph_id not in self.registry:
            return
        config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        async with self.registry.get(graph_id).build(
            config, checkpointer=self.storage.checkpointer
        ) as graph:
            snapshot = await graph.aget_state(config)
        written = bool(snapshot.config.get("configurable", {}).get("checkpoint_id"))
        await self.storage.threads.record_state(
            thread_id,
            values=serde.to_jsonable(snapshot.values) if written else None,
            interrupts={
                t.id: [serde.interrupt_dict(i) for i in t.interrupts]
                for t in snapshot.tasks
                if t.interrupts
            },
            paused=bool(snapshot.next),
        )

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
