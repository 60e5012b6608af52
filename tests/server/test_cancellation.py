"""Cancelling runs (contract §4): latency, interrupt vs rollback, pending runs, bulk
cancel by status, and a waiting client that goes away with `on_disconnect=cancel`.

The `slow` graph's nodes await `asyncio.sleep` (I/O, as far as the event loop can
tell): a cancel must stop them at once, not when the sleep ends.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import langgraph_sdk
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.berth_server import BerthServer
from tests.helpers import wait_status

pytestmark = pytest.mark.anyio

#: each node sleeps this long: a run only ends in time if the cancel stopped it
FOREVER = {"configurable": {"sleep": 30}}
#: the issue's target from the cancel's 202 to `interrupted`
TARGET_MS = 100.0
TRIES = 7


async def start_forever(client: LangGraphClient, thread_id: str) -> dict[str, Any]:
    """A `slow` run that is inside its first node's 30 s sleep."""
    run = await client.runs.create(thread_id, "slow", input={"steps": []}, config=FOREVER)
    await wait_status(client, thread_id, run["run_id"], {"running"})
    # Past the claim, inside the node (the sleep is what the cancel must cut short).
    await asyncio.sleep(0.1)
    return dict(run)


async def test_cancel_latency_of_a_run_awaiting_io(
    server: BerthServer, client: LangGraphClient
) -> None:
    """From the cancel's 202 to `interrupted`, polled as tightly as HTTP allows."""
    polled: list[float] = []
    waited: list[float] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for _ in range(TRIES):
            tid = (await client.threads.create())["thread_id"]
            run = await start_forever(client, tid)
            path = f"/threads/{tid}/runs/{run['run_id']}"
            response = await http.post(f"{path}/cancel")
            accepted = time.perf_counter()
            assert response.status_code == 202
            while (status := (await http.get(path)).json()["status"]) != "interrupted":
                assert status == "running", status
                assert time.perf_counter() - accepted < 10, "the cancel did not stop the run"
            polled.append((time.perf_counter() - accepted) * 1000)

            # The same with `wait=true`: the answer comes when the run has ended.
            run = await start_forever(client, tid)
            path = f"/threads/{tid}/runs/{run['run_id']}"
            sent = time.perf_counter()
            response = await http.post(f"{path}/cancel", params={"wait": "true"})
            waited.append((time.perf_counter() - sent) * 1000)
            assert response.status_code == 200
            assert (await http.get(path)).json()["status"] == "interrupted"
            thread = await client.threads.get(tid)
            assert thread["status"] == "idle"
    p50, worst = statistics.median(polled), max(polled)
    w50, wworst = statistics.median(waited), max(waited)
    print(
        f"\ncancel latency over {TRIES} tries: 202→interrupted p50 {p50:.1f} ms, "
        f"max {worst:.1f} ms; cancel?wait=true p50 {w50:.1f} ms, max {wworst:.1f} ms"
    )
    assert p50 < TARGET_MS, polled
    # A loaded 2-core machine may stall one try; never by a node's 30 s sleep.
    assert worst < 2000, polled
    assert w50 < 2 * TARGET_MS, waited


async def test_interrupt_keeps_checkpoints_rollback_deletes_them(
    client: LangGraphClient,
) -> None:
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.wait(tid, "slow", input={"steps": []})
    assert first == {"steps": ["s1", "s2", "s3"]}
    before = await client.threads.get_history(tid, limit=100)
    assert before

    async def cancel_after_s1(action: str) -> dict[str, Any]:
        # s1 sleeps 1 s and commits; s2 then sleeps for good.
        run = await client.runs.create(
            tid,
            "slow",
            input={"steps": []},
            config={"configurable": {"sleep": 1}},
        )
        deadline = time.monotonic() + 20
        while (await client.threads.get_state(tid))["values"]["steps"] != ["s1", "s2", "s3", "s1"]:
            assert time.monotonic() < deadline, "s1 of the second run never committed"
            await asyncio.sleep(0.05)
        await client.runs.cancel(tid, run["run_id"], wait=True, action=action)  # type: ignore[arg-type]
        return dict(run)

    kept = await cancel_after_s1("interrupt")
    assert (await client.runs.get(tid, kept["run_id"]))["status"] == "interrupted"
    history = await client.threads.get_history(tid, limit=100)
    mine = [h for h in history if h["metadata"].get("run_id") == kept["run_id"]]
    assert mine, "an interrupted run keeps the checkpoints it wrote"

    rolled = await cancel_after_s1("rollback")
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, rolled["run_id"])
    history = await client.threads.get_history(tid, limit=100)
    assert not [h for h in history if h["metadata"].get("run_id") == rolled["run_id"]]
    # Only the rolled-back run's checkpoints went: the interrupted one's stay.
    assert [h for h in history if h["metadata"].get("run_id") == kept["run_id"]] == mine
    assert len(history) == len(before) + len(mine)
    assert (await client.threads.get(tid))["status"] == "idle"
    state = await client.threads.get_state(tid)
    assert state["values"]["steps"] == ["s1", "s2", "s3", "s1"]
    listed = {r["run_id"]: r["status"] for r in await client.runs.list(tid)}
    assert rolled["run_id"] not in listed
    assert listed[kept["run_id"]] == "interrupted"
    assert sorted(listed.values()) == ["interrupted", "success"]


