"""Domain objects as stored and served; frozen so no layer edits them in passing."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    #: stored and waiting for a worker (or for its `after_seconds` delay)
    PENDING = "pending"
    #: claimed by a worker that holds its lease
    RUNNING = "running"
    #: the graph finished or paused on an interrupt
    SUCCESS = "success"
    #: the graph raised
    ERROR = "error"
    #: the run exceeded its time limit
    TIMEOUT = "timeout"
    #: cancelled (by a user, a disconnect or a double-text)
    INTERRUPTED = "interrupted"

    @property
    def is_final(self) -> bool:
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


class ThreadStatus(StrEnum):
    #: no run in flight, the last one ended cleanly
    IDLE = "idle"
    #: a run is pending or running
    BUSY = "busy"
    #: the graph paused and waits for input
    INTERRUPTED = "interrupted"
    #: the last run raised
    ERROR = "error"


class MultitaskStrategy(StrEnum):
    #: refuse the new run while another is in flight
    REJECT = "reject"
    #: queue the new run behind the others
    ENQUEUE = "enqueue"
    #: cancel the in-flight run, keep its checkpoints, then run
    INTERRUPT = "interrupt"
    #: cancel and delete the in-flight run and its checkpoints, then run
    ROLLBACK = "rollback"


class CancelAction(StrEnum):
    #: stop the run and keep what it wrote
    INTERRUPT = "interrupt"
    #: stop the run and delete it with its checkpoints
    ROLLBACK = "rollback"


class OnCompletion(StrEnum):
    DELETE = "delete"
    KEEP = "keep"


class OnDisconnect(StrEnum):
    CANCEL = "cancel"
    CONTINUE = "continue"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Assistant:
    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class Thread:
    thread_id: str
    created_at: datetime
    updated_at: datetime
    state_updated_at: datetime | None
    metadata: dict[str, Any]
    config: dict[str, Any]
    status: ThreadStatus
    values: Any
    interrupts: dict[str, Any]
    error: Any = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Run:
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: datetime
    updated_at: datetime
    status: RunStatus
    metadata: dict[str, Any]
    kwargs: dict[str, Any]
    multitask_strategy: MultitaskStrategy
    #: 1 for the first execution, +1 each time a lost worker's run is retried
    attempt: int = 0
    #: the run may not start before this moment (`after_seconds`)
    available_at: datetime | None = None
    #: the thread was made for this run and goes when it ends
    temporary: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        """The run as the API serves it."""
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "assistant_id": self.assistant_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "status": self.status.value,
            "metadata": self.metadata,
            "kwargs": self.kwargs,
            "multitask_strategy": self.multitask_strategy.value,
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class Claim:
    """A worker ready to take a new run in the transaction that stores it."""

    worker_id: str
    lease_seconds: float
