"""MemoryBroker: the embedded, single-process broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator

from berth.core.models import CancelAction
from berth.streaming.base import THREAD_WINDOW, CancelHandler, StreamEvent, event_key, run_done


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


class _ThreadChannel:
    """A thread's recent events; `total` counts every event ever appended."""

    __slots__ = ("closed", "events", "ids", "readers", "total", "touched", "waiter")

    def __init__(self) -> None:
        self.events: deque[StreamEvent] = deque(maxlen=THREAD_WINDOW)
        self.ids = _RunStream()  # only its id clock
        self.total = 0
        self.readers = 0
        self.touched = time.monotonic()
        self.closed = False
        #: created by a waiting reader, so publishing to an unwatched thread stays cheap
        self.waiter: asyncio.Event | None = None

    def append(self, event: str, data: bytes) -> None:
        self.events.append(StreamEvent(self.ids.next_id(), event, data))
        self.total += 1
        self.touched = time.monotonic()
        self.wake()

    def wake(self) -> None:
        if self.waiter is not None:
            self.waiter.set()
            self.waiter = None


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
        self._threads: dict[str, _ThreadChannel] = {}
        #: run id → thread id, for runs whose events are mirrored on their thread
        self._bound: dict[str, str] = {}
        self._swept = time.monotonic()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for handle in self._expiry:
            handle.cancel()
        self._expiry.clear()
        for stream in self._streams.values():
            stream.finished = True
            stream.notify()
        for channel in self._threads.values():
            channel.closed = True
            channel.wake()

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
        thread_id = self._bound.get(run_id)
        if thread_id is not None:
            self._channel(thread_id).append(event, data)
        return item

    async def finish(self, run_id: str, *, keep: bool) -> None:
        thread_id = self._bound.pop(run_id, None)
        if thread_id is not None:
            self._channel(thread_id).append("metadata", run_done(run_id))
        stream = self._stream(run_id)
        stream.finished = True
        stream.notify()
        delay = self.stream_ttl if keep else 0.0
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def expire() -> None:
            # Readers still holding the stream finish reading it; new ones won't find it.
            self._expiry.discard(handle)
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

    def _channel(self, thread_id: str) -> _ThreadChannel:
        channel = self._threads.get(thread_id)
        if channel is None:
            self._sweep_threads()
            channel = self._threads[thread_id] = _ThreadChannel()
        return channel

    def _sweep_threads(self) -> None:
        """Forget channels nobody reads whose last event is older than `stream_ttl`."""
        now = time.monotonic()
        if now - self._swept < min(self.stream_ttl, 30.0):
            return
        self._swept = now
        for thread_id, channel in list(self._threads.items()):
            if not channel.readers and now - channel.touched > self.stream_ttl:
                del self._threads[thread_id]

    def bind_thread(self, run_id: str, thread_id: str) -> None:
        self._bound[run_id] = thread_id

    async def publish_thread(self, thread_id: str, event: str, data: bytes) -> None:
        self._channel(thread_id).append(event, data)

    def subscribe_thread(self, thread_id: str, *, after: str | None) -> AsyncIterator[StreamEvent]:
        channel = self._channel(thread_id)
        first = channel.total - len(channel.events)
        if after is None:
            position = channel.total
        else:
            key = event_key(after)
            position = first
            for event in channel.events:
                if event_key(event.id) > key:
                    break
                position += 1
        return self._read_thread(channel, position)

    @staticmethod
    async def _read_thread(channel: _ThreadChannel, position: int) -> AsyncIterator[StreamEvent]:
        channel.readers += 1
        try:
            while not channel.closed:
                # A reader that fell behind the window resumes at its oldest event.
                first = channel.total - len(channel.events)
                position = max(position, first)
                while position < channel.total:
                    yield channel.events[position - first]
                    position += 1
                    first = channel.total - len(channel.events)
                    position = max(position, first)
                if channel.waiter is None:
                    channel.waiter = asyncio.Event()
                await channel.waiter.wait()
        finally:
            channel.readers -= 1
            channel.touched = time.monotonic()

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