@pytest.mark.parametrize("action", ["interrupt", "rollback"])
async def test_cancel_pending_run(client: LangGraphClient, action: str) -> None:
    """A pending run (queued behind another, or delayed) ends without ever starting."""
    tid = (await client.threads.create())["thread_id"]
    blocker = await start_forever(client, tid)
    queued = await client.runs.create(tid, "slow", input={"steps": []}, config=FOREVER)
    delayed_thread = (await client.threads.create())["thread_id"]
    delayed = await client.runs.create(
        delayed_thread, "slow", input={"steps": []}, after_seconds=60
    )
    joined = asyncio.ensure_future(client.runs.join(tid, queued["run_id"]))
    await asyncio.sleep(0.1)
    for thread_id, run in ((tid, queued), (delayed_thread, delayed)):
        assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "pending"
        await client.runs.cancel(thread_id, run["run_id"], action=action)  # type: ignore[arg-type]
        if action == "rollback":
            with pytest.raises(NotFoundError):
                await client.runs.get(thread_id, run["run_id"])
        else:
            assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    # A client joining the cancelled pending run is released.
    await asyncio.wait_for(joined, 10)
    delayed_state = await client.threads.get(delayed_thread)
    assert delayed_state["status"] == "idle"
    assert delayed_state["values"] in (None, {})
    # The running one is untouched and still holds its thread.
    assert (await client.runs.get(tid, blocker["run_id"]))["status"] == "running"
    assert (await client.threads.get(tid))["status"] == "busy"
    await client.runs.cancel(tid, blocker["run_id"], wait=True)
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_cancel_stateless_pending_run_deletes_its_thread(client: LangGraphClient) -> None:
    run = await client.runs.create(None, "echo", input={"messages": []}, after_seconds=60)
    await client.runs.cancel(run["thread_id"], run["run_id"])
    # The temporary thread was the run's alone: it goes with the run's end.
    with pytest.raises(NotFoundError):
        await client.threads.get(run["thread_id"])


async def test_bulk_cancel_by_status(fresh_server: BerthServer) -> None:
    client = langgraph_sdk.get_client(url=fresh_server.url)
    try:
        busy = (await client.threads.create())["thread_id"]
        running = await start_forever(client, busy)
        queued = await client.runs.create(busy, "slow", input={"steps": []}, config=FOREVER)
        others = []
        for _ in range(3):
            tid = (await client.threads.create())["thread_id"]
            others.append(
                await client.runs.create(tid, "slow", input={"steps": []}, after_seconds=60)
            )

        await client.runs.cancel_many(status="pending")
        for run in [queued, *others]:
            done = await client.runs.get(run["thread_id"], run["run_id"])
            assert done["status"] == "interrupted", done
        for run in others:
            assert (await client.threads.get(run["thread_id"]))["status"] == "idle"
        assert (await client.runs.get(busy, running["run_id"]))["status"] == "running"

        await client.runs.cancel_many(status="running", action="rollback")
        deadline = time.monotonic() + 10
        while True:
            try:
                await client.runs.get(busy, running["run_id"])
            except NotFoundError:
                break
            assert time.monotonic() < deadline, "the running run was not rolled back"
            await asyncio.sleep(0.02)
        assert (await client.threads.get(busy))["status"] == "idle"
        # Nothing left in flight anywhere.
        async with httpx.AsyncClient(base_url=fresh_server.url) as http:
            response = await http.post("/runs/cancel", json={"status": "all"})
            assert response.status_code == 204
        statuses = [
            r["status"]
            for r in [*await client.runs.list(busy)]
            + [r for run in others for r in await client.runs.list(run["thread_id"])]
        ]
        assert statuses and set(statuses) == {"interrupted"}
    finally:
        await client.aclose()


@pytest.mark.parametrize("route", ["wait", "stream"])
async def test_client_disconnect_with_on_disconnect_cancel(
    server: BerthServer, client: LangGraphClient, route: str
) -> None:
    """A waiting (or streaming) client that goes away takes its run with it."""
    tid = (await client.threads.create())["thread_id"]
    body = {
        "assistant_id": "slow",
        "input": {"steps": []},
        "config": FOREVER,
        "on_disconnect": "cancel",
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream("POST", f"/threads/{tid}/runs/{route}", json=body) as response:
            assert response.status_code == 200
            run_id = response.headers["content-location"].rsplit("/", 1)[1]
            await wait_status(client, tid, run_id, {"running"})
        # Leaving the block closed the connection before any result came.
    closed = time.perf_counter()
    run = await wait_status(client, tid, run_id, {"interrupted"}, timeout=10)
    assert run["status"] == "interrupted"
    assert time.perf_counter() - closed < 5
    assert (await client.threads.get(tid))["status"] == "idle"
    state = await client.threads.get_state(tid)
    assert state["values"].get("steps", []) == []


async def test_wait_client_disconnect_without_cancel_keeps_running(
    server: BerthServer, client: LangGraphClient
) -> None:
    tid = (await client.threads.create())["thread_id"]
    body = {"assistant_id": "slow", "input": {"steps": []}, "config": FOREVER}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream("POST", f"/threads/{tid}/runs/wait", json=body) as response:
            run_id = response.headers["content-location"].rsplit("/", 1)[1]
            await wait_status(client, tid, run_id, {"running"})
    await asyncio.sleep(0.5)
    assert (await client.runs.get(tid, run_id))["status"] == "running"
    await client.runs.cancel(tid, run_id, wait=True)
