"""MemoryBroker: the embedded, single-process broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from berth.core.models import CancelAction
from berth.streaming.base import CancelHandler, StreamEvent, event_key


class _RunStream:
    __slots__ = ("changed", "events", "finished", "last_ms", "seq")

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self.changed = asyncio.Event()
        self.finished = False
        self.last_ms = 0
        self.seq = 0

    def next_id(self) -> str:
        ms = int(time.time() * 1000)
        if ms <= self.last_ms:
            self.seq += 1
        else:
            self.last_ms, self.seq = ms, 0
        return f"{self.last_ms}-{self.seq}"

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class MemoryBroker:
    """Run streams kept in this process's memory.

    Args:
        stream_ttl: seconds a finished run's events stay for `Last-Event-ID` replays.
    """

    def __init__(self, *, stream_ttl: float = 120.0) -> None:
        self.stream_ttl = stream_ttl
        self._streams: dict[str, _RunStream] = {}
        self._cancel_handlers: list[CancelHandler] = []
        self._work = asyncio.Event()
        self._expiry: set[asyncio.TimerHandle] = set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for handle in self._expiry:
            handle.cancel()
        self._expiry.clear()
        for stream in self._streams.values():
            stream.finished = True
            stream.notify()

    def _stream(self, run_id: str) -> _RunStream:
        stream = self._streams.get(run_id)
        if stream is None:
            stream = self._streams[run_id] = _RunStream()
        return stream

    async def publish(self, run_id: str, event: str, data: bytes) -> StreamEvent:
        stream = self._stream(run_id)
        item = StreamEvent(stream.next_id(), event, data)
        stream.events.append(item)
        stream.notify()
        return item

    async def finish(self, run_id: str, *, keep: bool) -> None:
        stream = self._stream(run_id)
        stream.finished = True
        stream.notify()
        delay = self.stream_ttl if keep else 0.0
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def expire() -> None:
            # Readers still holding the stream finish reading it; new ones won't find it.
            self._expiry.discard(handle)  # type: ignore[arg-type]
            if self._streams.get(run_id) is stream:
                del self._streams[run_id]

        handle = loop.call_later(delay, expire)
        self._expiry.add(handle)

    async def is_finished(self, run_id: str) -> bool | None:
        stream = self._streams.get(run_id)
        return None if stream is None else stream.finished

    def subscribe(self, run_id: str, *, after: str | None) -> AsyncIterator[StreamEvent]:
        # Registered now, not at first iteration, so events published between this call
        # and the first read are not lost.
        stream = self._stream(run_id)
        if after is None:
            index = len(stream.events)
        else:
            key = event_key(after)
            index = 0
            while index < len(stream.events) and event_key(stream.events[index].id) <= key:
                index += 1
        return self._read(stream, index)

    @staticmethod
    async def _read(stream: _RunStream, index: int) -> AsyncIterator[StreamEvent]:
        while True:
            while index < len(stream.events):
                yield stream.events[index]
                index += 1
            if stream.finished:
                return
            await stream.changed.wait()

    async def cancel(self, run_id: str, action: CancelAction) -> None:
        for handler in self._cancel_handlers:
            await handler(run_id, action)

    def on_cancel(self, handler: CancelHandler) -> None:
        self._cancel_handlers.append(handler)

    async def wake_workers(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()
