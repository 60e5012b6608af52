"""A2A tasks over Berth threads and runs: ids, states, message parts, and Task building.

An A2A context is a thread and a task is one run on it (`"{thread_id}:{run_id}"`), so a
task is never stored: it is rebuilt from the run, the thread's values and its pending
interrupts. Everything here speaks the a2a-sdk's v1.0 protobuf types; `a2a.py` turns
them into v1.0 or v0.3 JSON at the wire.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from typing import Any

from a2a.types import a2a_pb2 as pb
from google.protobuf import json_format

from berth.core import ids
from berth.core.models import Run, RunStatus, Thread, ThreadStatus

#: namespace of the message and artifact ids derived from Berth ids
_NAMESPACE = uuid.UUID("6f1c0a3e-4d2b-5e8f-9a7c-a2a0b3e17001")

STATES: dict[RunStatus, pb.TaskState] = {
    RunStatus.PENDING: pb.TASK_STATE_SUBMITTED,
    RunStatus.RUNNING: pb.TASK_STATE_WORKING,
    RunStatus.SUCCESS: pb.TASK_STATE_COMPLETED,
    RunStatus.INTERRUPTED: pb.TASK_STATE_CANCELED,
    RunStatus.ERROR: pb.TASK_STATE_FAILED,
    RunStatus.TIMEOUT: pb.TASK_STATE_FAILED,
}


class InvalidParts(ValueError):
    """The message's parts cannot become a run's input."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskRef:
    thread_id: str
    run_id: str

    @property
    def task_id(self) -> str:
        return f"{self.thread_id}:{self.run_id}"

    @classmethod
    def parse(cls, task_id: str) -> TaskRef | None:
        thread_id, sep, run_id = task_id.partition(":")
        if not sep or not ids.is_uuid(thread_id) or not ids.is_uuid(run_id):
            return None
        return cls(thread_id=thread_id, run_id=run_id)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Parts:
    """A message's parts, sorted by what they become in the run's input."""

    texts: list[str]
    #: LangChain content blocks for the file parts
    files: list[dict[str, Any]]
    #: the data parts merged: top-level input keys
    data: dict[str, Any]

    @property
    def has_content(self) -> bool:
        """Whether there is anything for a human message (which needs a `messages` key)."""
        return bool(self.texts or self.files)

    def human_message(self, message_id: str) -> dict[str, Any]:
        content: str | list[dict[str, Any]] = "\n".join(self.texts)
        if self.files:
            content = [{"type": "text", "text": t} for t in self.texts] + self.files
        message: dict[str, Any] = {"role": "user", "content": content}
        if message_id:
            message["id"] = message_id
        return message

    def run_input(self, message_id: str) -> dict[str, Any]:
        """The input of a new turn: data keys, plus the human message appended to `messages`."""
        values = dict(self.data)
        if self.has_content:
            earlier = values.get("messages") or []
            if not isinstance(earlier, list):
                raise InvalidParts("a data part's 'messages' must be a list")
            values["messages"] = [*earlier, self.human_message(message_id)]
        return values

    def resume_value(self) -> Any:
        """What answers a pending interrupt: `resume` data, else the text, else the data."""
        if "resume" in self.data:
            return self.data["resume"]
        if self.texts:
            return "\n".join(self.texts)
        if self.files:
            return self.human_message("")["content"]
        return self.data


def parse_parts(message: pb.Message) -> Parts:
    texts: list[str] = []
    files: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    for part in message.parts:
        kind = part.WhichOneof("content")
        if kind == "text":
            texts.append(part.text)
        elif kind == "data":
            value = plain(json_format.MessageToDict(part.data))
            if not isinstance(value, dict):
                raise InvalidParts("a data part must hold a JSON object (its keys become input)")
            data.update(value)
        elif kind in ("raw", "url"):
            files.append(_file_block(part, kind))
        else:
            raise InvalidParts("a part must have text, data, raw or url content")
    if not texts and not files and not data:
        raise InvalidParts("the message has no content: send a text, data or file part")
    return Parts(texts=texts, files=files, data=data)


def _file_block(part: pb.Part, kind: str) -> dict[str, Any]:
    mime = part.media_type or "application/octet-stream"
    family = mime.split("/", 1)[0]
    block: dict[str, Any] = {"type": family if family in ("image", "audio", "video") else "file"}
    if kind == "url":
        block["url"] = part.url
    else:
        block["base64"] = base64.b64encode(part.raw).decode("ascii")
    block["mime_type"] = mime
    if part.filename:
        block["extras"] = {"filename": part.filename}
    return block


def plain(value: Any) -> Any:
    """Undo protobuf's numbers-are-doubles: `1.0` back to `1` (JSON cannot tell them apart)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# -- outgoing ------------------------------------------------------------------


def text_of(content: Any) -> str:
    """The text of a LangChain message's content (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b if isinstance(b, str) else str(b.get("text", ""))
            for b in content
            if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")
        )
    return ""


