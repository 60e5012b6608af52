"""Execute one claimed run: build its graph, stream it to the broker, record the end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langgraph._internal._constants import CONFIG_KEY_STRICT_RESUME
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, Send

from berth import serde, tracing
from berth.core.models import CancelAction, Run, RunStatus
from berth.graphs import GraphRegistry
from berth.queue.chunks import LANGGRAPH_MODE, ChunkTranslator
from berth.storage import checkpoints
from berth.storage.base import Storage
from berth.storage.runs import Outcome
from berth.streaming.base import Broker

log = logging.getLogger("berth.executor")


class Executor:
    def __init__(
        self, *, storage: Storage, registry: GraphRegistry, broker: Broker, run_timeout: float
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.broker = broker
        self.run_timeout = run_timeout
        #: checkpoints of temporary threads: in memory, dropped when their run ends
        self.scratch = InMemorySaver()

    async def execute(self, run: Run, cancel: CancelSlot) -> Run | None:
        """Run the graph to its end and record the outcome; return the final run."""
        with tracing.attempt(run) as span:
            return await self._execute(run, cancel, span)

    async def _execute(
        self, run: Run, cancel: CancelSlot, span: tracing.Attempt | tracing.NoAttempt
    ) -> Run | None:
        kwargs = run.kwargs
        translator = ChunkTranslator(kwargs.get("stream_mode") or ["values"])
        if not run.temporary:
            # `GET /threads/{id}/stream` follows every run of the thread.
            self.broker.bind_thread(run.run_id, run.thread_id)
        await self.broker.publish(
            run.run_id, "metadata", serde.dumps({"run_id": run.run_id, "attempt": run.attempt})
        )
        try:
            async with asyncio.timeout(self.run_timeout):
                outcome = await self._stream(run, translator, span)
        except TimeoutError:
            outcome = Outcome(status=RunStatus.TIMEOUT)
            await self._publish_error(run, "TimeoutError", "the run exceeded its time limit")
        except asyncio.CancelledError:
            action = cancel.action
            if action is None:
                raise  # the worker is shutting down: the run goes back to the queue
            outcome = Outcome(status=RunStatus.INTERRUPTED, discard=action == CancelAction.ROLLBACK)
        except Exception as exc:
            log.info("run %s failed: %s: %s", run.run_id, type(exc).__name__, exc)
            error = {"error": type(exc).__name__, "message": str(exc)}
            outcome = Outcome(status=RunStatus.ERROR, error=error)
            await self._publish_error(run, error["error"], error["message"])
            outcome = await self._with_state(run, outcome)
        span.finish(outcome.status, outcome.error)
        final = await self.storage.runs.finish(run.run_id, outcome)
        await self.broker.finish(run.run_id, keep=bool(kwargs.get("resumable")))
        return final

    async def _publish_error(self, run: Run, name: str, message: str) -> None:
        await self.broker.publish(
            run.run_id, "error", serde.dumps({"error": name, "message": message})
        )

    async def _stream(
        self, run: Run, translator: ChunkTranslator, span: tracing.Attempt | tracing.NoAttempt
    ) -> Outcome:
        kwargs = run.kwargs
        config = span.instrument(run_config(run))
        if translator.attempts is not None:
            # Counts task attempts (RetryPolicy) for the `tasks`/`debug` results.
            config = merge_configs(config, {"callbacks": [translator.attempts]})
        requested = kwargs.get("stream_mode") or ["values"]
        modes = sorted({"values", *(LANGGRAPH_MODE[m] for m in requested if m in LANGGRAPH_MODE)})
        nested = bool(kwargs.get("subgraphs"))
        options: dict[str, Any] = {
            "context": kwargs.get("context") or None,
            "stream_mode": modes,
            "subgraphs": nested,
            "interrupt_before": kwargs.get("interrupt_before"),
            "interrupt_after": kwargs.get("interrupt_after"),
            "durability": kwargs.get("durability") or "async",
        }
        loaded = self.registry.get(kwargs["graph_id"])
        # A temporary thread is deleted when its run ends, so its checkpoints live in
        # memory (interrupts still work within the run), as the reference server does.
        checkpointer = self.scratch if run.temporary else self.storage.checkpointer
        try:
            async with loaded.build(config, checkpointer=checkpointer) as graph:
                return await self._drive(run, graph, config, options, translator)
        finally:
            if run.temporary:
                await self.scratch.adelete_thread(run.thread_id)

    async def _drive(
        self,
        run: Run,
        graph: Any,
        config: RunnableConfig,
        options: dict[str, Any],
        translator: ChunkTranslator,
    ) -> Outcome:
        """Stream the built graph's chunks to the broker; the run's outcome at its end."""
        kwargs = run.kwargs
        requested = kwargs.get("stream_mode") or ["values"]
        nested = bool(options["subgraphs"])
        # Options come from stored JSON; LangGraph's overloads expect literal types.
        pregel: Any = graph
        if "events" in requested:
            events = pregel.astream_events(graph_input(kwargs), config, version="v2", **options)
            stream = self._root_chunks(run.run_id, events)
        else:
            stream = pregel.astream(graph_input(kwargs), config, **options)
        last_values: Any = None
        async for chunk in stream:
            ns, mode, payload = chunk if nested else ((), *chunk)
            if mode == "values" and not ns:
                last_values = payload
            if not _wanted(mode, requested):
                continue
            for event, data in translator.translate(ns, mode, payload):
                await self.broker.publish(run.run_id, event, data)
        outcome = await self._with_state(run, Outcome(status=RunStatus.SUCCESS), graph=graph)
        if "values" in requested:
            await self._publish_pause(run, last_values, outcome)
        return outcome

    async def _publish_pause(self, run: Run, last_values: Any, outcome: Outcome) -> None:
        """End a paused run's `values` stream with its last values and every interrupt.

        LangGraph streams each interrupt of a superstep in its own `values` chunk and
        may end on a chunk without them (parallel branches, `goto`); `invoke` merges
        them into its result, and so must the run's last `values` event, which `/wait`
        and `RemoteGraph.invoke` return.
        """
        pending = [i for items in (outcome.interrupts or {}).values() for i in items]
        if not outcome.paused or not pending:
            return
        if not isinstance(last_values, dict):
            last_values = outcome.values or {}
        shown = last_values.get("__interrupt__", ())
        if {i["id"] for i in pending} <= {getattr(i, "id", None) for i in shown}:
            return
        values = {k: v for k, v in last_values.items() if k != "__interrupt__"}
        merged = {**serde.to_jsonable(values), "__interrupt__": pending}
        await self.broker.publish(run.run_id, "values", serde.dumps(merged))

    async def _root_chunks(
        self, run_id: str, events: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[Any]:
        """Publish astream_events records as `events`; yield the graph's own stream chunks.

        The root run's `on_chain_stream` records carry exactly what `astream` would have
        yielded, so every other requested mode is served from them, in order.
        """
        root: str | None = None
        async for event in events:
            if root is None:
                root = event["run_id"]
            if event["event"] == "on_chain_stream" and event["run_id"] == root:
                yield event["data"]["chunk"]
            elif "langsmith:hidden" not in (event.get("tags") or ()):
                await self.broker.publish(run_id, "events", serde.dumps(event))

    async def _with_state(self, run: Run, outcome: Outcome, graph: Any = None) -> Outcome:
        """Add the thread's latest values and pending interrupts to `outcome`."""
        if run.temporary:
            return outcome
        if graph is None:
            loaded = self.registry.get(run.kwargs["graph_id"])
            async with loaded.build(run_config(run), checkpointer=self.storage.checkpointer) as g:
                return await self._with_state(run, outcome, graph=g)
        state = await graph.aget_state({"configurable": {"thread_id": run.thread_id}})
        interrupts = {
            task.id: [serde.interrupt_dict(i) for i in task.interrupts]
            for task in state.tasks
            if task.interrupts
        }
        return Outcome(
            status=outcome.status,
            error=outcome.error,
            values=serde.to_jsonable(state.values),
            interrupts=interrupts,
            paused=bool(state.next) and outcome.status == RunStatus.SUCCESS,
            discard=outcome.discard,
        )


