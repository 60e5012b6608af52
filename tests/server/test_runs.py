"""Runs: background creation, wait, reads, deletion, cancellation, scheduling and validation."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.berth_server import BerthServer
from tests.helpers import wait_status

HI = {"messages": [{"role": "user", "content": "hi"}]}
SLOW = {"configurable": {"sleep": 1}}
RUN_FIELDS = {
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
}


# -- creation and wait --------------------------------------------------------------


@pytest.mark.anyio
async def test_background_run_on_thread(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "echo", input=HI, metadata={"k": "v"})
    assert RUN_FIELDS <= set(run)
    assert run["thread_id"] == thread["thread_id"]
    assert run["status"] in ("pending", "running")
    assert run["metadata"]["k"] == "v"
    assert run["kwargs"]["input"] == HI
    assert run["multitask_strategy"] == "enqueue"
    result = await client.runs.join(thread["thread_id"], run["run_id"])
    assert result["messages"][-1]["content"] == "echo: hi"
    final = await client.runs.get(thread["thread_id"], run["run_id"])
    assert final["status"] == "success"
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["messages"][-1]["content"] == "echo: hi"


@pytest.mark.anyio
async def test_background_run_stateless(client: LangGraphClient) -> None:
    run = await client.runs.create(None, "echo", input=HI, on_completion="keep")
    assert RUN_FIELDS <= set(run)
    done = await wait_status(client, run["thread_id"], run["run_id"], {"success"})
    assert done["status"] == "success"
    state = await client.threads.get_state(run["thread_id"])
    assert state["values"]["messages"][-1]["content"] == "echo: hi"


@pytest.mark.anyio
async def test_stateless_run_deletes_its_thread(client: LangGraphClient) -> None:
    result = await client.runs.wait(None, "echo", input=HI)
    assert result["messages"][-1]["content"] == "echo: hi"
    run = await client.runs.create(None, "echo", input=HI)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            await client.threads.get(run["thread_id"])
        except NotFoundError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("temporary thread still exists")


@pytest.mark.anyio
async def test_wait_returns_final_values(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "chain10", input={"count": 1})
    assert result == {"count": 11}
    stateless = await client.runs.wait(None, "chain10", input={"count": 0})
    assert stateless == {"count": 10}


@pytest.mark.anyio
async def test_wait_failing_graph(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    with pytest.raises(Exception, match="ValueError: boom"):
        await client.runs.wait(thread["thread_id"], "failing", input={})
    body = await client.runs.wait(thread["thread_id"], "failing", input={}, raise_error=False)
    assert body == {"__error__": {"error": "ValueError", "message": "boom"}}
    stateless = await client.runs.wait(None, "failing", input={}, raise_error=False)
    assert stateless == {"__error__": {"error": "ValueError", "message": "boom"}}


@pytest.mark.anyio
async def test_wait_interrupting_graph(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    body = await client.runs.wait(thread["thread_id"], "interrupting", input={})
    (item,) = body["__interrupt__"]
    assert item["value"] == {"question": "what?"}
    assert isinstance(item["id"], str) and item["id"]
    assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"
    done = await client.runs.wait(thread["thread_id"], "interrupting", command={"resume": "ok"})
    assert done == {"answer": "ok", "value": "done:ok"}


def test_sync_create_wait_join(sync_client: SyncLangGraphClient) -> None:
    thread = sync_client.threads.create()
    run = sync_client.runs.create(thread["thread_id"], "chain10", input={"count": 0})
    assert sync_client.runs.join(thread["thread_id"], run["run_id"]) == {"count": 10}
    assert sync_client.runs.wait(None, "chain10", input={"count": 2}) == {"count": 12}
    with pytest.raises(Exception, match="ValueError: boom"):
        sync_client.runs.wait(None, "failing", input={})
    stateless = sync_client.runs.create(None, "echo", input=HI)
    assert RUN_FIELDS <= set(stateless)
    slow = sync_client.runs.create(thread["thread_id"], "slow", input={"steps": []}, config=SLOW)
    sync_client.runs.cancel(thread["thread_id"], slow["run_id"], wait=True)
    listed = sync_client.runs.list(thread["thread_id"])
    assert [r["run_id"] for r in listed] == [slow["run_id"], run["run_id"]]
    assert listed[0]["status"] == "interrupted"
    sync_client.runs.delete(thread["thread_id"], slow["run_id"])
    assert [r["run_id"] for r in sync_client.runs.list(thread["thread_id"])] == [run["run_id"]]


def test_wait_headers(server: BerthServer) -> None:
    thread = httpx.post(f"{server.url}/threads", json={}).json()
    response = httpx.post(
        f"{server.url}/threads/{thread['thread_id']}/runs/wait",
        json={"assistant_id": "chain10", "input": {"count": 0}},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    base = response.headers["content-location"]
    assert base.startswith(f"/threads/{thread['thread_id']}/runs/")
    assert response.headers["location"] == base + "/join"
    assert response.json() == {"count": 10}


def test_create_headers(server: BerthServer) -> None:
    thread = httpx.post(f"{server.url}/threads", json={}).json()
    response = httpx.post(
        f"{server.url}/threads/{thread['thread_id']}/runs",
        json={"assistant_id": "echo", "input": HI},
    )
    assert response.status_code == 200
    run = response.json()
    assert response.headers["content-location"] == (
        f"/threads/{thread['thread_id']}/runs/{run['run_id']}"
    )
    response = httpx.post(f"{server.url}/runs", json={"assistant_id": "echo", "input": HI})
    assert response.headers["content-location"] == f"/runs/{response.json()['run_id']}"


# -- reads and deletion ---------------------------------------------------------------


@pytest.mark.anyio
async def test_list_get_delete(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    ids = []
    for count in range(3):
        run = await client.runs.create(tid, "chain10", input={"count": count})
        await client.runs.join(tid, run["run_id"])
        ids.append(run["run_id"])
    failed = await client.runs.create(tid, "failing", input={})
    await client.runs.join(tid, failed["run_id"])
    ids.append(failed["run_id"])
    runs = await client.runs.list(tid)
    assert [r["run_id"] for r in runs] == ids[::-1]
    page = await client.runs.list(tid, limit=2, offset=1)
    assert [r["run_id"] for r in page] == [ids[2], ids[1]]
    assert [r["run_id"] for r in await client.runs.list(tid, status="error")] == [ids[3]]
    assert [r["run_id"] for r in await client.runs.list(tid, status="success")] == ids[2::-1]
    got = await client.runs.get(tid, ids[0])
    assert got["run_id"] == ids[0] and got["status"] == "success"
    await client.runs.delete(tid, ids[0])
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, ids[0])
    assert len(await client.runs.list(tid)) == 3
    with pytest.raises(NotFoundError):
        await client.runs.list(str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, str(uuid.uuid4()))


def test_list_select(server: BerthServer) -> None:
    thread = httpx.post(f"{server.url}/threads", json={}).json()
    url = f"{server.url}/threads/{thread['thread_id']}/runs"
    httpx.post(url + "/wait", json={"assistant_id": "echo", "input": HI}, timeout=30)
    response = httpx.get(url, params=[("select", "run_id"), ("select", "status")])
    assert response.status_code == 200
    [item] = response.json()
    assert set(item) == {"run_id", "status"}


# -- cancellation -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancel_running_interrupt(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"steps": []}, config=SLOW)
    await wait_status(client, tid, run["run_id"], {"running"})
    await client.runs.cancel(tid, run["run_id"], wait=True)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert (await client.threads.get(tid))["status"] == "idle"
    with pytest.raises(NotFoundError):
        await client.runs.cancel(tid, run["run_id"])


@pytest.mark.anyio
async def test_cancel_pending(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "slow", input={"steps": []}, config=SLOW)
    second = await client.runs.create(tid, "slow", input={"steps": []}, config=SLOW)
    assert (await client.runs.get(tid, second["run_id"]))["status"] == "pending"
    joined = asyncio.ensure_future(client.runs.join(tid, second["run_id"]))
    await asyncio.sleep(0.2)
    await client.runs.cancel(tid, second["run_id"])
    assert (await client.runs.get(tid, second["run_id"]))["status"] == "interrupted"
    # A client waiting on the pending run is released when it is cancelled.
    await asyncio.wait_for(joined, 10)
    await client.runs.cancel(tid, first["run_id"], wait=True)
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "interrupted"


@pytest.mark.anyio
async def test_cancel_wait_returns_state(server: BerthServer, client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"steps": []}, config=SLOW)
    await wait_status(client, tid, run["run_id"], {"running"})
    response = httpx.post(
        f"{server.url}/threads/{tid}/runs/{run['run_id']}/cancel",
        params={"wait": "true", "action": "interrupt"},
        timeout=30,
    )
    assert response.status_code == 200
    assert isinstance(response.json(), dict)
    quick = await client.runs.create(tid, "slow", input={"steps": []}, config=SLOW)
    response = httpx.post(f"{server.url}/threads/{tid}/runs/{quick['run_id']}/cancel")
    assert response.status_code == 202


@pytest.mark.anyio
async def test_cancel_many(client: LangGraphClient) -> None:
    t1, t2 = await client.threads.create(), await client.threads.create()
    r1 = await client.runs.create(t1["thread_id"], "slow", input={"steps": []}, config=SLOW)
    r2 = await client.runs.create(t1["thread_id"], "slow", input={"steps": []}, config=SLOW)
    r3 = await client.runs.create(t2["thread_id"], "slow", input={"steps": []}, config=SLOW)
    await wait_status(client, t1["thread_id"], r1["run_id"], {"running"})
    await client.runs.cancel_many(thread_id=t1["thread_id"], run_ids=[r1["run_id"], r2["run_id"]])
    for run in (r1, r2):
        done = await wait_status(client, t1["thread_id"], run["run_id"], {"interrupted"})
        assert done["status"] == "interrupted"
    assert (await client.runs.get(t2["thread_id"], r3["run_id"]))["status"] in (
        "pending",
        "running",
    )
    await client.runs.cancel(t2["thread_id"], r3["run_id"], wait=True)


def test_cancel_many_by_status(server: BerthServer) -> None:
    response = httpx.post(f"{server.url}/runs/cancel", json={"status": "pending"})
    assert response.status_code == 204
    response = httpx.post(f"{server.url}/runs/cancel", json={})
    assert response.status_code in (400, 422)
    assert "detail" in response.json()


@pytest.mark.anyio
async def test_cancel_many_status_running(fresh_server: BerthServer) -> None:
    import langgraph_sdk

    client = langgraph_sdk.get_client(url=fresh_server.url)
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "slow", input={"steps": []}, config=SLOW)
    await wait_status(client, thread["thread_id"], run["run_id"], {"running"})
    await client.runs.cancel_many(status="running")
    done = await wait_status(client, thread["thread_id"], run["run_id"], {"interrupted"})
    assert done["status"] == "interrupted"
    await client.aclose()


# -- scheduling and multitasking ------------------------------------------------------


@pytest.mark.anyio
async def test_if_not_exists(client: LangGraphClient) -> None:
    thread_id = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.runs.create(thread_id, "echo", input=HI)
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.wait(thread_id, "echo", input=HI)
    assert info.value.response.status_code == 404
    result = await client.runs.wait(thread_id, "echo", input=HI, if_not_exists="create")
    assert result["messages"][-1]["content"] == "echo: hi"
    thread = await client.threads.get(thread_id)
    assert thread["metadata"]["graph_id"] == "echo"


@pytest.mark.anyio
async def test_after_seconds(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    start = time.monotonic()
    run = await client.runs.create(thread["thread_id"], "echo", input=HI, after_seconds=1)
    await asyncio.sleep(0.5)
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "pending"
    await client.runs.join(thread["thread_id"], run["run_id"])
    assert time.monotonic() - start >= 1.0
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"


@pytest.mark.anyio
async def test_multitask_reject(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"steps": []}, config=SLOW)
    with pytest.raises(ConflictError) as info:
        await client.runs.create(tid, "echo", input=HI, multitask_strategy="reject")
    assert "already running" in str(info.value.response.json()["detail"])
    await client.runs.cancel(tid, run["run_id"], wait=True)


@pytest.mark.anyio
async def test_multitask_enqueue_fifo(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    quick = {"configurable": {"sleep": 0.1}}
    runs = [
        await client.runs.create(
            tid, "slow", input={"steps": [f"r{i}"]}, config=quick, multitask_strategy="enqueue"
        )
        for i in range(3)
    ]
    assert (await client.threads.get(tid))["status"] == "busy"
    await client.runs.join(tid, runs[-1]["run_id"])
    steps = (await client.threads.get_state(tid))["values"]["steps"]
    assert steps == [
        *("r0", "s1", "s2", "s3"),
        *("r1", "s1", "s2", "s3"),
        *("r2", "s1", "s2", "s3"),
    ]
    for run in runs:
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


@pytest.mark.anyio
async def test_batch(client: LangGraphClient) -> None:
    runs = await client.runs.create_batch(
        [
            {"assistant_id": "chain10", "input": {"count": 0}, "on_completion": "keep"},
            {"assistant_id": "echo", "input": HI, "on_completion": "keep"},
        ]
    )
    assert len(runs) == 2
    assert len({r["thread_id"] for r in runs}) == 2
    assert await client.runs.join(runs[0]["thread_id"], runs[0]["run_id"]) == {"count": 10}
    echo = await client.runs.join(runs[1]["thread_id"], runs[1]["run_id"])
    assert echo["messages"][-1]["content"] == "echo: hi"


@pytest.mark.anyio
@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_durability(client: LangGraphClient, durability: str) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "chain10", input={"count": 0}, durability=durability)
    assert run["kwargs"]["durability"] == durability
    assert await client.runs.join(tid, run["run_id"]) == {"count": 10}
    history = await client.threads.get_history(tid, limit=100)
    assert history[0]["values"] == {"count": 10}
    if durability == "exit":
        assert len(history) < 12
    else:
        assert len(history) == 12


# -- validation -----------------------------------------------------------------------


def _post(server: BerthServer, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=30)


@pytest.mark.parametrize("mode", ["tools", "lifecycle", "nope"])
@pytest.mark.parametrize("path", ["/runs", "/runs/stream", "/runs/wait"])
def test_bad_stream_mode(server: BerthServer, path: str, mode: str) -> None:
    response = _post(server, path, {"assistant_id": "echo", "stream_mode": [mode]})
    assert response.status_code == 422
    assert "stream_mode" in response.json()["detail"]


def test_validation(server: BerthServer) -> None:
    thread = httpx.post(f"{server.url}/threads", json={}).json()
    on_thread = f"/threads/{thread['thread_id']}/runs"
    cases: list[tuple[str, Any, int]] = [
        ("/runs", {"assistant_id": "echo", "checkpoint_id": "not-a-uuid"}, 422),
        (
            on_thread,
            {"assistant_id": "echo", "checkpoint": {"checkpoint_id": "nope"}},
            422,
        ),
        (
            "/runs",
            {"assistant_id": "echo", "context": {"a": 1}, "config": {"configurable": {"b": 2}}},
            400,
        ),
        ("/runs/wait", {"assistant_id": "interrupting", "command": {"resume": "x"}}, 400),
        ("/runs", {"assistant_id": str(uuid.uuid4())}, 404),
        ("/runs", {"assistant_id": "no-such-graph"}, 422),
        ("/runs", {}, 422),
        ("/runs", {"assistant_id": "echo", "after_seconds": -1}, 422),
        ("/runs", {"assistant_id": "echo", "multitask_strategy": "whatever"}, 422),
        ("/runs", {"assistant_id": "echo", "durability": "forever"}, 422),
        (f"/threads/{uuid.uuid4()}/runs/stream", {"assistant_id": "echo"}, 404),
        ("/threads/not-a-uuid/runs", {"assistant_id": "echo"}, 422),
    ]
    for path, body, status in cases:
        response = _post(server, path, body)
        assert response.status_code == status, (path, body, response.text)
        assert isinstance(response.json()["detail"], str)


def test_malformed_json(server: BerthServer) -> None:
    for path in ("/runs", "/runs/stream", "/runs/wait", "/runs/batch", "/runs/cancel"):
        response = httpx.post(
            f"{server.url}{path}",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422, path
        assert "detail" in response.json()


def test_unknown_run_paths(server: BerthServer) -> None:
    thread = httpx.post(f"{server.url}/threads", json={}).json()
    base = f"{server.url}/threads/{thread['thread_id']}/runs"
    missing = str(uuid.uuid4())
    assert httpx.get(f"{base}/{missing}").status_code == 404
    assert httpx.delete(f"{base}/{missing}").status_code == 404
    assert httpx.post(f"{base}/{missing}/cancel").status_code == 404
    assert httpx.get(f"{base}/not-a-uuid").status_code == 422
    assert httpx.get(f"{base}/{missing}/join").status_code == 404


@pytest.mark.anyio
async def test_cancel_many_keeps_other_threads_runs(client: LangGraphClient) -> None:
    t1, t2 = await client.threads.create(), await client.threads.create()
    r1 = await client.runs.create(t1["thread_id"], "slow", input={"steps": []}, config=SLOW)
    r2 = await client.runs.create(t2["thread_id"], "slow", input={"steps": []}, config=SLOW)
    await client.runs.cancel_many(thread_id=t1["thread_id"], run_ids=[r1["run_id"], r2["run_id"]])
    await wait_status(client, t1["thread_id"], r1["run_id"], {"interrupted"})
    assert (await client.runs.get(t2["thread_id"], r2["run_id"]))["status"] in (
        "pending",
        "running",
    )
    await client.runs.cancel_many(thread_id=t2["thread_id"])
    await wait_status(client, t2["thread_id"], r2["run_id"], {"interrupted"})
