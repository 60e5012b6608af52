"""Retries and delayed runs (issue 4).

* A node's LangGraph `RetryPolicy` is honoured inside one run attempt. LangGraph 1.2
  streams a retried task once in `tasks`/`debug` (one start, one result: the failed
  attempts leave no event there); Berth adds `attempts: <n>` to the result of a task
  that ran more than once (and nothing to one that ran once). Every attempt also
  shows in `events`, as one `on_chain_start` of the node each. The `flaky` graph puts
  its own count in its result too.
* A run whose worker died is retried from its last checkpoint, each attempt opening
  its stream with a fresh `metadata` event, until `BERTH_MAX_ATTEMPTS`; then it ends
  `error` saying so, and its thread is free again.
* A delayed run (`after_seconds`) survives a restart and runs once, when due.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.berth_server import BerthServer
from tests.helpers import sdk, wait_for

StartServer = Callable[..., BerthServer]


# -- LangGraph RetryPolicy ------------------------------------------------------------


def _named(parts: list[Any], event: str) -> list[dict[str, Any]]:
    return [p.data for p in parts if p.event == event]


@pytest.mark.anyio
async def test_node_retry_policy_completes_after_two_failures(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    parts = [
        p
        async for p in client.runs.stream(
            tid, "flaky", input={}, stream_mode=["tasks", "debug", "values"]
        )
    ]
    assert parts[0].event == "metadata"
    assert parts[0].data["attempt"] == 1
    assert _named(parts, "error") == []
    tasks = [t for t in _named(parts, "tasks") if t["name"] == "flaky"]
    # One start and one result for the task: the two failed attempts were retried
    # inside it; the result says how many attempts it took.
    assert [("input" in t, "result" in t) for t in tasks] == [(True, False), (False, True)]
    start, result = tasks
    assert start["id"] == result["id"]
    assert "attempts" not in start
    assert result == {
        "id": start["id"],
        "name": "flaky",
        "error": None,
        "result": {"attempts": 3, "node_attempt": 3},
        "interrupts": [],
        "attempts": 3,
    }
    debug = [d for d in _named(parts, "debug") if d["type"] in ("task", "task_result")]
    assert [(d["type"], d["payload"]["name"]) for d in debug] == [
        ("task", "flaky"),
        ("task_result", "flaky"),
    ]
    assert "attempts" not in debug[0]["payload"]
    assert debug[1]["payload"] == result
    assert _named(parts, "values")[-1] == {"attempts": 3, "node_attempt": 3}

    [run] = await client.runs.list(tid)
    assert run["status"] == "success"
    assert (await client.threads.get(tid))["status"] == "idle"


@pytest.mark.anyio
async def test_every_retry_shows_in_the_events_stream(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    parts = [p async for p in client.runs.stream(tid, "flaky", input={}, stream_mode="events")]
    events = _named(parts, "events")
    starts = [e for e in events if e["event"] == "on_chain_start" and e["name"] == "flaky"]
    ends = [e for e in events if e["event"] == "on_chain_end" and e["name"] == "flaky"]
    assert len(starts) == 3, [e["event"] for e in events]
    assert len(ends) == 1
    assert ends[0]["data"]["output"] == {"attempts": 3, "node_attempt": 3}
    assert [s["metadata"]["langgraph_node"] for s in starts] == ["flaky"] * 3
    [run] = await client.runs.list(tid)
    assert run["status"] == "success"


def _results(parts: list[Any]) -> list[dict[str, Any]]:
    """Every task result of a stream, from `tasks` (namespaced too) and `debug`."""
    found = []
    for p in parts:
        mode = p.event.split("|")[0]
        if mode == "tasks" and "result" in p.data:
            found.append(p.data)
        elif mode == "debug" and p.data["type"] == "task_result":
            found.append(p.data["payload"])
    return found


@pytest.mark.anyio
async def test_tasks_that_ran_once_carry_no_attempts(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    modes = ["tasks", "debug"]
    parts = [
        p
        async for p in client.runs.stream(
            tid, "flaky", input={}, config={"configurable": {"failures": 0}}, stream_mode=modes
        )
    ]
    results = _results(parts)
    assert [(r["name"], r["result"]) for r in results] == [
        ("flaky", {"attempts": 1, "node_attempt": 1}),
    ] * 2
    assert all("attempts" not in r for r in results), results

    # Nested tasks of a subgraph, streamed with their namespace, are left as they are.
    tid = (await client.threads.create())["thread_id"]
    parts = [
        p
        async for p in client.runs.stream(
            tid, "subgraph", input={"items": []}, stream_mode=modes, stream_subgraphs=True
        )
    ]
    assert _named(parts, "error") == []
    results = _results(parts)
    names = [r["name"] for r in results]
    assert sorted(set(names)) == ["after", "child_a", "child_b", "inner"]
    assert len(names) == 8  # each task once in `tasks`, once in `debug`
    assert all(r["error"] is None and "attempts" not in r for r in results), results


@pytest.mark.anyio
async def test_node_out_of_retries_fails_the_run(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    parts = [
        p
        async for p in client.runs.stream(
            tid,
            "flaky",
            input={},
            config={"configurable": {"failures": 3}},
            stream_mode=["tasks", "values"],
        )
    ]
    assert _named(parts, "error") == [
        {"error": "ConnectionError", "message": "flaky failure on attempt 3"}
    ]
    tasks = [t for t in _named(parts, "tasks") if t["name"] == "flaky"]
    # One start, and one result carrying the last attempt's error.
    assert ["input" in t for t in tasks] == [True, False]
    assert tasks[1]["result"] is None or tasks[1]["result"] == {}
    assert "flaky failure on attempt 3" in str(tasks[1]["error"])
    assert tasks[1]["attempts"] == 3
    [run] = await client.runs.list(tid)
    assert run["status"] == "error"
    thread = await client.threads.get(tid)
    assert thread["status"] == "error"


# -- runs whose worker died -----------------------------------------------------------


def executions(counter_file: Path, node: str, thread_id: str) -> int:
    if not counter_file.exists():
        return 0
    return counter_file.read_text().splitlines().count(f"{node} {thread_id}")


def first_metadata(server: BerthServer, thread_id: str, run_id: str) -> dict[str, Any]:
    """The `metadata` event a join of the run's stream opens with (read, then left)."""
    path = f"/threads/{thread_id}/runs/{run_id}/stream"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        with http.stream("GET", path, headers={"Last-Event-ID": "-"}) as response:
            assert response.status_code == 200
            event = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "metadata":
                    return orjson.loads(line.removeprefix("data: "))  # type: ignore[no-any-return]
    raise AssertionError("the stream had no metadata event")


