"""The Broker port. `memory.py` serves one process; a Redis broker serves many."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from berth.core.models import CancelAction


@dataclasses.dataclass(frozen=True, slots=True)
class StreamEvent:
    #: `<epoch_ms>-<seq>`, strictly increasing within a run
    id: str
    #: the SSE event name (`values`, `updates|child:1`, `metadata`, `error`, …)
    event: str
    #: the JSON payload, encoded once by the publisher
    data: bytes


CancelHandler = Callable[[str, CancelAction], Awaitable[None]]


#: events a thread's channel keeps for `Last-Event-ID` replays
THREAD_WINDOW = 1000


def run_done(run_id: str) -> bytes:
    """The `metadata` payload a thread's channel carries when one of its runs ends."""
    return b'{"status":"run_done","run_id":"' + run_id.encode() + b'"}'


def event_key(event_id: str) -> tuple[int, int]:
    """Order of an event id; `-`, `-1`, `0` and malformed ids sort before everything."""
    ms, _, seq = event_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return (-1, -1)


class Broker(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, run_id: str, event: str, data: bytes) -> StreamEvent:
        """Append an event to the run's stream and deliver it to its subscribers."""
        ...

    async def finish(self, run_id: str, *, keep: bool) -> None:
        """Close the run's stream; `keep` holds its events for late replays a while."""
        ...

    def subscribe(self, run_id: str, *, after: str | None) -> AsyncIterator[StreamEvent]:
        """The run's events after `after`, ending when it closes.

        `after=None` follows only events published after the first read; `"0-0"` reads
        from the run's first event, so subscribing so before the run is stored misses
        nothing.
        """
        ...

    def bind_thread(self, run_id: str, thread_id: str) -> None:
        """Mirror the run's events on its thread's channel until `finish`.

        `finish` then adds `metadata {"status": "run_done", "run_id"}` to the channel.
        """
        ...

    async def publish_thread(self, thread_id: str, event: str, data: bytes) -> None:
        """Append an event (e.g. `state_update`) to the thread's channel only."""
        ...

    def subscribe_thread(self, thread_id: str, *, after: str | None) -> AsyncIterator[StreamEvent]:
        """The thread's events after `after` (None: only new ones), never ending.

        A thread's channel keeps a bounded window of recent events for replays.
        """
        ...

    async def is_finished(self, run_id: str) -> bool | None:
        """Whether the run's stream closed (None: this broker does not know the run)."""
        ...

    async def cancel(self, run_id: str, action: CancelAction) -> None:
        """Ask whichever worker holds the run to stop it."""
        ...

    def on_cancel(self, handler: CancelHandler) -> None: ...

    async def wake_workers(self) -> None:
        """Tell idle workers a run may be ready."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when woken or after `timeout` seconds."""
        ...
