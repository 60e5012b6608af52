"""Starting a run with its event stream attached, and reading a run's final result.

Shared by the HTTP routes (`/wait`, `/join`) and the protocol endpoints (MCP, A2A), so
every caller sees the same result for the same run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from berth import serde, tracing
from berth.core import errors, ids
from berth.core.models import Run, ThreadStatus

if TYPE_CHECKING:
    from berth.core.runs import RunRequest, Runs
    from berth.storage.base import Storage
    from berth.streaming.base import Broker, StreamEvent


async def start(
    runs: Runs,
    broker: Broker,
    thread_id: str | None,
    request: RunRequest,
    *,
    trace: tracing.Incoming | None = None,
    server_configurable: dict[str, Any] | None = None,
) -> tuple[Run, AsyncIterator[StreamEvent]]:
    """Create a run and return it with a subscription to all of its events."""
    run_id = ids.new_id()
    # Subscribed from the run's first event, before the run exists: no event can be
    # missed, however soon a worker (in this process or another) starts publishing.
    events = broker.subscribe(run_id, after="0-0")
    try:
        run = await runs.create(
            thread_id,
            request,
            run_id=run_id,
            trace=trace,
            server_configurable=server_configurable,
        )
    except BaseException:
        await broker.finish(run_id, keep=False)
        raise
    return run, events


async def final_body(
    storage: Storage, run: Run, events: AsyncIterator[StreamEvent] | None
) -> bytes:
    """The run's result as JSON: the last values (or the chunk holding `__interrupt__`),
    or `{"__error__": …}`; from the thread when the events are gone (contract §6.5)."""
    last: bytes | None = None
    error: bytes | None = None
    if events is not None:
        async for event in events:
            if event.event == "values":
                last = event.data
            elif event.event == "error":
                error = event.data
    if error is not None:
        return b'{"__error__":' + error + b"}"
    if last is not None:
        return last
    return await thread_fallback(storage, run)


async def thread_fallback(storage: Storage, run: Run) -> bytes:
    try:
        thread = await storage.threads.get(run.thread_id)
    except errors.NotFound:
        try:
            final = await storage.runs.get(run.run_id)
        except errors.NotFound:
            return b"{}"
        return serde.dumps({"__error__": final.error}) if final.error else b"{}"
    if thread.status == ThreadStatus.ERROR and thread.error:
        return serde.dumps({"__error__": thread.error})
    if thread.status == ThreadStatus.INTERRUPTED and thread.interrupts:
        return serde.dumps(
            {"__interrupt__": [i for items in thread.interrupts.values() for i in items]}
        )
    return serde.dumps(thread.values if thread.values is not None else {})