def test_worker_lost_until_out_of_attempts(start_server: StartServer, counter_file: Path) -> None:
    env = {"BERTH_TEST_COUNTER_FILE": str(counter_file), "BERTH_MAX_ATTEMPTS": "2"}
    server = start_server(env=env, name="lost")
    with sdk(server) as client:
        thread_id = client.threads.create()["thread_id"]
        run = client.runs.create(
            thread_id,
            "slow",
            input={"steps": []},
            config={"configurable": {"sleep": 30}},
            stream_resumable=True,
        )
        run_id = run["run_id"]
        wait_for(lambda: executions(counter_file, "s1", thread_id) == 1, 20, "attempt 1")
        assert client.runs.get(thread_id, run_id)["status"] == "running"
    server.kill()

    # Attempt 2 of 2: picked up again at the start, with its own metadata event.
    server.start()
    wait_for(lambda: executions(counter_file, "s1", thread_id) == 2, 20, "attempt 2")
    assert first_metadata(server, thread_id, run_id) == {"run_id": run_id, "attempt": 2}
    with sdk(server) as client:
        assert client.runs.get(thread_id, run_id)["status"] == "running"
        assert client.threads.get(thread_id)["status"] == "busy"
    server.kill()

    # Out of attempts: the run ends at this start, never executing a third time.
    server.start()
    with sdk(server) as client:
        final = client.runs.get(thread_id, run_id)
        assert final["status"] == "error"
        thread = client.threads.get(thread_id)
        assert thread["status"] != "busy"
        assert thread["status"] == "error"
        assert thread["error"]["error"] == "WorkerLost"
        assert "stopped 2 times" in thread["error"]["message"]
        assert "limit 2" in thread["error"]["message"]
        # A join on the failed run ends at once, and the thread takes new runs.
        client.runs.join(thread_id, run_id)
        done = client.runs.wait(
            thread_id, "slow", input={"steps": []}, config={"configurable": {"sleep": 0}}
        )
        assert done is not None
        assert client.threads.get(thread_id)["status"] == "idle"
    time.sleep(0.3)
    assert executions(counter_file, "s1", thread_id) == 3  # two attempts, one new run


# -- delayed runs -----------------------------------------------------------------------


def ticks(counter_file: Path, thread_id: str) -> list[float]:
    if not counter_file.exists():
        return []
    found = []
    for line in counter_file.read_text().splitlines():
        node, tid, at = line.split(" ")
        if node == "tick" and tid == thread_id:
            found.append(float(at))
    return found


def test_delayed_run_survives_a_restart(start_server: StartServer, counter_file: Path) -> None:
    delay = 5.0
    server = start_server(env={"BERTH_TEST_COUNTER_FILE": str(counter_file)}, name="delayed")
    with sdk(server) as client:
        thread_id = client.threads.create()["thread_id"]
        asked = time.time()
        run = client.runs.create(thread_id, "clock", input={}, after_seconds=delay)
        assert run["status"] == "pending"
    due = asked + delay
    server.stop()  # SIGTERM: a graceful shutdown with the run still waiting
    server.start()
    assert time.time() < due, "the restart took longer than the delay: nothing was proven"
    with sdk(server) as client:
        assert client.runs.get(thread_id, run["run_id"])["status"] == "pending"
        assert ticks(counter_file, thread_id) == []
        client.runs.join(thread_id, run["run_id"])
        assert client.runs.get(thread_id, run["run_id"])["status"] == "success"
        values = client.threads.get_state(thread_id)["values"]
    [ran_at] = ticks(counter_file, thread_id)
    assert ran_at >= due - 0.05, f"ran {due - ran_at:.2f}s early"
    assert ran_at < due + 10
    assert values == {"ran_at": [ran_at]}
    time.sleep(1.0)
    assert ticks(counter_file, thread_id) == [ran_at], "the delayed run ran twice"
