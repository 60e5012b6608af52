"""A2A messages and tasks over Berth's run path: start the run a message asks for, and
rebuild a task from its run and thread.

A message runs on its context's thread (created on first use); on a thread that waits
at an interrupt, the message answers it (`Command(resume=…)`) instead of starting a turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from a2a.types import a2a_pb2 as pb

from berth.api.deps import Components
from berth.core import errors, ids, results
from berth.core.models import Assistant, Run, ThreadStatus
from berth.core.runs import RunRequest
from berth.protocols import a2a_tasks
from berth.protocols.a2a_tasks import TaskRef
from berth.streaming.base import StreamEvent

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002


class RpcError(Exception):
    """A JSON-RPC error object for the caller (sent with HTTP 200)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def task_ref(task_id: str) -> TaskRef:
    ref = TaskRef.parse(task_id)
    if ref is None:
        raise RpcError(TASK_NOT_FOUND, f"Task not found: {task_id!r}")
    return ref


async def load_task(
    c: Components, assistant: Assistant, ref: TaskRef, history_length: int | None = None
) -> pb.Task:
    """The task as it stands now; a run of another assistant is not found."""
    try:
        run = await c.storage.runs.get(ref.run_id, ref.thread_id)
    except errors.NotFound:
        raise RpcError(TASK_NOT_FOUND, f"Task not found: {ref.task_id!r}") from None
    if run.assistant_id != assistant.assistant_id:
        raise RpcError(TASK_NOT_FOUND, f"Task not found: {ref.task_id!r}")
    try:
        thread = await c.storage.threads.get(ref.thread_id)
        latest = await c.storage.runs.list(ref.thread_id, limit=1)
    except errors.NotFound:
        return a2a_tasks.build_task(run, None, latest=False, history_length=history_length)
    is_latest = bool(latest) and latest[0].run_id == run.run_id
    return a2a_tasks.build_task(run, thread, latest=is_latest, history_length=history_length)


async def has_messages(c: Components, assistant: Assistant) -> bool:
    """Whether the assistant's graph takes a `messages` key as input."""
    loaded = c.registry.get(assistant.graph_id)
    async with loaded.build(assistant.config, checkpointer=None) as graph:
        try:
            schema = graph.get_input_jsonschema()
        except Exception:  # a type pydantic cannot describe: fall back to the state keys
            return "messages" in graph.channels
        return "messages" in (schema.get("properties") or {})


async def start(
    c: Components, assistant: Assistant, message: pb.Message, *, stream: bool
) -> tuple[Run, AsyncIterator[StreamEvent]]:
    """Map the message onto its context's thread and start the run it asks for.

    Args:
        stream: also stream the agent's tokens (`messages-tuple`), for `message/stream`.

    Returns:
        The run and a subscription to all of its events.
    """
    parts = a2a_tasks.parse_parts(message)
    context_id = message.context_id
    if message.task_id:
        ref = task_ref(message.task_id)
        if context_id and context_id != ref.thread_id:
            raise RpcError(INVALID_PARAMS, "Invalid params: taskId is not in this contextId")
        context_id = ref.thread_id
    thread_id = context_id or ids.new_id()
    if not ids.is_uuid(thread_id):
        raise RpcError(INVALID_PARAMS, f"Invalid params: contextId must be a UUID: {thread_id!r}")
    thread = await c.storage.threads.create(
        thread_id=thread_id,
        metadata={"graph_id": assistant.graph_id, "assistant_id": assistant.assistant_id},
        if_exists="do_nothing",
    )
    command: dict[str, Any] | None = None
    graph_input: Any = None
    if thread.status == ThreadStatus.INTERRUPTED:
        command = {"resume": parts.resume_value()}
    elif "resume" in parts.data:
        raise RpcError(
            INVALID_PARAMS, "Invalid params: 'resume' given, but nothing waits for input"
        )
    else:
        if parts.has_content and not await has_messages(c, assistant):
            raise RpcError(
                INVALID_PARAMS,
                f"Invalid params: assistant {assistant.name!r} has no 'messages' key in its "
                "input, so text and file parts cannot be mapped; send a data part instead",
            )
        graph_input = parts.run_input(message.message_id)
    request = RunRequest(
        assistant_id=assistant.assistant_id,
        input=graph_input,
        command=command,
        stream_mode=["values", "messages-tuple"] if stream else ["values"],
        metadata={"a2a_message_id": message.message_id} if message.message_id else None,
    )
    return await results.start(c.runs, c.broker, thread_id, request)


async def close(events: AsyncIterator[StreamEvent]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
