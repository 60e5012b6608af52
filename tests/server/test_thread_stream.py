"""`GET /threads/{id}/stream` (contract §6.6): every run of a thread, state writes, replay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import langgraph_sdk
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from tests.berth_server import BerthServer
from tests.conftest import StartServer

pytestmark = pytest.mark.anyio


class Follower:
    """Reads a thread stream in the background; the stream never ends by itself."""

    def __init__(self, parts: AsyncIterator[StreamPart]) -> None:
        self.parts = parts
        self.seen: list[StreamPart] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for part in self.parts:
            self.seen.append(part)
            self._changed.set()

    async def until(self, predicate: Any, timeout: float = 20.0) -> list[StreamPart]:
        """Wait until `predicate(seen)` holds; return what was seen."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.seen):
                    if self._task.done():
                        self._task.result()
                        raise AssertionError(f"the thread stream ended: {self.seen}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"still waiting after {timeout} s; seen: {self.seen}") from None
        return list(self.seen)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        with contextlib.suppress(Exception):
            await self.parts.aclose()  # type: ignore[attr-defined]


def _done(parts: list[StreamPart], count: int = 1) -> bool:
    return (
        sum(1 for p in parts if p.event == "metadata" and p.data.get("status") == "run_done")
        >= count
    )


async def _follow(client: LangGraphClient, thread_id: str, **kwargs: Any) -> Follower:
    follower = Follower(await client.threads.join_stream(thread_id, **kwargs))
    # Give the subscription a moment to reach the server before anything is published.
    await asyncio.sleep(0.3)
    return follower


def _key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


async def test_run_modes_merges_runs_with_ids_and_run_done(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    follower = await _follow(client, tid)
    try:
        first = await client.runs.wait(tid, "chain10", input={"count": 0})
        second = await client.runs.create(
            tid,
            "echo",
            input={"messages": [{"role": "user", "content": "yo"}]},
            stream_mode=["updates"],
        )
        await client.runs.join(tid, second["run_id"])
        seen = await follower.until(lambda s: _done(s, 2))
    finally:
        await follower.close()
    assert first["count"] == 10
    # Every event has an id, strictly increasing across both runs.
    keys = [_key(p.id) for p in seen if p.id is not None]
    assert len(keys) == len(seen)
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    runs = [p.data["run_id"] for p in seen if p.event == "metadata" and "attempt" in p.data]
    assert len(runs) == 2 and runs[1] == second["run_id"]
    done = [p.data for p in seen if p.event == "metadata" and p.data.get("status") == "run_done"]
    assert done == [
        {"status": "run_done", "run_id": runs[0]},
        {"status": "run_done", "run_id": runs[1]},
    ]
    # The first run streamed `values` (its default), the second `updates`.
    first_values = [p.data for p in seen if p.event == "values"]
    assert first_values[-1] == {"count": 10}
    updates = [p.data for p in seen if p.event == "updates"]
    assert len(updates) == 1
    assert updates[0]["echo"]["messages"][-1]["content"] == "echo: yo"
    # Order: each run's start metadata comes before its events and its run_done.
    names = [p.event for p in seen]
    assert names[0] == "metadata" and seen[0].data["run_id"] == runs[0]
    assert seen[-1].data == {"status": "run_done", "run_id": runs[1]}


async def test_lifecycle_and_state_update_modes(client: LangGraphClient) -> None:
    thread = await client.threads.create(graph_id="chain10")
    tid = thread["thread_id"]
    lifecycle = await _follow(client, tid, stream_mode="lifecycle")
    states = await _follow(client, tid, stream_mode="state_update")
    both = await _follow(client, tid, stream_mode=["lifecycle", "state_update"])
    try:
        run = await client.runs.create(tid, "chain10", input={"count": 0})
        await client.runs.join(tid, run["run_id"])
        await client.threads.update_state(tid, {"count": 42}, as_node="n9")
        seen_life = await lifecycle.until(_done)
        seen_states = await states.until(lambda s: len(s) >= 1)
        seen_both = await both.until(
            lambda s: _done(s) and any(p.event == "state_update" for p in s)
        )
    finally:
        for follower in (lifecycle, states, both):
            await follower.close()
    assert [(p.event, p.data) for p in seen_life] == [
        ("metadata", {"run_id": run["run_id"], "attempt": 1}),
        ("metadata", {"status": "run_done", "run_id": run["run_id"]}),
    ]
    # A run's own state writes are not `state_update`s: only the explicit write is.
    assert [p.event for p in seen_states] == ["state_update"]
    update = seen_states[0].data
    assert update["thread_id"] == tid
    assert update["state"]["values"] == {"count": 42}
    assert update["state"]["checkpoint"]["thread_id"] == tid
    assert update["state"]["next"] == []
    assert {p.event for p in seen_both} == {"metadata", "state_update"}


async def test_last_event_id_replays(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    follower = await _follow(client, tid, stream_mode="run_modes")
    try:
        run = await client.runs.create(tid, "chain10", input={"count": 0}, stream_mode=["updates"])
        await client.runs.join(tid, run["run_id"])
        seen = await follower.until(_done)
    finally:
        await follower.close()
    assert [p.event for p in seen].count("updates") == 10
    # `-` replays everything kept; an id replays what came after it.
    replay_all = Follower(await client.threads.join_stream(tid, last_event_id="-"))
    middle = seen[5]
    replay_after = Follower(await client.threads.join_stream(tid, last_event_id=middle.id))
    try:
        all_parts = await replay_all.until(_done)
        after_parts = await replay_after.until(_done)
    finally:
        await replay_all.close()
        await replay_after.close()
    assert [(p.id, p.event, p.data) for p in all_parts] == [(p.id, p.event, p.data) for p in seen]
    assert [p.id for p in after_parts] == [p.id for p in seen[6:]]
    # `<ms>` alone and `<ms>-*` are accepted too.
    ms = middle.id.split("-")[0]
    for header in (ms, f"{ms}-*"):
        parts = Follower(await client.threads.join_stream(tid, last_event_id=header))
        try:
            got = await parts.until(_done)
        finally:
            await parts.close()
        assert got[-1].data["status"] == "run_done"
        assert all(_key(p.id) > (int(ms), -1) for p in got)


async def test_stream_stays_open_with_heartbeats(start_server: StartServer) -> None:
    server = start_server(env={"BERTH_KEEPALIVE_INTERVAL": "0.2"}, name="keepalive")
    client = langgraph_sdk.get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    chunks: list[bytes] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        async with http.stream("GET", f"/threads/{tid}/stream") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.5):
                    async for chunk in response.aiter_bytes():
                        chunks.append(chunk)
    # Still open after 1.5 s with nothing to say: only heartbeats came.
    body = b"".join(chunks)
    assert body.count(b": heartbeat") >= 3
    assert b"event:" not in body


async def test_thread_stream_validation(server: BerthServer) -> None:
    client = langgraph_sdk.get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        missing = await http.get("/threads/00000000-0000-0000-0000-000000000000/stream")
        assert missing.status_code == 404 and "detail" in missing.json()
        bad_id = await http.get("/threads/nope/stream")
        assert bad_id.status_code == 422
        bad_mode = await http.get(f"/threads/{tid}/stream", params={"stream_modes": "values"})
        assert bad_mode.status_code == 422 and "run_modes" in bad_mode.json()["detail"]
        head = await http.head(f"/threads/{tid}/stream")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"].startswith("text/event-stream")
        bad_event = await http.get(f"/threads/{tid}/stream", headers={"Last-Event-ID": "abc"})
        assert bad_event.status_code == 422 and "Last-Event-ID" in bad_event.json()["detail"]


async def test_comma_list_stream_modes(server: BerthServer) -> None:
    client = langgraph_sdk.get_client(url=server.url)
    tid = (await client.threads.create(graph_id="chain10"))["thread_id"]
    follower = Follower(
        await client.threads.join_stream(
            tid, stream_mode=[], params={"stream_modes": "lifecycle,state_update"}
        )
    )
    await asyncio.sleep(0.3)
    try:
        await client.runs.wait(tid, "chain10", input={"count": 0})
        await client.threads.update_state(tid, {"count": 1}, as_node="n9")
        seen = await follower.until(lambda s: any(p.event == "state_update" for p in s))
    finally:
        await follower.close()
    assert [p.event for p in seen] == ["metadata", "metadata", "state_update"]


async def test_thread_stream_across_processes(
    start_server: StartServer, pg_database: str, redis_uri: str
) -> None:
    env = {"DATABASE_URI": pg_database, "REDIS_URI": redis_uri}
    api = start_server(env={**env, "N_JOBS_PER_WORKER": "0"}, name="api")
    worker = start_server(env=env, name="worker")
    front = langgraph_sdk.get_client(url=api.url)
    back = langgraph_sdk.get_client(url=worker.url)
    tid = (await front.threads.create(graph_id="chain10"))["thread_id"]
    # Opened on the API-only process; the run executes on the other one.
    follower = await _follow(front, tid)
    states = await _follow(back, tid, stream_mode="state_update")
    try:
        run = await front.runs.create(tid, "chain10", input={"count": 0}, stream_mode=["updates"])
        await front.runs.join(tid, run["run_id"])
        seen = await follower.until(_done)
        await front.threads.update_state(tid, {"count": 7}, as_node="n9")
        updates = await states.until(lambda s: len(s) >= 1)
    finally:
        await follower.close()
        await states.close()
    assert seen[0].event == "metadata" and seen[0].data["run_id"] == run["run_id"]
    assert [next(iter(p.data)) for p in seen if p.event == "updates"] == [
        f"n{i}" for i in range(10)
    ]
    assert seen[-1].data == {"status": "run_done", "run_id": run["run_id"]}
    keys = [_key(p.id) for p in seen]
    assert keys == sorted(keys)
    assert updates[0].event == "state_update"
    assert updates[0].data["state"]["values"] == {"count": 7}
    # Replay from the other process.
    replay = Follower(
        await back.threads.join_stream(
            tid, last_event_id="-", stream_mode=["run_modes", "state_update"]
        )
    )
    try:
        again = await replay.until(lambda s: any(p.event == "state_update" for p in s))
    finally:
        await replay.close()
    assert [p.id for p in again if p.event != "state_update"] == [p.id for p in seen]