def value_part(value: Any) -> pb.Part:
    """A string as a text part, anything else as a data part."""
    if isinstance(value, str):
        return pb.Part(text=value)
    part = pb.Part(media_type="application/json")
    json_format.ParseDict(value, part.data)
    return part


def agent_message(ref: TaskRef, parts: list[pb.Part], message_id: str | None = None) -> pb.Message:
    return pb.Message(
        message_id=message_id or str(uuid.uuid4()),
        context_id=ref.thread_id,
        task_id=ref.task_id,
        role=pb.ROLE_AGENT,
        parts=parts,
    )


def _history(ref: TaskRef, values: Any) -> list[pb.Message]:
    messages = values.get("messages") if isinstance(values, dict) else None
    if not isinstance(messages, list):
        return []
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        kind = message.get("type")
        role = {"human": pb.ROLE_USER, "ai": pb.ROLE_AGENT}.get(str(kind))
        text = text_of(message.get("content"))
        if role is None or not text:
            continue
        message_id = message.get("id") or str(uuid.uuid5(_NAMESPACE, f"{ref.thread_id}/{index}"))
        out.append(
            pb.Message(
                message_id=str(message_id),
                context_id=ref.thread_id,
                task_id=ref.task_id,
                role=role,
                parts=[pb.Part(text=text)],
            )
        )
    return out


def _artifacts(ref: TaskRef, values: Any) -> list[pb.Artifact]:
    """The answer: the last message if the agent wrote it, else (no messages) the state."""
    artifact_id = str(uuid.uuid5(_NAMESPACE, ref.run_id))
    if not isinstance(values, dict):
        return []
    messages = values.get("messages")
    if isinstance(messages, list):
        last = messages[-1] if messages else None
        if isinstance(last, dict) and last.get("type") == "ai":
            text = text_of(last.get("content"))
            if text:
                return [
                    pb.Artifact(
                        artifact_id=artifact_id, name="response", parts=[pb.Part(text=text)]
                    )
                ]
        return []
    return [pb.Artifact(artifact_id=artifact_id, name="state", parts=[value_part(values)])]


def _interrupt_values(thread: Thread) -> list[Any]:
    return [
        item.get("value") if isinstance(item, dict) else item
        for items in (thread.interrupts or {}).values()
        for item in (items or [])
    ]


def build_task(
    run: Run, thread: Thread | None, *, latest: bool, history_length: int | None = None
) -> pb.Task:
    """The task of `run`; `latest` says the thread's values and interrupts are its own."""
    ref = TaskRef(thread_id=run.thread_id, run_id=run.run_id)
    current = thread if latest else None
    status = pb.TaskStatus(state=STATES[run.status])
    status.timestamp.FromDatetime(run.updated_at)
    task = pb.Task(id=ref.task_id, context_id=ref.thread_id)
    completed = status.state == pb.TASK_STATE_COMPLETED
    if completed and current is not None and current.status == ThreadStatus.INTERRUPTED:
        status.state = pb.TASK_STATE_INPUT_REQUIRED
        parts = [value_part(v) for v in _interrupt_values(current) if v is not None]
        status.message.CopyFrom(agent_message(ref, parts or [pb.Part(text="input required")]))
    elif status.state == pb.TASK_STATE_FAILED:
        status.message.CopyFrom(agent_message(ref, [pb.Part(text=_error_text(run, current))]))
    elif completed and current is not None:
        task.artifacts.extend(_artifacts(ref, current.values))
    task.status.CopyFrom(status)
    history = _history(ref, thread.values if thread is not None else None)
    if history_length is not None:
        history = history[-history_length:] if history_length > 0 else []
    task.history.extend(history)
    return task


def _error_text(run: Run, thread: Thread | None) -> str:
    error = run.error or (thread.error if thread is not None else None)
    if not isinstance(error, dict):
        if run.status == RunStatus.TIMEOUT:
            return "TimeoutError: the run exceeded its time limit"
        return "Error: the run failed"
    return f"{error.get('error', 'Error')}: {error.get('message', '')}"


def user_message(message: pb.Message, ref: TaskRef) -> pb.Message:
    user = pb.Message()
    user.CopyFrom(message)
    user.role = pb.ROLE_USER
    user.context_id, user.task_id = ref.thread_id, ref.task_id
    return user


def with_request(task: pb.Task, message: pb.Message, ref: TaskRef) -> None:
    """Put the caller's message in the history if the state does not hold it (a resume,
    or a graph without `messages`): after the last user message, before the answer."""
    history = list(task.history)
    if any(m.message_id == message.message_id for m in history):
        return
    users = [i for i, m in enumerate(history) if m.role == pb.ROLE_USER]
    at = users[-1] + 1 if users else 0
    history.insert(at, user_message(message, ref))
    del task.history[:]
    task.history.extend(history)


def chunk_text(data: Any) -> tuple[str, str] | None:
    """`(message id, text)` of a `messages` stream event from the agent, else None."""
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return None
    chunk = data[0]
    if chunk.get("type") not in ("ai", "AIMessageChunk"):
        return None
    text = text_of(chunk.get("content"))
    return (str(chunk.get("id") or ""), text) if text else None
