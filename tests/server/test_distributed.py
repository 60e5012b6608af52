"""Several Berth processes over one PostgreSQL database and one Redis: any process
serves any run, a run is executed once, and streams fan out across processes."""

from __future__ import annotations

import asyncio

import langgraph_sdk
import pytest

from tests.conftest import StartServer

pytestmark = pytest.mark.anyio


async def test_runs_cross_processes(
    start_server: StartServer, pg_database: str, redis_uri: str
) -> None:
    env = {"DATABASE_URI": pg_database, "REDIS_URI": redis_uri}
    api = start_server(env={**env, "N_JOBS_PER_WORKER": "0"}, name="api")
    worker = start_server(env=env, name="worker")
    front = langgraph_sdk.get_client(url=api.url)
    back = langgraph_sdk.get_client(url=worker.url)

    thread = await front.threads.create()
    # The API-only process stores the run; the other process executes it.
    result = await front.runs.wait(
        thread["thread_id"], "echo", input={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert result["messages"][-1]["content"] == "echo: hi"

    # A stream opened on one process sees events of a run executed by the other.
    parts = [
        part
        async for part in front.runs.stream(
            thread["thread_id"],
            "chain10",
            input={"count": 0},
            stream_mode="updates",
            stream_resumable=True,
        )
    ]
    assert parts[0].event == "metadata"
    updates = [p.data for p in parts if p.event == "updates"]
    assert [next(iter(u)) for u in updates] == [f"n{i}" for i in range(10)]

    run = (await front.runs.list(thread["thread_id"], limit=1))[0]
    replay = [
        p
        async for p in back.runs.join_stream(thread["thread_id"], run["run_id"], last_event_id="-")
    ]
    assert [p.data for p in replay if p.event == "updates"] == updates


async def test_each_run_executes_once(
    start_server: StartServer, pg_database: str, redis_uri: str
) -> None:
    env = {"DATABASE_URI": pg_database, "REDIS_URI": redis_uri, "N_JOBS_PER_WORKER": "4"}
    servers = [start_server(env=env, name=f"node{i}") for i in range(2)]
    clients = [langgraph_sdk.get_client(url=s.url) for s in servers]
    threads = [await clients[0].threads.create() for _ in range(6)]
    runs = []
    for i in range(30):
        thread = threads[i % len(threads)]
        runs.append(
            await clients[i % 2].runs.create(thread["thread_id"], "chain10", input={"count": 0})
        )
    finals = await asyncio.gather(
        *(clients[(i + 1) % 2].runs.join(r["thread_id"], r["run_id"]) for i, r in enumerate(runs))
    )
    # chain10 adds 10 to the thread's count per run (no reducer: each run starts from 0).
    assert all(f["count"] == 10 for f in finals)
    for thread in threads:
        listed = await clients[0].runs.list(thread["thread_id"], limit=100)
        assert len(listed) == 5
        assert {r["status"] for r in listed} == {"success"}
        assert (await clients[1].threads.get(thread["thread_id"]))["status"] == "idle"
