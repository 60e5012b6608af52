"""Server-sent events framing (contract §6.1) and the run event filters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import StreamingResponse

from berth.streaming.base import StreamEvent

HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream; charset=utf-8"
HEARTBEAT = b": heartbeat\r\n\r\n"

#: events sent whatever modes were asked for
_ALWAYS = {"metadata", "error", "feedback"}


def frame(event: StreamEvent, *, with_id: bool) -> bytes:
    head = b"event: " + event.event.encode() + b"\r\ndata: " + event.data + b"\r\n"
    if with_id:
        head += b"id: " + event.id.encode() + b"\r\n"
    return head + b"\r\n"


def mode_filter(modes: list[str] | None) -> Callable[[str], bool]:
    """Which event names a subscriber asked for (`messages*` matches both message modes)."""
    if not modes:
        return lambda _event: True
    wanted = set(modes)
    messages = bool(wanted & {"messages", "messages-tuple"})

    def accept(event: str) -> bool:
        base = event.split("|", 1)[0]
        if base in _ALWAYS:
            return True
        if base.startswith("messages"):
            return messages
        return base in wanted

    return accept


async def with_heartbeats(
    source: AsyncIterator[bytes], interval: float, heartbeat: bytes = HEARTBEAT
) -> AsyncIterator[bytes]:
    """Interleave `heartbeat` chunks so proxies and clients keep an idle stream open."""
    iterator = source.__aiter__()
    pending: asyncio.Task[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield heartbeat
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield chunk
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def response(
    body: AsyncIterator[bytes],
    *,
    headers: dict[str, str] | None = None,
    keepalive: float,
    on_close: Callable[[], Awaitable[None]] | None = None,
    media_type: str = MEDIA_TYPE,
    heartbeat: bytes = HEARTBEAT,
) -> StreamingResponse:
    """A streamed response; `on_close` runs however it ends (finished or disconnected)."""

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in with_heartbeats(body, keepalive, heartbeat):
                yield chunk
        finally:
            if on_close is not None:
                await asyncio.shield(on_close())

    extra = HEADERS if media_type == MEDIA_TYPE else {}
    return StreamingResponse(stream(), media_type=media_type, headers={**extra, **(headers or {})})
