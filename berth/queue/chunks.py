"""LangGraph stream chunks → Agent Server SSE events (contract §6.3, §6.4)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, BaseMessageChunk

from berth import serde

#: API stream mode → the LangGraph stream mode that feeds it
LANGGRAPH_MODE = {
    "values": "values",
    "updates": "updates",
    "messages": "messages",
    "messages-tuple": "messages",
    "custom": "custom",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "debug": "debug",
}


#: the tag LangGraph gives (uninherited) to the run of each attempt of a task, and only to it
_TASK_TAG = "graph:step:"


class TaskAttempts(BaseCallbackHandler):
    """Counts how many times each LangGraph task of a run was attempted, by task id.

    LangGraph retries a task under its `RetryPolicy` inside one task: `tasks`/`debug`
    show one start and one result whatever the attempts. Each attempt does start its
    own callback run, tagged `graph:step:<n>` (not inherited by the runs nested in
    it), whose `langgraph_checkpoint_ns` metadata ends in `<node>:<task id>`.
    """

    #: called on the event loop, not handed to a thread pool: the count must be
    #: complete before LangGraph streams the task's result, and it is cheap
    run_inline = True

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not tags or not metadata or not any(t.startswith(_TASK_TAG) for t in tags):
            return
        ns = metadata.get("langgraph_checkpoint_ns")
        if not isinstance(ns, str):
            return
        # Node names may contain neither `|` nor `:` (LangGraph refuses them).
        task_id = ns.rpartition("|")[2].rpartition(":")[2]
        if task_id:
            self.counts[task_id] = self.counts.get(task_id, 0) + 1

    # Only chain starts matter: skip every other callback LangGraph would dispatch.
    @property
    def ignore_llm(self) -> bool:
        return True

    @property
    def ignore_chat_model(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_agent(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True


class ChunkTranslator:
    """Turns `(namespace, mode, payload)` chunks into `(event, json)` pairs for one run."""

    def __init__(self, modes: list[str]) -> None:
        self.modes = set(modes)
        self._partial: dict[str, BaseMessageChunk] = {}
        self._announced: set[str] = set()
        #: the callback handler counting task attempts, for the run's config; only
        #: when a mode shows task results, so other runs pay nothing for it
        self.attempts = TaskAttempts() if self.modes & {"tasks", "debug"} else None

    def translate(
        self, ns: tuple[str, ...], mode: str, payload: Any
    ) -> Iterator[tuple[str, bytes]]:
        suffix = "".join("|" + part for part in ns)
        if mode == "messages":
            message, meta = payload
            if "messages-tuple" in self.modes:
                yield "messages" + suffix, serde.dumps([message, meta])
            if "messages" in self.modes:
                yield from self._legacy_messages(message, meta)
            return
        if mode in ("tasks", "debug"):
            payload = self._with_attempts(mode, payload)
        yield mode + suffix, serde.dumps(payload)

    def _with_attempts(self, mode: str, payload: Any) -> Any:
        """A task result's payload, with `attempts` when its task ran more than once.

        Only an extra field on the result: a separate event per failed attempt would
        break clients that pair each task's start with exactly one result (and read
        any payload with `error` as the task's end). Tasks that ran once are as
        LangGraph streams them.
        """
        if self.attempts is None or not isinstance(payload, dict):
            return payload
        if mode == "debug":
            inner = payload.get("payload")
            if payload.get("type") != "task_result" or not isinstance(inner, dict):
                return payload
            return {**payload, "payload": self._with_attempts("tasks", inner)}
        if "result" not in payload:
            return payload  # a task start
        attempts = self.attempts.counts.get(str(payload.get("id")), 0)
        return {**payload, "attempts": attempts} if attempts > 1 else payload

    def _legacy_messages(
        self, message: BaseMessage, meta: dict[str, Any]
    ) -> Iterator[tuple[str, bytes]]:
        # The older `messages` mode: metadata once per message id, then the message so
        # far (`partial`) or whole (`complete`). Never namespaced.
        msg_id = message.id or ""
        if msg_id not in self._announced:
            self._announced.add(msg_id)
            yield "messages/metadata", serde.dumps({msg_id: {"metadata": meta}})
        if isinstance(message, BaseMessageChunk):
            so_far = self._partial.get(msg_id)
            so_far = message if so_far is None else so_far + message
            self._partial[msg_id] = so_far
            yield "messages/partial", serde.dumps([so_far])
        else:
            self._partial.pop(msg_id, None)
            yield "messages/complete", serde.dumps([message])
