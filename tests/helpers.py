"""Helpers shared by the server and durability tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import langgraph_sdk
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient

from tests.berth_server import BerthServer


async def wait_status(
    client: LangGraphClient, thread_id: str, run_id: str, statuses: set[str], timeout: float = 20
) -> dict[str, Any]:
    """The run, once its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        run = dict(await client.runs.get(thread_id, run_id))
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run still {run['status']}"
        await asyncio.sleep(0.02)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """`predicate()`'s first truthy value within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def sdk(server: BerthServer) -> Iterator[SyncLangGraphClient]:
    # A new client per server life: pooled connections to a killed process are dead.
    client = langgraph_sdk.get_sync_client(url=server.url)
    try:
        yield client
    finally:
        client.close()


def tag() -> str:
    """A metadata value unique to one test, so searches ignore other tests' objects."""
    return uuid.uuid4().hex
