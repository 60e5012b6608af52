"""Request bodies on the wire (pydantic). Unknown fields are ignored, as the SDK sends extras."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from berth.core.ids import is_uuid
from berth.core.models import MultitaskStrategy, OnCompletion, OnDisconnect

StreamMode = Literal[
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "tasks",
    "checkpoints",
    "debug",
    "events",
]


AssistantField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]
ThreadField = Literal[
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "context",
    "status",
    "values",
    "interrupts",
    "error",
]


#: `key(.key|[index])*`, as `threads.search(extract=…)` takes them
EXTRACT_PATH = re.compile(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*|\[-?\d+\])*")


def _uuids(value: list[str] | None) -> list[str] | None:
    for item in value or []:
        if not is_uuid(item):
            raise ValueError(f"must be UUIDs, not {item!r}")
    return value


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AssistantCreate(Body):
    graph_id: str
    assistant_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None


class AssistantPatch(Body):
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


class AssistantSearch(Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[AssistantField] | None = None


class AssistantCount(Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None


class VersionsSearch(Body):
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class SetLatest(Body):
    version: int


class ThreadSuperstepUpdate(Body):
    values: Any = None
    command: dict[str, Any] | None = None
    as_node: str


class ThreadSuperstep(Body):
    updates: list[ThreadSuperstepUpdate]


class ThreadTTL(Body):
    strategy: Literal["delete", "keep_latest"] = "delete"
    #: minutes of inactivity after which the sweeper applies `strategy`
    ttl: float = Field(gt=0, le=60 * 24 * 365 * 100)


class ThreadCreate(Body):
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    graph_id: str | None = None
    supersteps: list[ThreadSuperstep] | None = None
    ttl: ThreadTTL | None = None


class ThreadPatch(Body):
    metadata: dict[str, Any] | None = None
    ttl: ThreadTTL | None = None


class ThreadPrune(Body):
    thread_ids: list[str] = Field(max_length=10_000)
    strategy: Literal["delete", "keep_latest"] = "delete"

    _ids = field_validator("thread_ids")(_uuids)


class ThreadSearch(Body):
    ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[ThreadField] | None = None
    extract: dict[str, str] | None = Field(None, max_length=10)

    _ids = field_validator("ids")(_uuids)

    @field_validator("extract")
    @classmethod
    def _paths(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for path in (value or {}).values():
            if not EXTRACT_PATH.fullmatch(path):
                raise ValueError(f"not a path like 'values.messages[-1]': {path!r}")
        return value


class ThreadCount(Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None


class StateUpdate(Body):
    values: Any = None
    as_node: str | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None


class StateAtCheckpoint(Body):
    checkpoint: dict[str, Any]
    subgraphs: bool = False
    select: list[str] | None = None


class HistoryQuery(Body):
    limit: int = Field(1, ge=1, le=10_000)
    before: str | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    select: list[str] | None = None


def _default_stream_mode() -> list[StreamMode]:
    return ["values"]


class RunCreate(Body):
    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    stream_mode: list[StreamMode] = Field(default_factory=_default_stream_mode)
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = None
    multitask_strategy: MultitaskStrategy = MultitaskStrategy.ENQUEUE
    if_not_exists: Literal["create", "reject"] = "reject"
    on_completion: OnCompletion = OnCompletion.DELETE
    on_disconnect: OnDisconnect = OnDisconnect.CONTINUE
    after_seconds: float | None = Field(None, ge=0)
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint_during: bool | None = None
    feedback_keys: list[str] | None = None
    strict_resume: bool | None = None

    @field_validator("stream_mode", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return ["values"]
        return [value] if isinstance(value, str) else value

    def resolved_durability(self) -> str | None:
        if self.durability:
            return self.durability
        if self.checkpoint_during is not None:
            return "async" if self.checkpoint_during else "exit"
        return None


class RunCancelMany(Body):
    status: Literal["pending", "running", "all"] | None = None
    thread_id: str | None = None
    run_ids: list[str] | None = None