def _wanted(mode: str, requested: list[str]) -> bool:
    """Whether a LangGraph chunk of `mode` feeds a mode the client asked for."""
    if mode == "messages":
        return "messages" in requested or "messages-tuple" in requested
    return mode in requested


class CancelSlot:
    """Where a cancel request leaves its action for the run's task to read."""

    __slots__ = ("action", "started")

    def __init__(self) -> None:
        self.action: CancelAction | None = None
        #: the run's task began executing (cancelling it earlier would skip its cleanup)
        self.started = False


def run_config(run: Run) -> RunnableConfig:
    kwargs = run.kwargs
    config = dict(kwargs.get("config") or {})
    configurable = dict(config.get("configurable") or {})
    configurable.update(
        run_id=run.run_id,
        thread_id=run.thread_id,
        assistant_id=run.assistant_id,
        graph_id=kwargs["graph_id"],
    )
    # Tells BerthSaver these checkpoints belong to a stored run (see `_run_gone`).
    configurable[checkpoints.RUN_GUARD_KEY] = run.run_id
    if kwargs.get("strict_resume"):
        # A resume naming an interrupt that is not pending fails instead of being ignored.
        configurable[CONFIG_KEY_STRICT_RESUME] = True
    if kwargs.get("checkpoint_id") and run.attempt <= 1:
        configurable["checkpoint_id"] = kwargs["checkpoint_id"]
        configurable.setdefault("checkpoint_ns", kwargs.get("checkpoint_ns") or "")
    config["configurable"] = configurable
    # LangGraph treats a run whose id matches the latest checkpoint's as a resumption:
    # a retried run continues from its last checkpoint instead of restarting.
    config["metadata"] = {
        **(config.get("metadata") or {}),
        **run.metadata,
        "run_id": run.run_id,
        "run_attempt": run.attempt,
    }
    return cast(RunnableConfig, config)


def graph_input(kwargs: dict[str, Any]) -> Any:
    command = kwargs.get("command")
    if command:
        goto = command.get("goto")
        if isinstance(goto, dict):
            goto = Send(goto["node"], goto.get("input"))
        elif isinstance(goto, list):
            goto = [Send(g["node"], g.get("input")) if isinstance(g, dict) else g for g in goto]
        return Command(
            update=command.get("update"),
            resume=command.get("resume"),
            goto=goto or (),
        )
    return kwargs.get("input")
