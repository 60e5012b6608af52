"""`POST /threads/prune`, thread TTLs and their sweeper, and `strict_resume` on runs."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import langgraph_sdk
import pytest
from langgraph._internal._constants import CONFIG_KEY_STRICT_RESUME
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import UnknownInterruptError
from langgraph.types import Command
from langgraph_sdk.client import LangGraphClient

from tests.berth_server import BerthServer
from tests.conftest import StartServer

pytestmark = pytest.mark.anyio

#: a well-formed interrupt id (an xxh3-128 hex digest) that no interrupt has
UNKNOWN_INTERRUPT = "0" * 32


async def _run_chain(client: LangGraphClient, thread_id: str) -> None:
    await client.runs.wait(thread_id, "chain10", input={"count": 0})


async def _gone(client: LangGraphClient, thread_id: str) -> bool:
    try:
        await client.threads.get(thread_id)
    except httpx.HTTPStatusError as exc:
        assert exc.response.status_code == 404
        return True
    return False


async def _eventually_gone(client: LangGraphClient, thread_id: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await _gone(client, thread_id):
            await asyncio.sleep(0.1)


# -- prune -----------------------------------------------------------------------------


async def test_prune_delete_cascades(client: LangGraphClient) -> None:
    doomed = [(await client.threads.create())["thread_id"] for _ in range(2)]
    kept = (await client.threads.create())["thread_id"]
    await _run_chain(client, doomed[0])
    run = (await client.runs.list(doomed[0]))[0]
    missing = str(uuid.uuid4())
    result = await client.threads.prune([*doomed, missing, doomed[0]])
    assert result == {"pruned_count": 2}
    for thread_id in doomed:
        assert await _gone(client, thread_id)
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.get(doomed[0], run["run_id"])
    assert info.value.response.status_code == 404
    assert (await client.threads.get(kept))["thread_id"] == kept


async def test_prune_keep_latest_keeps_the_latest_state(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    await _run_chain(client, thread_id)
    await client.runs.wait(thread_id, "chain10", input={"count": 5})
    before = await client.threads.get_state(thread_id)
    assert len(await client.threads.get_history(thread_id, limit=100)) > 10
    assert await client.threads.prune([thread_id], strategy="keep_latest") == {"pruned_count": 1}
    history = await client.threads.get_history(thread_id, limit=100)
    assert [h["checkpoint"]["checkpoint_id"] for h in history] == [
        before["checkpoint"]["checkpoint_id"]
    ]
    after = await client.threads.get_state(thread_id)
    assert after["values"] == before["values"] == {"count": 15}
    # The thread keeps working from its latest state.
    result = await client.runs.wait(thread_id, "chain10", input={"count": 1})
    assert result == {"count": 11}


async def test_prune_validation(server: BerthServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        for body in (
            {},
            {"thread_ids": ["not-a-uuid"]},
            {"thread_ids": [str(uuid.uuid4())], "strategy": "archive"},
            {"thread_ids": "x"},
        ):
            response = await http.post("/threads/prune", json=body)
            assert response.status_code == 422, body
            assert "detail" in response.json()
        empty = await http.post("/threads/prune", json={"thread_ids": []})
        assert empty.status_code == 200 and empty.json() == {"pruned_count": 0}


# -- TTL -------------------------------------------------------------------------------


async def test_ttl_is_stored_and_shown(client: LangGraphClient) -> None:
    start = datetime.now(UTC)
    thread = await client.threads.create(ttl=60)
    thread_id = thread["thread_id"]
    assert "ttl" not in thread
    assert "ttl" not in await client.threads.get(thread_id)
    shown = await client.threads.get(thread_id, include=["ttl"])
    ttl = shown["ttl"]
    assert ttl["strategy"] == "delete" and ttl["ttl_minutes"] == 60
    expires = datetime.fromisoformat(ttl["expires_at"])
    assert start + timedelta(minutes=59) < expires < start + timedelta(minutes=61)

    updated = await client.threads.update(
        thread_id, metadata={}, ttl={"strategy": "keep_latest", "ttl": 5}
    )
    assert updated["thread_id"] == thread_id
    ttl = (await client.threads.get(thread_id, include=["ttl"]))["ttl"]
    assert ttl["strategy"] == "keep_latest" and ttl["ttl_minutes"] == 5
    # A thread without a TTL says so.
    plain = (await client.threads.create())["thread_id"]
    assert (await client.threads.get(plain, include=["ttl"]))["ttl"] is None


async def test_ttl_validation(server: BerthServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        for ttl in (
            {"ttl": -1},
            {"ttl": 0},
            {"strategy": "archive", "ttl": 5},
            {"strategy": "delete"},
            5,
        ):
            created = await http.post("/threads", json={"ttl": ttl})
            assert created.status_code == 422, ttl
            patched = await http.patch(f"/threads/{thread_id}", json={"ttl": ttl})
            assert patched.status_code == 422, ttl
        bad = await http.get(f"/threads/{thread_id}", params={"include": "secrets"})
        assert bad.status_code == 422 and "ttl" in bad.json()["detail"]


@pytest.fixture
def sweeping(start_server: StartServer) -> LangGraphClient:
    server = start_server(env={"BERTH_THREAD_TTL_SWEEP": "0.2"}, name="sweeping")
    return langgraph_sdk.get_client(url=server.url)


async def test_sweeper_deletes_expired_threads(sweeping: LangGraphClient) -> None:
    # 0.01 minutes: 0.6 s
    expiring = (await sweeping.threads.create(ttl={"ttl": 0.01}))["thread_id"]
    await _run_chain(sweeping, expiring)
    lasting = (await sweeping.threads.create(ttl=60))["thread_id"]
    forever = (await sweeping.threads.create())["thread_id"]
    await _eventually_gone(sweeping, expiring)
    assert await sweeping.runs.list(lasting) == []
    for thread_id in (lasting, forever):
        assert (await sweeping.threads.get(thread_id))["thread_id"] == thread_id


async def test_activity_postpones_expiry(sweeping: LangGraphClient) -> None:
    # 0.025 minutes: 1.5 s after the last activity
    thread_id = (await sweeping.threads.create(ttl={"ttl": 0.025}))["thread_id"]
    started = asyncio.get_running_loop().time()
    # Runs and PATCHes keep it alive well past its TTL…
    for i in range(8):
        if i % 2:
            await sweeping.threads.update(thread_id, metadata={"touch": i})
        else:
            await _run_chain(sweeping, thread_id)
        await asyncio.sleep(0.4)
    assert asyncio.get_running_loop().time() - started > 3.0
    assert (await sweeping.threads.get(thread_id))["metadata"]["touch"] == 7
    # …and once left alone it goes.
    await _eventually_gone(sweeping, thread_id)


async def test_keep_latest_ttl_prunes_history(sweeping: LangGraphClient) -> None:
    thread_id = (await sweeping.threads.create())["thread_id"]
    await _run_chain(sweeping, thread_id)
    state = await sweeping.threads.get_state(thread_id)
    await sweeping.threads.update(
        thread_id, metadata={}, ttl={"strategy": "keep_latest", "ttl": 0.01}
    )
    async with asyncio.timeout(10):
        while len(await sweeping.threads.get_history(thread_id, limit=100)) > 1:
            await asyncio.sleep(0.1)
    assert (await sweeping.threads.get_state(thread_id))["values"] == state["values"]
    assert (await sweeping.threads.get(thread_id))["values"] == {"count": 10}


async def test_ttl_survives_a_restart(start_server: StartServer) -> None:
    server = start_server(name="ttl-restart")
    client = langgraph_sdk.get_client(url=server.url)
    thread_id = (await client.threads.create(ttl={"ttl": 0.01}))["thread_id"]
    server.stop()
    server.env["BERTH_THREAD_TTL_SWEEP"] = "0.2"
    server.start()
    await _eventually_gone(langgraph_sdk.get_client(url=server.url), thread_id)


# -- strict_resume ---------------------------------------------------------------------


def _in_process(strict: bool) -> tuple[str, Any, list[str]]:
    """What LangGraph itself does with a resume naming no pending interrupt."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "graphs"))
    try:
        import interrupting
    finally:
        sys.path.pop(0)
    graph = interrupting.graph.builder.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t"}}
    graph.invoke({"value": "x"}, config)
    strict_config: Any = {"configurable": {"thread_id": "t", CONFIG_KEY_STRICT_RESUME: strict}}
    try:
        graph.invoke(Command(resume={UNKNOWN_INTERRUPT: "nope"}), strict_config)
        outcome = "ok"
    except UnknownInterruptError as exc:
        outcome = type(exc).__name__
    state = graph.get_state(config)
    return outcome, state.values, list(state.next)


