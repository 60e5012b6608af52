"""RedisBroker: run streams as Redis streams, signals over pub/sub, for many processes.

A run's events are `XADD`ed to `berth:run:<id>`, so Redis assigns the `<ms>-<seq>` ids the
API serves for `Last-Event-ID`, and any API process can replay or follow any run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from berth.core.models import CancelAction
from berth.streaming.base import THREAD_WINDOW, CancelHandler, StreamEvent, run_done

log = logging.getLogger("berth.broker")

_END = b"__end__"
_CANCEL = "berth:cancel"
_WAKE = "berth:wake"
#: how long a reader blocks on XREAD before looking again (ms)
_BLOCK_MS = 5_000


#: one stream entry as this client receives it: `(id, {field: value})`. redis-py types
#: replies for both `decode_responses` modes (`bytes | str`, optional parts); this client
#: never decodes, so every reply is bytes and the casts below only restate that.
_Entry = tuple[bytes, dict[bytes, bytes]]


def _key(run_id: str) -> str:
    return f"berth:run:{run_id}"


def _thread_key(thread_id: str) -> str:
    return f"berth:thread:{thread_id}"


class RedisBroker:
    """Args:
    uri: `redis://host:port/db`.
    stream_ttl: seconds a finished run's events stay for `Last-Event-ID` replays.
    """

    def __init__(self, uri: str, *, stream_ttl: float = 120.0) -> None:
        self.stream_ttl = stream_ttl
        # Each following reader holds a connection in XREAD BLOCK; the pool waits
        # rather than fails when they are all busy.
        self._pool = aioredis.BlockingConnectionPool.from_url(uri, max_connections=512, timeout=30)
        self._redis = aioredis.Redis(connection_pool=self._pool)
        self._cancel_handlers: list[CancelHandler] = []
        self._work = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        #: run id → thread id, for runs this process executes and mirrors on their thread
        self._bound: dict[str, str] = {}
        self._closing = False

    async def start(self) -> None:
        await self._redis.ping()
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(_CANCEL, _WAKE)
        self._listener = asyncio.create_task(self._listen(pubsub), name="berth-redis-signals")

    async def stop(self) -> None:
        self._closing = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()
        await self._pool.disconnect()

    async def _listen(self, pubsub: Any) -> None:
        try:
            while True:
                try:
                    message = await pubsub.get_message(timeout=5.0)
                except (ConnectionError, aioredis.ConnectionError):
                    log.warning("redis pub/sub connection lost; reconnecting")
                    await asyncio.sleep(0.5)
                    continue
                if message is None:
                    continue
                channel = message["channel"].decode()
                if channel == _WAKE:
                    self._work.set()
                elif channel == _CANCEL:
                    body = orjson.loads(message["data"])
                    for handler in self._cancel_handlers:
                        await handler(body["run_id"], CancelAction(body["action"]))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def publish(self, run_id: str, event: str, data: bytes) -> StreamEvent:
        fields = {b"e": event.encode(), b"d": data}
        thread_id = self._bound.get(run_id)
        event_id: bytes
        if thread_id is None:
            # xadd's stubs want `dict[FieldT, EncodableT]`, invariant in the key type.
            event_id = cast(bytes, await self._redis.xadd(_key(run_id), fields))  # type: ignore[arg-type]
        else:
            # One round trip for both streams.
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(_key(run_id), fields)  # type: ignore[arg-type]  # as above
                self._append_thread(pipe, thread_id, fields)
                event_id = (await pipe.execute())[0]
        return StreamEvent(event_id.decode(), event, data)

    def _append_thread(self, pipe: Any, thread_id: str, fields: dict[bytes, bytes]) -> None:
        key = _thread_key(thread_id)
        pipe.xadd(key, fields, maxlen=THREAD_WINDOW, approximate=True)
        pipe.expire(key, max(1, int(self.stream_ttl)))

    async def finish(self, run_id: str, *, keep: bool) -> None:
        key = _key(run_id)
        thread_id = self._bound.pop(run_id, None)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(key, {b"e": _END, b"d": b""})
            # Non-resumable streams only need to outlive readers already following them.
            pipe.expire(key, max(1, int(self.stream_ttl if keep else 5)))
            if thread_id is not None:
                self._append_thread(pipe, thread_id, {b"e": b"metadata", b"d": run_done(run_id)})
            await pipe.execute()

    def bind_thread(self, run_id: str, thread_id: str) -> None:
        self._bound[run_id] = thread_id

    async def publish_thread(self, thread_id: str, event: str, data: bytes) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            self._append_thread(pipe, thread_id, {b"e": event.encode(), b"d": data})
            await pipe.execute()

    def subscribe_thread(self, thread_id: str, *, after: str | None) -> AsyncIterator[StreamEvent]:
        return self._read_thread(thread_id, after)

    async def _read_thread(self, thread_id: str, after: str | None) -> AsyncIterator[StreamEvent]:
        key = _thread_key(thread_id)
        cursor = after if after is not None else await self._last_id(key)
        while not self._closing:
            for entry_id, fields in await self._xread(key, cursor):
                cursor = entry_id.decode()
                yield StreamEvent(cursor, fields[b"e"].decode(), fields.get(b"d", b""))

    async def is_finished(self, run_id: str) -> bool | None:
        last = await self._last(_key(run_id))
        if last is None:
            return None
        return last[1].get(b"e") == _END

    async def _last(self, key: str) -> _Entry | None:
        """The stream's newest entry; None when the stream is empty or gone."""
        last = cast(list[_Entry], await self._redis.xrevrange(key, count=1))
        return last[0] if last else None

    async def _last_id(self, key: str) -> str:
        """The newest entry's id, to follow only what comes after it."""
        last = await self._last(key)
        return last[0].decode() if last is not None else "0-0"

    async def _xread(self, key: str, cursor: str) -> list[_Entry]:
        """One blocking XREAD of `key` after `cursor`; empty when it timed out."""
        reply = await self._redis.xread({key: cursor}, block=_BLOCK_MS, count=256)
        batch = cast(list[tuple[bytes, list[_Entry]]], reply)
        return batch[0][1] if batch else []

    def subscribe(self, run_id: str, *, after: str | None) -> AsyncIterator[StreamEvent]:
        return self._read(run_id, after)

    async def _read(self, run_id: str, after: str | None) -> AsyncIterator[StreamEvent]:
        key = _key(run_id)
        cursor = after if after is not None else await self._last_id(key)
        while True:
            for entry_id, fields in await self._xread(key, cursor):
                cursor = entry_id.decode()
                name = fields.get(b"e", b"")
                if name == _END:
                    return
                yield StreamEvent(cursor, name.decode(), fields.get(b"d", b""))

    async def cancel(self, run_id: str, action: CancelAction) -> None:
        await self._redis.publish(_CANCEL, orjson.dumps({"run_id": run_id, "action": action.value}))

    def on_cancel(self, handler: CancelHandler) -> None:
        self._cancel_handlers.append(handler)

    async def wake_workers(self) -> None:
        self._work.set()
        await self._redis.publish(_WAKE, b"1")

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()
