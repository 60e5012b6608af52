"""Joining runs: `join`, `join_stream`, `Last-Event-ID` replay and shared subscriptions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient

from tests.berth_server import BerthServer
from tests.helpers import wait_status

SLOW = {"configurable": {"sleep": 0.3}}
Frame = tuple[str | None, str, Any]  # (id, event, data)


def parse_frames(text: str) -> list[Frame]:
    frames: list[Frame] = []
    for block in text.split("\r\n\r\n"):
        if not block or block.startswith(":"):
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\r\n"))
        frames.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return frames


def parts_as_frames(parts: list[Any]) -> list[tuple[str, Any]]:
    return [(p.event, p.data) for p in parts]


@pytest.mark.anyio
async def test_join_running_and_finished(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"steps": []}, config=SLOW)
    running, again = await asyncio.gather(
        client.runs.join(tid, run["run_id"]), client.runs.join(tid, run["run_id"])
    )
    assert running == again == {"steps": ["s1", "s2", "s3"]}
    # After the end the body comes from the thread.
    assert await client.runs.join(tid, run["run_id"]) == {"steps": ["s1", "s2", "s3"]}


@pytest.mark.anyio
async def test_join_finished_error_and_interrupt(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    failed = await client.runs.create(thread["thread_id"], "failing", input={})
    await wait_status(client, thread["thread_id"], failed["run_id"], {"error"})
    body = await client.runs.join(thread["thread_id"], failed["run_id"])
    assert body == {"__error__": {"error": "ValueError", "message": "boom"}}
    other = await client.threads.create()
    paused = await client.runs.create(other["thread_id"], "interrupting", input={})
    await wait_status(client, other["thread_id"], paused["run_id"], {"success"})
    body = await client.runs.join(other["thread_id"], paused["run_id"])
    (item,) = body["__interrupt__"]
    assert item["value"] == {"question": "what?"} and item["id"]


def test_sync_join_stream(sync_client: SyncLangGraphClient) -> None:
    thread = sync_client.threads.create()
    run = sync_client.runs.create(
        thread["thread_id"], "slow", input={"steps": []}, config=SLOW, after_seconds=1
    )
    parts = list(sync_client.runs.join_stream(thread["thread_id"], run["run_id"]))
    assert parts[0].event == "metadata"
    assert parts[0].data == {"run_id": run["run_id"], "attempt": 1}
    assert [p.data["steps"] for p in parts[1:]] == [[], ["s1"], ["s1", "s2"], ["s1", "s2", "s3"]]


@pytest.mark.anyio
async def test_join_stream_of_finished_run_is_empty(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "chain10", input={"count": 0})
    await wait_status(client, thread["thread_id"], run["run_id"], {"success"})
    parts = [p async for p in client.runs.join_stream(thread["thread_id"], run["run_id"])]
    assert parts == []


@pytest.mark.anyio
async def test_join_stream_mode_filter(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid,
        "slow",
        input={"steps": []},
        config=SLOW,
        stream_mode=["values", "updates"],
        after_seconds=1,
    )
    parts = [p async for p in client.runs.join_stream(tid, run["run_id"], stream_mode="updates")]
    assert [p.event for p in parts] == ["metadata", "updates", "updates", "updates"]
    assert [p.data for p in parts[1:]] == [{f"s{i}": {"steps": [f"s{i}"]}} for i in (1, 2, 3)]


@pytest.mark.anyio
async def test_resume_with_last_event_id(server: BerthServer, client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    body = {
        "assistant_id": "slow",
        "input": {"steps": []},
        "config": SLOW,
        "stream_mode": ["values", "updates"],
        "stream_resumable": True,
    }
    first: list[Frame] = []
    buffer = ""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
            run_id = response.headers["content-location"].rsplit("/", 1)[1]
            async for text in response.aiter_text():
                buffer += text
                complete, _, buffer = buffer.rpartition("\r\n\r\n")
                first.extend(parse_frames(complete))
                if len(first) >= 3:
                    break
    assert first[0][1] == "metadata"
    assert all(frame_id for frame_id, _, _ in first)
    last_id = first[-1][0]
    assert last_id is not None
    rest = [p async for p in client.runs.join_stream(tid, run_id, last_event_id=last_id)]
    assert rest, "nothing after the reconnect"
    assert (await client.runs.get(tid, run_id))["status"] == "success"
    # The run's whole stream, replayed from the start.
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.get(
            f"/threads/{tid}/runs/{run_id}/stream", headers={"Last-Event-ID": "-"}
        )
    full = parse_frames(response.text)
    ids = [frame_id for frame_id, _, _ in full]
    assert all(ids) and len(set(ids)) == len(ids)
    assert ids == sorted(ids, key=lambda i: tuple(int(x) for x in str(i).split("-")))
    assert [(e, d) for _, e, d in first] + parts_as_frames(rest) == [(e, d) for _, e, d in full]
    assert [e for _, e, _ in full] == ["metadata", "values"] + ["updates", "values"] * 3
    assert full[-1][2] == {"steps": ["s1", "s2", "s3"]}
    # Resuming from the last id of the finished run yields nothing more.
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.get(
            f"/threads/{tid}/runs/{run_id}/stream", headers={"Last-Event-ID": str(ids[-1])}
        )
    assert parse_frames(response.text) == []
    middle = await http_replay(server, tid, run_id, str(ids[3]))
    assert middle == full[4:]


async def http_replay(server: BerthServer, tid: str, run_id: str, last_id: str) -> list[Frame]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.get(
            f"/threads/{tid}/runs/{run_id}/stream", headers={"Last-Event-ID": last_id}
        )
    return parse_frames(response.text)


@pytest.mark.anyio
async def test_concurrent_subscribers(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid,
        "slow",
        input={"steps": []},
        config=SLOW,
        stream_mode=["values", "updates"],
        after_seconds=1,
    )

    async def listen() -> list[tuple[str, Any]]:
        return [(p.event, p.data) async for p in client.runs.join_stream(tid, run["run_id"])]

    results = await asyncio.gather(*(listen() for _ in range(4)))
    assert results[0][0] == ("metadata", {"run_id": run["run_id"], "attempt": 1})
    assert [e for e, _ in results[0]] == ["metadata", "values"] + ["updates", "values"] * 3
    assert all(r == results[0] for r in results[1:])


@pytest.mark.anyio
async def test_stream_and_join_stream_agree(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    created: list[str] = []

    async def main() -> list[tuple[str, Any]]:
        return [
            (p.event, p.data)
            async for p in client.runs.stream(
                tid,
                "slow",
                input={"steps": []},
                config=SLOW,
                stream_mode="updates",
                on_run_created=lambda meta: created.append(meta["run_id"]),
            )
        ]

    task = asyncio.ensure_future(main())
    while not created:
        await asyncio.sleep(0.01)
    joined = [(p.event, p.data) async for p in client.runs.join_stream(tid, created[0])]
    streamed = await task
    # The joiner came in late; whatever it saw is the tail of the full stream.
    assert streamed[0][0] == "metadata"
    assert joined == streamed[len(streamed) - len(joined) :]
    assert streamed[-1] == ("updates", {"s3": {"steps": ["s3"]}})


@pytest.mark.anyio
async def test_join_stream_cancel_on_disconnect(
    server: BerthServer, client: LangGraphClient
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid, "slow", input={"steps": []}, config={"configurable": {"sleep": 1}}
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream(
            "GET",
            f"/threads/{tid}/runs/{run['run_id']}/stream",
            params={"cancel_on_disconnect": "true"},
        ) as response:
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    break
    await wait_status(client, tid, run["run_id"], {"interrupted"})


@pytest.mark.anyio
async def test_wait_location_rejoin(server: BerthServer, client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream(
            "POST",
            f"/threads/{tid}/runs/wait",
            json={"assistant_id": "slow", "input": {"steps": []}, "config": SLOW},
        ) as response:
            location = response.headers["location"]
        # The client dropped the wait; the run went on and the Location joins it.
        rejoined = await http.get(location)
    assert rejoined.status_code == 200
    assert rejoined.json() == {"steps": ["s1", "s2", "s3"]}


@pytest.mark.anyio
async def test_waiters_released_when_pending_run_goes(client: LangGraphClient) -> None:
    """A pending run cancelled by a newer run, or deleted, ends its joiners' streams."""
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "slow", input={"steps": []}, config=SLOW)
    second = await client.runs.create(tid, "slow", input={"steps": []}, config=SLOW)
    third = await client.runs.create(tid, "slow", input={"steps": []}, config=SLOW)
    joined = asyncio.ensure_future(client.runs.join(tid, second["run_id"]))
    streamed = asyncio.ensure_future(
        asyncio.wait_for(_drain(client.runs.join_stream(tid, third["run_id"])), 15)
    )
    await asyncio.sleep(0.3)
    await client.runs.delete(tid, third["run_id"])
    assert await streamed == []
    latest = await client.runs.create(
        tid, "chain10", input={"count": 0}, multitask_strategy="interrupt"
    )
    await asyncio.wait_for(joined, 15)
    assert (await client.runs.get(tid, second["run_id"]))["status"] == "interrupted"
    assert await client.runs.join(tid, latest["run_id"]) == {"count": 10}
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "interrupted"


async def _drain(parts: Any) -> list[Any]:
    return [p async for p in parts]