async def _paused(client: LangGraphClient) -> tuple[str, str]:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "interrupting", input={"value": "x"})
    state = await client.threads.get_state(thread_id)
    return thread_id, state["interrupts"][0]["id"]


async def test_info_reports_strict_resume(client: LangGraphClient) -> None:
    async with httpx.AsyncClient(base_url=client.http.client.base_url) as http:
        assert (await http.get("/info")).json()["flags"]["strict_resume"] is True


@pytest.mark.parametrize("strict", [True, False])
async def test_strict_resume_matches_langgraph(client: LangGraphClient, strict: bool) -> None:
    outcome, values, next_nodes = _in_process(strict)
    assert outcome == ("UnknownInterruptError" if strict else "ok")
    thread_id, interrupt_id = await _paused(client)
    before = await client.threads.get_history(thread_id, limit=100)
    run = await client.runs.create(
        thread_id,
        "interrupting",
        command={"resume": {UNKNOWN_INTERRUPT: "nope"}},
        strict_resume=strict,
    )
    assert run["kwargs"].get("strict_resume", False) is strict
    await client.runs.join(thread_id, run["run_id"])
    finished = await client.runs.get(thread_id, run["run_id"])
    state = await client.threads.get_state(thread_id)
    assert state["values"] == values and state["next"] == next_nodes
    assert [i["id"] for i in state["interrupts"]] == [interrupt_id]
    if strict:
        assert finished["status"] == "error"
        # Refused before any step: the thread's history is as it was.
        assert await client.threads.get_history(thread_id, limit=100) == before
    else:
        assert finished["status"] == "success"
    # The right id still resumes the thread, strictly or not.
    result = await client.runs.wait(
        thread_id,
        "interrupting",
        command={"resume": {interrupt_id: "yes"}},
        strict_resume=True,
    )
    assert result["value"] == "done:yes"


async def test_strict_resume_streams_the_error(client: LangGraphClient) -> None:
    thread_id, _ = await _paused(client)
    parts = [
        part
        async for part in client.runs.stream(
            thread_id,
            "interrupting",
            command={"resume": {UNKNOWN_INTERRUPT: "nope"}},
            strict_resume=True,
        )
    ]
    assert parts[0].event == "metadata"
    assert parts[-1].event == "error"
    assert parts[-1].data["error"] == "UnknownInterruptError"
    assert UNKNOWN_INTERRUPT in parts[-1].data["message"]
