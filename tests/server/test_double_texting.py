"""Double-texting under load: 50 concurrent run creations on one thread, per strategy.

Invariants checked on SQLite and PostgreSQL: never two running runs on the thread (sampled
all along), no accepted run lost, nothing left pending or running, the thread idle at
the end, and each run's final status (and effect on the state) exactly as its strategy
says.
"""

from __future__ import annotations

import asyncio
from typing import Any

import langgraph_sdk
import pytest
from langgraph_sdk.errors import ConflictError

from tests.berth_server import BerthServer
from tests.conftest import StartServer

pytestmark = pytest.mark.anyio

N = 50


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, start_server: StartServer) -> BerthServer:
    if request.param == "postgresql":
        pg = request.getfixturevalue("pg_database")
        return start_server(env={"DATABASE_URI": pg}, name="pg")
    return start_server(name="sqlite")


async def _storm(server: BerthServer, strategy: str) -> dict[str, Any]:
    client = langgraph_sdk.get_client(url=server.url)
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    most_running = 0
    storming = True

    async def watch() -> None:
        nonlocal most_running
        while storming:
            running = await client.runs.list(thread_id, status="running", limit=10)
            most_running = max(most_running, len(running))
            await asyncio.sleep(0.005)

    async def create(i: int) -> dict[str, Any] | None:
        try:
            return await client.runs.create(
                thread_id,
                "marker",
                input={},
                config={"configurable": {"mark": str(i), "sleep": 0.05}},
                multitask_strategy=strategy,  # type: ignore[arg-type]
            )
        except ConflictError:
            return None

    watcher = asyncio.create_task(watch())
    created = await asyncio.gather(*(create(i) for i in range(N)))
    for _ in range(600):
        active = [
            r
            for r in await client.runs.list(thread_id, limit=100)
            if r["status"] in ("pending", "running")
        ]
        if not active:
            break
        await asyncio.sleep(0.05)
    storming = False
    await watcher
    accepted = [r for r in created if r is not None]
    runs = await client.runs.list(thread_id, limit=100)
    state = await client.threads.get_state(thread_id)
    final_thread = await client.threads.get(thread_id)
    return {
        "accepted": sorted(accepted, key=lambda r: (r["created_at"], r["run_id"])),
        "runs": {r["run_id"]: r for r in runs},
        "marks": (state["values"] or {}).get("marks", []),
        "thread": final_thread,
        "most_running": most_running,
    }


def _mark(run: dict[str, Any]) -> str:
    return str(run["kwargs"]["config"]["configurable"]["mark"])


def _common(result: dict[str, Any]) -> None:
    assert result["most_running"] <= 1
    assert result["thread"]["status"] == "idle"
    assert all(r["status"] not in ("pending", "running") for r in result["runs"].values())


async def test_enqueue(backend: BerthServer) -> None:
    result = await _storm(backend, "enqueue")
    _common(result)
    accepted = result["accepted"]
    assert len(accepted) == N
    assert {result["runs"][r["run_id"]]["status"] for r in accepted} == {"success"}
    # FIFO: every run took effect, in the order the server stored them.
    assert result["marks"] == [_mark(r) for r in accepted]


async def test_reject(backend: BerthServer) -> None:
    result = await _storm(backend, "reject")
    _common(result)
    accepted = result["accepted"]
    # The thread was busy for most of the storm: some were refused, never all.
    assert 1 <= len(accepted) < N
    assert {result["runs"][r["run_id"]]["status"] for r in accepted} == {"success"}
    assert len(result["runs"]) == len(accepted)
    assert result["marks"] == [_mark(r) for r in accepted]


async def test_interrupt(backend: BerthServer) -> None:
    result = await _storm(backend, "interrupt")
    _common(result)
    accepted = result["accepted"]
    assert len(accepted) == N
    statuses = {r["run_id"]: result["runs"][r["run_id"]]["status"] for r in accepted}
    assert set(statuses.values()) <= {"success", "interrupted"}
    assert statuses[accepted[-1]["run_id"]] == "success"
    assert "interrupted" in statuses.values()
    # An interrupted run keeps what it wrote before it stopped, so its mark may be there;
    # every mark is an accepted run's, in acceptance order, and every success left one.
    order = [_mark(r) for r in accepted]
    positions = [order.index(m) for m in result["marks"]]
    assert positions == sorted(set(positions))
    successes = {_mark(r) for r in accepted if statuses[r["run_id"]] == "success"}
    assert successes <= set(result["marks"])


async def test_rollback(backend: BerthServer) -> None:
    result = await _storm(backend, "rollback")
    _common(result)
    accepted = result["accepted"]
    assert len(accepted) == N
    kept = [r for r in accepted if r["run_id"] in result["runs"]]
    # Rolled-back runs are deleted with what they wrote; the survivors all succeeded.
    assert {result["runs"][r["run_id"]]["status"] for r in kept} == {"success"}
    assert kept[-1]["run_id"] == accepted[-1]["run_id"]
    assert len(kept) < N
    assert result["marks"] == [_mark(r) for r in kept]
