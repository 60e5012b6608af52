"""Time travel: state at any checkpoint, history queries, replays and forks, copies,
and run deletion/rollback removing exactly the checkpoints a run wrote.

Each test runs on SQLite and on PostgreSQL (the latter under ``scripts/test``). The
``slow`` and ``hitl_parallel`` graphs log node executions to a counter file, so a
replay is shown to re-run only the nodes after its checkpoint.
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import itertools
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import langgraph_sdk
import psycopg
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command
from langgraph_sdk.client import LangGraphClient
from psycopg import sql

from tests.berth_server import GRAPHS_CONFIG, BerthServer


def local_graph(name: str) -> Any:
    """A test graph compiled in-process on an in-memory checkpointer: LangGraph itself."""
    path = GRAPHS_CONFIG.parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"local_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # LangGraph resolves annotations through it
    spec.loader.exec_module(module)
    return module.graph.builder.compile(checkpointer=InMemorySaver())


class Backend:
    """A server on one storage backend whose graphs log node executions."""

    def __init__(self, server: BerthServer, log: Path) -> None:
        self.server = server
        self.log = log
        self.url = server.url

    def runs(self, thread_id: str) -> collections.Counter[str]:
        if not self.log.exists():
            return collections.Counter()
        lines = (line.split(" ", 1) for line in self.log.read_text().splitlines())
        return collections.Counter(node for node, tid in lines if tid == thread_id)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    root = tmp_path_factory.mktemp(f"time-travel-{request.param}")
    env = {"BERTH_TEST_COUNTER_FILE": str(root / "executions.log")}
    database = None
    if request.param == "postgres":
        admin = request.getfixturevalue("pg_uri")
        database = f"berth_tt_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        env["DATABASE_URI"] = urlsplit(admin)._replace(path=f"/{database}").geturl()
    server = BerthServer(root / "data", env=env).start()
    yield Backend(server, root / "executions.log")
    server.stop()
    if database is not None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


@pytest.fixture
async def sdk(backend: Backend) -> Any:
    client = langgraph_sdk.get_client(url=backend.url)
    yield client
    await client.aclose()


async def slow_thread(sdk: LangGraphClient) -> str:
    thread_id = str((await sdk.threads.create())["thread_id"])
    await sdk.runs.wait(thread_id, "slow", input={"steps": []})
    return thread_id


def ids(states: list[dict[str, Any]]) -> list[str]:
    return [s["checkpoint"]["checkpoint_id"] for s in states]


def at_next(history: list[dict[str, Any]], node: str) -> dict[str, Any]:
    [state] = [s for s in history if s["next"] == [node]]
    return state


# -- reading state ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_state_at_every_checkpoint(sdk: LangGraphClient, backend: Backend) -> None:
    thread_id = await slow_thread(sdk)
    history = await sdk.threads.get_history(thread_id, limit=100)
    # input, then one checkpoint per superstep: s1, s2, s3 and the end
    assert [h["next"] for h in history] == [[], ["s3"], ["s2"], ["s1"], ["__start__"]]
    assert [h["metadata"]["source"] for h in history] == ["loop"] * 4 + ["input"]
    assert [h["metadata"]["step"] for h in history] == [3, 2, 1, 0, -1]
    for newer, older in itertools.pairwise(history):
        assert newer["parent_checkpoint"] == older["checkpoint"]
        assert newer["parent_checkpoint_id"] == older["checkpoint_id"]
    assert history[-1]["parent_checkpoint"] is None
    assert await sdk.threads.get_state(thread_id) == history[0]
    for past in history:
        checkpoint = past["checkpoint"]
        assert checkpoint["thread_id"] == thread_id and checkpoint["checkpoint_ns"] == ""
        by_path = await sdk.threads.get_state(thread_id, checkpoint_id=checkpoint["checkpoint_id"])
        by_body = await sdk.threads.get_state(thread_id, checkpoint=checkpoint)
        assert by_path == by_body == past
    with httpx.Client(base_url=backend.url) as http:
        checkpoint_id = history[2]["checkpoint_id"]
        got = http.get(f"/threads/{thread_id}/state/{checkpoint_id}")
        assert got.status_code == 200 and got.json()["values"] == {"steps": ["s1"]}
        missing = http.get(f"/threads/{thread_id}/state/{uuid.uuid4()}")
        assert missing.status_code == 404 and "detail" in missing.json()
        bad = http.get(f"/threads/{thread_id}/state/not-a-uuid")
        assert bad.status_code == 422


@pytest.mark.anyio
async def test_state_with_subgraphs(sdk: LangGraphClient) -> None:
    thread_id = str((await sdk.threads.create())["thread_id"])
    await sdk.runs.wait(thread_id, "hitl_parallel", input={"items": []})
    flat = await sdk.threads.get_state(thread_id)
    nested = await sdk.threads.get_state(thread_id, subgraphs=True)
    flat_b = {t["name"]: t for t in flat["tasks"]}["b"]
    nested_b = {t["name"]: t for t in nested["tasks"]}["b"]
    # without subgraphs a task names its child's checkpoint; with them it holds its state
    assert flat_b["state"] is None
    ns = flat_b["checkpoint"]["checkpoint_ns"]
    assert ns.startswith("b:") and flat_b["checkpoint"]["thread_id"] == thread_id
    child = nested_b["state"]
    assert child["checkpoint"]["checkpoint_ns"] == ns
    assert child["values"] == {"items": ["b_prep"]} and child["next"] == ["b_ask"]
    assert [i["value"] for i in child["interrupts"]] == ["b?"]
    # the child's state, addressed through its namespace
    direct = await sdk.threads.get_state(thread_id, checkpoint={"checkpoint_ns": ns})
    assert direct["values"] == child["values"] and direct["next"] == ["b_ask"]
    assert direct["checkpoint"]["checkpoint_ns"] == ns
    # a past root checkpoint, with subgraphs: before the branches ran there is no child
    history = await sdk.threads.get_history(thread_id, limit=10)
    start = at_next(history, "__start__")
    past = await sdk.threads.get_state(
        thread_id, checkpoint_id=start["checkpoint"]["checkpoint_id"], subgraphs=True
    )
    assert past["values"] == {"items": []} and all(t["state"] is None for t in past["tasks"])


# -- history -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_history_filters(sdk: LangGraphClient, backend: Backend) -> None:
    thread_id = await slow_thread(sdk)
    await sdk.runs.wait(thread_id, "slow", input={"steps": []})
    everything = await sdk.threads.get_history(thread_id, limit=100)
    assert len(everything) == 10
    assert ids(await sdk.threads.get_history(thread_id, limit=3)) == ids(everything[:3])
    before = everything[3]["checkpoint"]
    older = await sdk.threads.get_history(thread_id, limit=2, before=before)
    assert ids(older) == ids(everything[4:6])
    by_id = await sdk.threads.get_history(thread_id, limit=2, before=before["checkpoint_id"])
    assert ids(by_id) == ids(older)
    inputs = await sdk.threads.get_history(thread_id, limit=100, metadata={"source": "input"})
    assert len(inputs) == 2 and all(h["next"] == ["__start__"] for h in inputs)
    first_run = everything[-1]["metadata"]["run_id"]
    mine = await sdk.threads.get_history(thread_id, limit=100, metadata={"run_id": first_run})
    assert ids(mine) == ids(everything[5:])
    # steps count on across runs: the second run's input is step 4
    step = await sdk.threads.get_history(thread_id, limit=100, metadata={"step": 2})
    assert [h["next"] for h in step] == [["s3"]] and step[0]["metadata"]["run_id"] == first_run
    both = await sdk.threads.get_history(
        thread_id, limit=100, metadata={"source": "input", "step": 4}
    )
    assert len(both) == 1 and both[0]["metadata"]["run_id"] != first_run
    assert await sdk.threads.get_history(thread_id, limit=5, metadata={"source": "nope"}) == []

    with httpx.Client(base_url=backend.url) as http:
        default = http.get(f"/threads/{thread_id}/history")
        assert default.status_code == 200 and ids(default.json()) == ids(everything[:1])
        got = http.get(
            f"/threads/{thread_id}/history",
            params={"limit": 2, "before": before["checkpoint_id"]},
        )
        assert ids(got.json()) == ids(older)
        posted = http.post(f"/threads/{thread_id}/history", json={})
        assert ids(posted.json()) == ids(everything[:1])
        for bad in ({"limit": 0}, {"limit": "x"}):
            assert http.post(f"/threads/{thread_id}/history", json=bad).status_code == 422


@pytest.mark.anyio
async def test_subgraph_history(sdk: LangGraphClient) -> None:
    thread_id = str((await sdk.threads.create())["thread_id"])
    await sdk.runs.wait(thread_id, "hitl_parallel", input={"items": []})
    state = await sdk.threads.get_state(thread_id)
    ns = {t["name"]: t for t in state["tasks"]}["b"]["checkpoint"]["checkpoint_ns"]
    child = await sdk.threads.get_history(thread_id, limit=10, checkpoint={"checkpoint_ns": ns})
    assert [h["next"] for h in child] == [["b_ask"], ["b_prep"], ["__start__"]]
    assert all(h["checkpoint"]["checkpoint_ns"] == ns for h in child)
    assert all(h["checkpoint"]["thread_id"] == thread_id for h in child)
    root = await sdk.threads.get_history(thread_id, limit=10)
    assert all(h["checkpoint"]["checkpoint_ns"] == "" for h in root)
    assert not set(ids(root)) & set(ids(child))


# -- replay and fork ---------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("form", ["checkpoint_id", "checkpoint"])
async def test_replay_from_checkpoint(sdk: LangGraphClient, backend: Backend, form: str) -> None:
    thread_id = await slow_thread(sdk)
    original = await sdk.threads.get_history(thread_id, limit=100)
    fork_point = at_next(original, "s2")["checkpoint"]
    fork_point_values = at_next(original, "s2")["values"]
    where: dict[str, Any] = (
        {"checkpoint_id": fork_point["checkpoint_id"]}
        if form == "checkpoint_id"
        else {"checkpoint": fork_point}
    )
    done = await sdk.runs.wait(thread_id, "slow", input=None, **where)
    assert done == {"steps": ["s1", "s2", "s3"]}
    # only the nodes after the checkpoint ran again
    assert backend.runs(thread_id) == {"s1": 1, "s2": 2, "s3": 2}
    history = await sdk.threads.get_history(thread_id, limit=100)
    assert set(ids(original)) < set(ids(history))
    new = [h for h in history if h["checkpoint_id"] not in set(ids(original))]
    assert [h["next"] for h in new] == [[], ["s3"], ["s2"]]
    # the new branch starts with a copy of the fork point, hanging off it
    fork = new[-1]
    assert fork["metadata"]["source"] == "fork" and fork["values"] == fork_point_values
    assert fork["parent_checkpoint"]["checkpoint_id"] == fork_point["checkpoint_id"]
    assert (await sdk.threads.get_state(thread_id))["checkpoint_id"] == new[0]["checkpoint_id"]
    # the original branch stays intact and reachable
    for past in original:
        again = await sdk.threads.get_state(thread_id, checkpoint_id=past["checkpoint_id"])
        assert again["values"] == past["values"] and again["next"] == past["next"]


@pytest.mark.anyio
async def test_replay_interrupted_checkpoint(sdk: LangGraphClient, backend: Backend) -> None:
    """Replay an old pause after the thread moved on, as LangGraph replays it."""
    thread_id = str((await sdk.threads.create())["thread_id"])
    await sdk.runs.wait(thread_id, "hitl", input={"steps": []})
    paused = await sdk.threads.get_state(thread_id)
    await sdk.runs.wait(thread_id, "hitl", command={"resume": "first"})
    branch = await sdk.runs.wait(
        thread_id, "hitl", command={"resume": "second"}, checkpoint_id=paused["checkpoint_id"]
    )
    # The checkpoint kept the answer it got; LangGraph re-applies it on replay, in-process too.
    local = local_graph("hitl")
    config: Any = {"configurable": {"thread_id": "local"}}
    local.invoke({"steps": []}, config)
    local_paused = local.get_state(config).config
    local.invoke(Command(resume="first"), config)
    assert branch == local.invoke(Command(resume="second"), local_paused)
    assert branch == {"steps": ["prepare", "review", "finish"], "answer": "first"}
    # `prepare` is before the checkpoint: never re-run; the branch re-ran the rest
    assert backend.runs(thread_id) == {"prepare": 1, "review": 3, "finish": 2}
    # the branch descends from the paused checkpoint, not from the first answer's end
    history = await sdk.threads.get_history(thread_id, limit=100)
    parents = {h["checkpoint_id"]: h["parent_checkpoint_id"] for h in history}
    lineage, at = [], history[0]["checkpoint_id"]
    while at is not None:
        lineage.append(at)
        at = parents[at]
    assert paused["checkpoint_id"] in lineage
    assert len(history) > len(lineage)  # the first answer's checkpoints are still there
    # a different answer on a branch: edit the paused checkpoint as the node
    await sdk.threads.update_state(
        thread_id, {"answer": "edited"}, as_node="review", checkpoint_id=paused["checkpoint_id"]
    )
    assert await sdk.runs.wait(thread_id, "hitl", input=None) == {
        "steps": ["prepare", "finish"],
        "answer": "edited",
    }


@pytest.mark.anyio
async def test_update_state_at_past_checkpoint_forks(
    sdk: LangGraphClient, backend: Backend
) -> None:
    thread_id = await slow_thread(sdk)
    original = await sdk.threads.get_history(thread_id, limit=100)
    fork_point = at_next(original, "s3")
    result = await sdk.threads.update_state(
        thread_id,
        {"steps": ["edited"]},
        as_node="s2",
        checkpoint_id=fork_point["checkpoint_id"],
    )
    forked = await sdk.threads.get_state(thread_id)
    assert forked["checkpoint"] == result["checkpoint"]
    assert forked["parent_checkpoint"]["checkpoint_id"] == fork_point["checkpoint_id"]
    assert forked["values"] == {"steps": ["s1", "s2", "edited"]}
    assert forked["next"] == ["s3"] and forked["metadata"]["source"] == "update"
    thread = await sdk.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert thread["values"] == {"steps": ["s1", "s2", "edited"]}
    done = await sdk.runs.wait(thread_id, "slow", input=None)
    assert done == {"steps": ["s1", "s2", "edited", "s3"]}
    assert backend.runs(thread_id) == {"s1": 1, "s2": 1, "s3": 2}
    # the same edit at a checkpoint object form; the first branch is untouched
    fork_point_2 = at_next(original, "s2")
    await sdk.threads.update_state(
        thread_id, {"steps": ["other"]}, as_node="s1", checkpoint=fork_point_2["checkpoint"]
    )
    assert (await sdk.threads.get_state(thread_id))["values"] == {"steps": ["s1", "other"]}
    for past in original:
        again = await sdk.threads.get_state(thread_id, checkpoint_id=past["checkpoint_id"])
        assert again["values"] == past["values"]


@pytest.mark.anyio
async def test_unknown_checkpoint_is_404(sdk: LangGraphClient, backend: Backend) -> None:
    thread_id = await slow_thread(sdk)
    before = ids(await sdk.threads.get_history(thread_id, limit=100))
    missing = str(uuid.uuid4())
    with httpx.Client(base_url=backend.url) as http:
        calls = [
            ("post", f"/threads/{thread_id}/state", {"values": {}, "checkpoint_id": missing}),
            (
                "post",
                f"/threads/{thread_id}/state/checkpoint",
                {"checkpoint": {"checkpoint_id": missing}},
            ),
            (
                "post",
                f"/threads/{thread_id}/runs",
                {"assistant_id": "slow", "checkpoint_id": missing},
            ),
            (
                "post",
                f"/threads/{thread_id}/runs/wait",
                {"assistant_id": "slow", "checkpoint": {"checkpoint_id": missing}},
            ),
        ]
        for method, path, body in calls:
            response = http.request(method, path, json=body)
            assert response.status_code == 404, (path, response.text)
            assert missing in response.json()["detail"]
    assert ids(await sdk.threads.get_history(thread_id, limit=100)) == before
    assert len(await sdk.runs.list(thread_id)) == 1


def test_remote_graph_time_travel(backend: Backend) -> None:
    graph = RemoteGraph("slow", url=backend.url)
    config: Any = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"steps": []}, config)
    history = list(graph.get_state_history(config))
    assert [s.next for s in history] == [(), ("s3",), ("s2",), ("s1",), ("__start__",)]
    assert all(s.config["configurable"]["checkpoint_ns"] == "" for s in history)
    older = list(graph.get_state_history(config, before=history[1].config, limit=2))
    assert [s.config for s in older] == [s.config for s in history[2:4]]
    past = graph.get_state(history[2].config)
    assert past.values == {"steps": ["s1"]} and past.next == ("s2",)
    assert list(graph.get_state_history(config, filter={"step": 1})) == [history[2]]
    forked = graph.update_state(history[2].config, {"steps": ["remote"]}, as_node="s2")
    assert (
        forked["configurable"]["checkpoint_id"]
        != history[2].config["configurable"]["checkpoint_id"]
    )
    assert graph.get_state(config).values == {"steps": ["s1", "remote"]}
    assert graph.invoke(None, config) == {"steps": ["s1", "remote", "s3"]}


# -- copies, deletion, rollback ----------------------------------------------------------


@pytest.mark.anyio
async def test_copy_carries_full_history(sdk: LangGraphClient, backend: Backend) -> None:
    thread_id = str((await sdk.threads.create(metadata={"owner": "me"}))["thread_id"])
    await sdk.runs.wait(thread_id, "hitl_parallel", input={"items": []})
    source = await sdk.threads.get(thread_id)
    copy = await sdk.threads.copy(thread_id)
    copy_id = copy["thread_id"]
    assert copy_id != thread_id
    assert copy["metadata"]["owner"] == "me" and copy["metadata"]["graph_id"] == "hitl_parallel"
    assert copy["status"] == "interrupted" and copy["values"] == source["values"]

    def same(states: list[dict[str, Any]]) -> list[Any]:
        return [(s["values"], s["next"], s["checkpoint_id"], s["metadata"]) for s in states]

    original = await sdk.threads.get_history(thread_id, limit=100)
    copied = await sdk.threads.get_history(copy_id, limit=100)
    assert same(copied) == same(original)
    assert all(h["checkpoint"]["thread_id"] == copy_id for h in copied)
    ns = {t["name"]: t for t in original[0]["tasks"]}["b"]["checkpoint"]["checkpoint_ns"]
    child = {"checkpoint_ns": ns}
    assert same(await sdk.threads.get_history(copy_id, checkpoint=child)) == same(
        await sdk.threads.get_history(thread_id, checkpoint=child)
    )
    copied_state = await sdk.threads.get_state(copy_id, subgraphs=True)
    ids_ = {i["value"]: i["id"] for i in copied_state["interrupts"]}
    assert ids_ == {i["value"]: i["id"] for i in original[0]["interrupts"]}

    # the copy resumes on its own; the original stays paused
    done = await sdk.runs.wait(
        copy_id, "hitl_parallel", command={"resume": {ids_["a?"]: "A", ids_["b?"]: "B"}}
    )
    assert sorted(done["items"]) == ["a=A", "b=B", "b_prep", "c", "merge"]
    assert backend.runs(copy_id) == {"a": 1, "b_ask": 1, "merge": 1}
    assert (await sdk.threads.get(thread_id))["status"] == "interrupted"
    assert same(await sdk.threads.get_history(thread_id, limit=100)) == same(original)


@pytest.mark.anyio
async def test_run_delete_removes_only_its_checkpoints(sdk: LangGraphClient) -> None:
    thread_id = await slow_thread(sdk)
    first = await sdk.threads.get_history(thread_id, limit=100)
    second = await sdk.runs.create(thread_id, "slow", input={"steps": ["again"]})
    await sdk.runs.join(thread_id, second["run_id"])
    both = await sdk.threads.get_history(thread_id, limit=100)
    assert len(both) == 2 * len(first)
    await sdk.runs.delete(thread_id, second["run_id"])
    assert ids(await sdk.threads.get_history(thread_id, limit=100)) == ids(first)
    state = await sdk.threads.get_state(thread_id)
    assert state["values"] == {"steps": ["s1", "s2", "s3"]}
    assert state["checkpoint_id"] == first[0]["checkpoint_id"]
    thread = await sdk.threads.get(thread_id)
    assert thread["values"] == state["values"] and thread["status"] == "idle"
    [remaining] = await sdk.runs.list(thread_id)
    assert remaining["run_id"] == first[0]["metadata"]["run_id"]
    # deleting the last run leaves a thread with no checkpoint and no values
    await sdk.runs.delete(thread_id, remaining["run_id"])
    assert await sdk.threads.get_history(thread_id, limit=100) == []
    thread = await sdk.threads.get(thread_id)
    assert thread["values"] is None and thread["status"] == "idle"
    assert (await sdk.threads.get_state(thread_id))["checkpoint"] is None


@pytest.mark.anyio
async def test_rollback_removes_only_the_cancelled_runs_checkpoints(
    sdk: LangGraphClient, backend: Backend
) -> None:
    thread_id = await slow_thread(sdk)
    first = await sdk.threads.get_history(thread_id, limit=100)
    doomed = await sdk.runs.create(
        thread_id, "slow", input={"steps": ["doomed"]}, config={"configurable": {"sleep": 0.5}}
    )
    # let it write a checkpoint or two before it is rolled back
    while backend.runs(thread_id)["s2"] < 2:
        await asyncio.sleep(0.05)
    last = await sdk.runs.create(
        thread_id, "slow", input={"steps": ["last"]}, multitask_strategy="rollback"
    )
    await sdk.runs.join(thread_id, last["run_id"])
    assert [r["run_id"] for r in await sdk.runs.list(thread_id)] == [
        last["run_id"],
        first[0]["metadata"]["run_id"],
    ]
    history = await sdk.threads.get_history(thread_id, limit=100)
    run_ids = {h["metadata"]["run_id"] for h in history}
    assert doomed["run_id"] not in run_ids
    assert ids(history)[len(history) - len(first) :] == ids(first)
    state = await sdk.threads.get_state(thread_id)
    assert state["values"]["steps"][-4:] == ["last", "s1", "s2", "s3"]
    assert "doomed" not in state["values"]["steps"]
    assert (await sdk.threads.get(thread_id))["values"] == state["values"]
