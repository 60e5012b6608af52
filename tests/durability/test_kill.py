"""Durability across a real SIGKILL of the server (contract §5).

A run killed mid-way is picked up again on the next start and continues from its last
checkpoint: nodes that already committed are not re-executed. Pending runs survive too.
The `slow` graph logs every node execution to `BERTH_TEST_COUNTER_FILE`.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk.client import SyncLangGraphClient

from tests.berth_server import BerthServer
from tests.helpers import sdk, wait_for

StartServer = Callable[..., BerthServer]

#: seconds each node of the run that gets killed sleeps
SLOW = 1.5


def executions(counter_file: Path) -> collections.Counter[tuple[str, str]]:
    """(node, thread_id) → how many times the node started."""
    if not counter_file.exists():
        return collections.Counter()
    lines = counter_file.read_text().splitlines()
    return collections.Counter(tuple(line.split(" ", 1)) for line in lines if line)  # type: ignore[misc]


def slow_config(sleep: float) -> dict[str, Any]:
    return {"configurable": {"sleep": sleep}}


def _at_s2(state: Any) -> bool:
    return bool(state["values"].get("steps") == ["s1"] and state["next"] == ["s2"])


def kill_mid_run(server: BerthServer, counter_file: Path) -> tuple[str, str]:
    """Start a `slow` run, SIGKILL the server once s1 committed and s2 is running."""
    with sdk(server) as client:
        thread_id = client.threads.create()["thread_id"]
        run = client.runs.create(
            thread_id,
            "slow",
            input={"steps": []},
            config=slow_config(SLOW),
            stream_resumable=True,
        )
        wait_for(
            lambda: executions(counter_file)[("s2", thread_id)],
            timeout=20,
            what="s2 to start",
        )
        # The checkpoint after s1 is stored (s1's writes alone, before that checkpoint,
        # would show values ["s1"] with no `next`).
        wait_for(
            lambda: _at_s2(client.threads.get_state(thread_id)),
            timeout=SLOW / 2,
            what="the checkpoint after s1",
        )
        assert client.runs.get(thread_id, run["run_id"])["status"] == "running"
    assert executions(counter_file)[("s3", thread_id)] == 0, "killed too late"
    server.kill()
    assert not server.running
    return thread_id, run["run_id"]


def assert_resumed(server: BerthServer, counter_file: Path, thread_id: str, run_id: str) -> None:
    """After the restart the run continues from s2 and ends as a success."""
    with sdk(server) as client:
        parts = list(client.runs.join_stream(thread_id, run_id, last_event_id="-"))
        assert parts, "the joined stream was empty"
        first = parts[0]
        assert first.event == "metadata"
        assert first.data == {"run_id": run_id, "attempt": 2}
        assert [p.event for p in parts if p.event == "error"] == []
        values = [p.data for p in parts if p.event == "values"]
        assert values[-1] == {"steps": ["s1", "s2", "s3"]}
        # The resumed attempt starts from s1's checkpoint, never from an empty state.
        assert all(v["steps"][:1] == ["s1"] for v in values)

        final = client.runs.join(thread_id, run_id)
        assert final == {"steps": ["s1", "s2", "s3"]}
        run = client.runs.get(thread_id, run_id)
        assert run["status"] == "success"
        thread = client.threads.get(thread_id)
        assert thread["status"] == "idle"
        assert thread["values"] == {"steps": ["s1", "s2", "s3"]}
        assert client.threads.get_state(thread_id)["values"] == {"steps": ["s1", "s2", "s3"]}
    counts = executions(counter_file)
    assert counts[("s1", thread_id)] == 1, "a committed node ran again"
    assert counts[("s2", thread_id)] in (1, 2), "s2 was in flight: once more at most"
    assert counts[("s3", thread_id)] == 1


def test_sigkill_mid_run_resumes_from_last_checkpoint(
    start_server: StartServer, counter_file: Path
) -> None:
    server = start_server(env={"BERTH_TEST_COUNTER_FILE": str(counter_file)}, name="kill")
    thread_id, run_id = kill_mid_run(server, counter_file)
    server.start()
    assert_resumed(server, counter_file, thread_id, run_id)


def test_sigkill_mid_run_resumes_on_postgres(
    pg_database: str, start_server: StartServer, counter_file: Path
) -> None:
    # PostgreSQL is shared between processes: a run is only taken back once the dead
    # worker's lease expires, so keep leases short (3 heartbeats = 1.5 s).
    env = {
        "BERTH_TEST_COUNTER_FILE": str(counter_file),
        "DATABASE_URI": pg_database,
        "BERTH_HEARTBEAT_INTERVAL": "0.5",
    }
    server = start_server(env=env, name="kill-pg")
    thread_id, run_id = kill_mid_run(server, counter_file)
    server.start()
    with sdk(server) as client:
        # Not lost meanwhile: still in flight until the lease expires and it is retried.
        assert client.runs.get(thread_id, run_id)["status"] in ("running", "pending")
    assert_resumed(server, counter_file, thread_id, run_id)


def test_sigkill_loses_no_pending_runs(start_server: StartServer, counter_file: Path) -> None:
    # One run at a time, so everything but the first run is still pending at the kill.
    env = {"BERTH_TEST_COUNTER_FILE": str(counter_file), "N_JOBS_PER_WORKER": "1"}
    server = start_server(env=env, name="kill-queue")
    quick = slow_config(0.05)
    with sdk(server) as client:
        thread_id = client.threads.create()["thread_id"]
        first = client.runs.create(thread_id, "slow", input={"steps": []}, config=slow_config(SLOW))
        wait_for(
            lambda: executions(counter_file)[("s1", thread_id)],
            timeout=20,
            what="the first run to start",
        )
        queued = [
            client.runs.create(
                thread_id, "slow", input={"steps": []}, config=quick, multitask_strategy="enqueue"
            )
            for _ in range(3)
        ]
        kept = [
            client.runs.create(
                None, "slow", input={"steps": []}, config=quick, on_completion="keep"
            )
            for _ in range(2)
        ]
        temporary = [
            client.runs.create(None, "slow", input={"steps": []}, config=quick) for _ in range(2)
        ]
        delayed = client.runs.create(
            None, "slow", input={"steps": []}, config=quick, on_completion="keep", after_seconds=3
        )
        wait_for(
            lambda: executions(counter_file)[("s2", thread_id)],
            timeout=20,
            what="the first run's s1 to commit",
        )
        others = [*queued, *kept, *temporary, delayed]
        statuses = {
            r["run_id"]: client.runs.get(r["thread_id"], r["run_id"])["status"] for r in others
        }
        assert set(statuses.values()) == {"pending"}, statuses
        assert client.runs.get(thread_id, first["run_id"])["status"] == "running"
        assert client.threads.get(thread_id)["status"] == "busy"
    server.kill()
    server.start()

    with sdk(server) as client:
        for run in [first, *queued, *kept, delayed]:
            client.runs.join(run["thread_id"], run["run_id"])
            final = client.runs.get(run["thread_id"], run["run_id"])
            assert final["status"] == "success", final
        # Temporary threads go with their run: done when the thread is gone.
        for run in temporary:
            wait_for(
                lambda run=run: _missing(client, run["thread_id"]),
                timeout=30,
                what=f"temporary run {run['run_id']} to finish",
            )
        thread = client.threads.get(thread_id)
        assert thread["status"] == "idle"
        assert thread["values"] == {"steps": ["s1", "s2", "s3"] * 4}
        listed = client.runs.list(thread_id, limit=10)
        assert {r["run_id"] for r in listed} == {first["run_id"], *(r["run_id"] for r in queued)}
        assert {r["status"] for r in listed} == {"success"}
        for run in [*kept, delayed]:
            assert client.threads.get(run["thread_id"])["values"] == {"steps": ["s1", "s2", "s3"]}
    counts = executions(counter_file)
    # Three fresh runs plus the killed one, whose s1 had committed.
    assert counts[("s1", thread_id)] == 4
    assert counts[("s3", thread_id)] == 4
    for run in [*kept, *temporary, delayed]:
        for node in ("s1", "s2", "s3"):
            assert counts[(node, run["thread_id"])] == 1, (node, run)


def _missing(client: SyncLangGraphClient, thread_id: str) -> bool:
    try:
        client.threads.get(thread_id)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return True
        raise
    return False
