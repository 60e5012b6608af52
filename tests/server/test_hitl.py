"""Human-in-the-loop: interrupts, resumes, breakpoints and state edits, end to end.

The graphs log every node execution to a counter file (``BERTH_TEST_COUNTER_FILE``),
so each test proves which nodes ran and how often: a resume re-runs only the node that
paused, never the ones that finished before it.
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import sys
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import langgraph_sdk
import psycopg
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command, Interrupt
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import BadRequestError, ConflictError
from psycopg import sql

from tests.berth_server import GRAPHS_CONFIG, BerthServer

GRAPHS = GRAPHS_CONFIG.parent
APPROVE_SCHEMA = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}},
    "required": ["approved"],
}
QUESTION = {"question": "approve?"}


class Counted:
    """A server whose graphs log node executions, and a reader for that log."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def runs(self, thread_id: str) -> collections.Counter[str]:
        """How many times each node ran on `thread_id`."""
        if not self.log.exists():
            return collections.Counter()
        lines = (line.split(" ", 1) for line in self.log.read_text().splitlines())
        return collections.Counter(node for node, tid in lines if tid == thread_id)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def counted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Counted]:
    """A server on SQLite, then on PostgreSQL (under ``scripts/test``)."""
    root = tmp_path_factory.mktemp(f"hitl-{request.param}")
    log = root / "executions.log"
    env = {"BERTH_TEST_COUNTER_FILE": str(log)}
    if request.param == "postgres":
        admin = request.getfixturevalue("pg_uri")
        database = f"berth_hitl_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        env["DATABASE_URI"] = urlsplit(admin)._replace(path=f"/{database}").geturl()
    server = BerthServer(root / "data", env=env).start()
    yield Counted(server.url, log)
    server.stop()
    if request.param == "postgres":
        with psycopg.connect(admin, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(database)))


@pytest.fixture
async def sdk(counted: Counted) -> Any:
    client = langgraph_sdk.get_client(url=counted.url)
    yield client
    await client.aclose()


async def paused_thread(sdk: LangGraphClient, graph: str = "hitl", **input: Any) -> str:
    thread = await sdk.threads.create()
    body = await sdk.runs.wait(thread["thread_id"], graph, input=input or {"steps": []})
    assert "__interrupt__" in body
    return str(thread["thread_id"])


async def refused(call: Awaitable[Any], status: int = 400) -> str:
    """The `detail` of the error response `call` must get (the SDK raises on 4xx)."""
    with pytest.raises(httpx.HTTPStatusError) as info:
        await call
    assert info.value.response.status_code == status
    return str(info.value.response.json()["detail"])


def pending(state: dict[str, Any]) -> dict[str, str]:
    """The pending interrupts of a ThreadState, value → id (for string values)."""
    return {i["value"]: i["id"] for i in state["interrupts"]}


class Local:
    """The same graph run in-process on an in-memory checkpointer: what LangGraph does."""

    def __init__(self, name: str, log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        spec = importlib.util.spec_from_file_location(f"local_{name}", GRAPHS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # LangGraph resolves the state's annotations through sys.modules.
        monkeypatch.setitem(sys.modules, spec.name, module)
        spec.loader.exec_module(module)
        self.graph = module.graph.builder.compile(checkpointer=InMemorySaver())
        self.config: Any = {"configurable": {"thread_id": "local"}}
        self.log = log
        monkeypatch.setenv("BERTH_TEST_COUNTER_FILE", str(log))

    def invoke(self, input: Any, **kwargs: Any) -> Any:
        return plain(self.graph.invoke(input, self.config, **kwargs))

    def state(self) -> tuple[Any, list[str], list[Any]]:
        snapshot = self.graph.get_state(self.config)
        return snapshot.values, list(snapshot.next), [i.value for i in snapshot.interrupts]

    def runs(self) -> collections.Counter[str]:
        return Counted("", self.log).runs("local")


def plain(output: Any) -> Any:
    """A run's result without interrupt ids (they differ between two executions)."""
    if isinstance(output, dict) and "__interrupt__" in output:
        values = [i["value"] if isinstance(i, dict) else i.value for i in output["__interrupt__"]]
        return {**output, "__interrupt__": values}
    return output


async def remote_state(sdk: LangGraphClient, thread_id: str) -> tuple[Any, list[str], list[Any]]:
    state = await sdk.threads.get_state(thread_id)
    return state["values"], state["next"], [i["value"] for i in state["interrupts"]]


# -- pausing -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_interrupt_pauses_run_and_thread(sdk: LangGraphClient, counted: Counted) -> None:
    thread_id = str((await sdk.threads.create())["thread_id"])
    parts = [
        p
        async for p in sdk.runs.stream(
            thread_id, "hitl", input={"steps": []}, stream_mode=["values", "updates"]
        )
    ]
    assert parts[0].event == "metadata"
    interrupt = {"value": QUESTION, "id": parts[-1].data["__interrupt__"][0]["id"]}
    interrupt["response_schema"] = APPROVE_SCHEMA
    assert [(p.event, p.data) for p in parts[1:]] == [
        ("values", {"steps": []}),
        ("updates", {"prepare": {"steps": ["prepare"]}}),
        ("values", {"steps": ["prepare"]}),
        ("updates", {"__interrupt__": [interrupt]}),
        ("values", {"steps": ["prepare"], "__interrupt__": [interrupt]}),
    ]
    [run] = await sdk.runs.list(thread_id)
    assert run["status"] == "success"  # a pause is not a cancel
    thread = await sdk.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert thread["values"] == {"steps": ["prepare"]}

    state = await sdk.threads.get_state(thread_id)
    assert state["next"] == ["review"]
    assert state["interrupts"] == [interrupt]
    [task] = state["tasks"]
    assert task["name"] == "review" and task["interrupts"] == [interrupt]
    assert thread["interrupts"] == {task["id"]: [interrupt]}
    # joining the finished run falls back to the thread: its interrupts (contract §6.5)
    assert await sdk.runs.join(thread_id, run["run_id"]) == {"__interrupt__": [interrupt]}
    assert counted.runs(thread_id) == {"prepare": 1, "review": 1}
    # /wait answers with the paused values and the interrupt; one without a schema has none
    body = await sdk.runs.wait(None, "hitl", input={"steps": []}, on_completion="keep")
    assert body["steps"] == ["prepare"] and body["__interrupt__"][0]["value"] == QUESTION
    assert set(body["__interrupt__"][0]) == {"id", "value", "response_schema"}
    other = await sdk.runs.wait(None, "interrupting", input={}, on_completion="keep")
    assert set(other["__interrupt__"][0]) == {"id", "value"}


# -- resuming ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("by_id", [False, True], ids=["value", "id-map"])
async def test_resume_continues_from_the_paused_node(
    sdk: LangGraphClient, counted: Counted, by_id: bool
) -> None:
    thread_id = await paused_thread(sdk)
    answer = {"approved": True}
    state = await sdk.threads.get_state(thread_id)
    resume = {state["interrupts"][0]["id"]: answer} if by_id else answer
    done = await sdk.runs.wait(thread_id, "hitl", command={"resume": resume})
    assert done == {"steps": ["prepare", "review", "finish"], "answer": answer}
    # `prepare` finished before the pause: it never runs again
    assert counted.runs(thread_id) == {"prepare": 1, "review": 2, "finish": 1}
    thread = await sdk.threads.get(thread_id)
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    state = await sdk.threads.get_state(thread_id)
    assert state["next"] == [] and state["interrupts"] == [] and state["tasks"] == []
    runs = await sdk.runs.list(thread_id)
    assert [r["status"] for r in runs] == ["success", "success"]
    assert runs[0]["kwargs"]["command"] == {"resume": resume}


@pytest.mark.anyio
async def test_resume_with_update_streams(sdk: LangGraphClient, counted: Counted) -> None:
    thread_id = await paused_thread(sdk)
    command = {"resume": "ok", "update": {"steps": ["human"]}}
    stream = sdk.runs.stream(thread_id, "hitl", command=command, stream_mode="updates")
    assert [(p.event, p.data) async for p in stream][1:] == [
        ("updates", {"review": {"steps": ["review"], "answer": "ok"}}),
        ("updates", {"finish": {"steps": ["finish"]}}),
    ]
    state = await sdk.threads.get_state(thread_id)
    assert state["values"] == {"steps": ["prepare", "human", "review", "finish"], "answer": "ok"}
    assert counted.runs(thread_id) == {"prepare": 1, "review": 2, "finish": 1}


@pytest.mark.anyio
async def test_goto_and_update_match_langgraph(
    sdk: LangGraphClient, counted: Counted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`goto`/`update` from a breakpoint, then a resume: as LangGraph does it in-process.

    `goto` schedules `finish` next to the pending `review`, which pauses again, so the
    step's writes wait for the resume; `finish` then runs once more after `review`.
    """
    local = Local("hitl", tmp_path / "local.log", monkeypatch)
    thread_id = (await sdk.threads.create())["thread_id"]
    steps: list[tuple[Any, dict[str, Any]]] = [
        ({"steps": []}, {"interrupt_after": ["prepare"]}),
        (Command(goto="finish", update={"answer": "skipped"}), {}),
        (Command(resume="late"), {}),
    ]
    for graph_input, options in steps:
        expected = local.invoke(graph_input, **options)
        if isinstance(graph_input, Command):
            command = {"goto": graph_input.goto, "update": graph_input.update}
            command["resume"] = graph_input.resume
            body = await sdk.runs.wait(thread_id, "hitl", command=command, **options)
        else:
            body = await sdk.runs.wait(thread_id, "hitl", input=graph_input, **options)
        assert plain(body) == expected
        assert await remote_state(sdk, thread_id) == local.state()
    assert local.state()[0] == {
        "steps": ["prepare", "finish", "review", "finish"],
        "answer": "late",
    }
    assert counted.runs(thread_id) == local.runs() == {"prepare": 1, "review": 2, "finish": 2}


@pytest.mark.anyio
async def test_resume_map_with_goto_matches_langgraph(
    sdk: LangGraphClient, counted: Counted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = Local("hitl", tmp_path / "local.log", monkeypatch)
    thread_id = await paused_thread(sdk)
    paused = local.graph.invoke({"steps": []}, local.config)
    [local_id] = [i.id for i in paused["__interrupt__"]]
    [remote_id] = [i["id"] for i in (await sdk.threads.get_state(thread_id))["interrupts"]]
    expected = local.invoke(Command(resume={local_id: "yes"}, goto=["finish"]))
    body = await sdk.runs.wait(
        thread_id, "hitl", command={"resume": {remote_id: "yes"}, "goto": ["finish"]}
    )
    assert body == expected
    assert body["answer"] == "yes"
    assert await remote_state(sdk, thread_id) == local.state()
    assert counted.runs(thread_id) == local.runs()
    assert local.runs()["prepare"] == 1


# -- several pending interrupts ------------------------------------------------------


@pytest.mark.anyio
async def test_parallel_and_subgraph_interrupts(sdk: LangGraphClient, counted: Counted) -> None:
    thread_id = str((await sdk.threads.create())["thread_id"])
    parts = [p async for p in sdk.runs.stream(thread_id, "hitl_parallel", input={"items": []})]
    # LangGraph streams each interrupt in its own `values` chunk; the run's last `values`
    # event holds the final values and all of them, like `invoke` (and /wait) returns
    assert parts[-1].event == "values" and parts[-1].data["items"] == ["c"]
    assert sorted(i["value"] for i in parts[-1].data["__interrupt__"]) == ["a?", "b?"]
    thread = await sdk.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert thread["values"] == {"items": ["c"]}
    state = await sdk.threads.get_state(thread_id, subgraphs=True)
    ids = pending(state)
    assert set(ids) == {"a?", "b?"}
    assert sorted(state["next"]) == ["a", "b"]
    tasks = {t["name"]: t for t in state["tasks"]}
    assert [i["value"] for i in tasks["a"]["interrupts"]] == ["a?"]
    # the subgraph's interrupt surfaces on its parent task, and in the child's own state
    assert [i["value"] for i in tasks["b"]["interrupts"]] == ["b?"]
    child = tasks["b"]["state"]
    assert child["checkpoint"]["checkpoint_ns"].startswith("b:")
    assert child["values"] == {"items": ["b_prep"]}
    assert child["next"] == ["b_ask"]
    assert [i["id"] for i in child["interrupts"]] == [ids["b?"]]
    on_thread = [i for items in thread["interrupts"].values() for i in items]
    by_value = sorted(state["interrupts"], key=lambda i: i["value"])
    assert sorted(on_thread, key=lambda i: i["value"]) == by_value

    # one value for two interrupts is ambiguous: refused, the thread stays paused
    detail = await refused(sdk.runs.wait(thread_id, "hitl_parallel", command={"resume": "x"}))
    assert "2 pending interrupts" in detail and ids["a?"] in detail
    assert (await sdk.threads.get(thread_id))["status"] == "interrupted"

    done = await sdk.runs.wait(
        thread_id, "hitl_parallel", command={"resume": {ids["a?"]: "A", ids["b?"]: "B"}}
    )
    assert sorted(done["items"]) == ["a=A", "b=B", "b_prep", "c", "merge"]
    assert done["items"][-1] == "merge"
    assert counted.runs(thread_id) == {"a": 2, "b_prep": 1, "b_ask": 2, "c": 1, "merge": 1}
    assert (await sdk.threads.get(thread_id))["status"] == "idle"


@pytest.mark.anyio
async def test_resume_interrupts_one_at_a_time(sdk: LangGraphClient, counted: Counted) -> None:
    thread_id = await paused_thread(sdk, "hitl_parallel", items=[])
    ids = pending(await sdk.threads.get_state(thread_id))
    body = await sdk.runs.wait(thread_id, "hitl_parallel", command={"resume": {ids["b?"]: "B"}})
    assert [i["value"] for i in body["__interrupt__"]] == ["a?"]
    state = await sdk.threads.get_state(thread_id)
    assert pending(state) == {"a?": ids["a?"]}  # ids are stable across re-runs
    assert state["next"] == ["a"]
    done = await sdk.runs.wait(thread_id, "hitl_parallel", command={"resume": {ids["a?"]: "A"}})
    assert sorted(done["items"]) == ["a=A", "b=B", "b_prep", "c", "merge"]
    # `c` and the child's `b_prep` ran once; each paused node once more per resume it saw
    assert counted.runs(thread_id) == {"a": 3, "b_prep": 1, "b_ask": 2, "c": 1, "merge": 1}


@pytest.mark.anyio
async def test_nested_subgraph_resume(sdk: LangGraphClient) -> None:
    thread = await sdk.threads.create()
    thread_id = thread["thread_id"]
    parts = [
        p
        async for p in sdk.runs.stream(
            thread_id,
            "nested_interrupt",
            input={"items": []},
            stream_mode="updates",
            stream_subgraphs=True,
        )
    ]
    nested = [p for p in parts if p.event.startswith("updates|inner:")]
    assert nested[0].data == {"before": {"items": ["before"]}}
    assert nested[-1].data["__interrupt__"][0]["value"] == "inner?"
    [iid] = pending(await sdk.threads.get_state(thread_id)).values()
    done = await sdk.runs.wait(thread_id, "nested_interrupt", command={"resume": {iid: "yes"}})
    assert done == {"items": ["before", "yes"]}


# -- refusals and races --------------------------------------------------------------


@pytest.mark.anyio
async def test_resume_without_interrupt_is_400(sdk: LangGraphClient, counted: Counted) -> None:
    never_run = (await sdk.threads.create())["thread_id"]
    finished = await paused_thread(sdk)
    await sdk.runs.wait(finished, "hitl", command={"resume": "ok"})
    failed = (await sdk.threads.create())["thread_id"]
    await sdk.runs.create(failed, "failing", input={})
    await sdk.runs.join(failed, (await sdk.runs.list(failed))[0]["run_id"])
    assert (await sdk.threads.get(failed))["status"] == "error"
    for thread_id in (never_run, finished, failed):
        before = await sdk.threads.get_history(thread_id, limit=100)
        for call in (sdk.runs.wait, sdk.runs.create):
            detail = await refused(call(thread_id, "hitl", command={"resume": "x"}))
            assert f"Cannot resume thread {thread_id}: it is not interrupted" in detail
        assert await sdk.threads.get_history(thread_id, limit=100) == before
    assert counted.runs(never_run) == {}
    # a thread that would be created for the run has nothing to resume either
    missing = str(uuid.uuid4())
    await refused(sdk.runs.wait(missing, "hitl", command={"resume": "x"}, if_not_exists="create"))
    await refused(sdk.threads.get(missing), 404)


@pytest.mark.anyio
@pytest.mark.parametrize("strategy", ["reject", "enqueue"])
async def test_racing_resumes(sdk: LangGraphClient, counted: Counted, strategy: str) -> None:
    thread_id = await paused_thread(sdk)
    results = await asyncio.gather(
        *(
            sdk.runs.create(thread_id, "hitl", command={"resume": v}, multitask_strategy=strategy)
            for v in ("first", "second")
        ),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    # The later one is refused while the first is in flight (reject: 409), or refused
    # because the first already finished (400), or queued and then finds nothing to
    # answer (enqueue).
    allowed = (ConflictError, BadRequestError) if strategy == "reject" else (BadRequestError,)
    for error in (r for r in results if isinstance(r, BaseException)):
        assert isinstance(error, allowed), error
    if strategy == "reject":
        assert len(created) == 1, results
    for run in created:
        await sdk.runs.join(thread_id, run["run_id"])
    state = await sdk.threads.get_state(thread_id)
    earliest = min(created, key=lambda r: (r["created_at"], r["run_id"]))
    assert state["values"] == {
        "steps": ["prepare", "review", "finish"],
        "answer": earliest["kwargs"]["command"]["resume"],
    }
    assert counted.runs(thread_id) == {"prepare": 1, "review": 2, "finish": 1}


@pytest.mark.anyio
async def test_queued_resume_behind_a_resume_is_ignored(
    sdk: LangGraphClient, counted: Counted
) -> None:
    thread_id = await paused_thread(sdk)
    # the first resume stays in flight a moment, so the second surely queues behind it
    first = await sdk.runs.create(
        thread_id, "hitl", command={"resume": "first"}, config={"configurable": {"sleep": 1}}
    )
    assert (await sdk.threads.get(thread_id))["status"] == "busy"
    second = await sdk.runs.create(thread_id, "hitl", command={"resume": "second"})
    assert second["status"] == "pending"
    await sdk.runs.join(thread_id, first["run_id"])
    final = await sdk.runs.join(thread_id, second["run_id"])
    assert final == {"steps": ["prepare", "review", "finish"], "answer": "first"}
    runs = {r["run_id"]: r["status"] for r in await sdk.runs.list(thread_id)}
    assert runs[first["run_id"]] == runs[second["run_id"]] == "success"
    assert counted.runs(thread_id) == {"prepare": 1, "review": 2, "finish": 1}
    assert (await sdk.threads.get(thread_id))["status"] == "idle"


# -- breakpoints ---------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("where", "nodes", "stops"),
    [
        ("interrupt_before", ["s2"], [["s2"]]),
        ("interrupt_after", ["s1"], [["s2"]]),
        ("interrupt_after", ["s1", "s2"], [["s2"], ["s3"]]),
        ("interrupt_before", "*", [["s1"], ["s2"], ["s3"]]),
    ],
)
async def test_breakpoints_on_run(
    sdk: LangGraphClient, counted: Counted, where: str, nodes: Any, stops: list[list[str]]
) -> None:
    thread_id = (await sdk.threads.create())["thread_id"]
    body = await sdk.runs.wait(thread_id, "slow", input={"steps": []}, **{where: nodes})
    # a static breakpoint pauses without an interrupt value
    assert body.get("__interrupt__", []) == []
    seen = []
    for _ in stops:
        state = await sdk.threads.get_state(thread_id)
        seen.append(state["next"])
        assert state["interrupts"] == []
        assert (await sdk.threads.get(thread_id))["status"] == "interrupted"
        # continue with input=None; later stops come from the same run options
        await sdk.runs.wait(thread_id, "slow", input=None, **{where: nodes})
    assert seen == stops
    state = await sdk.threads.get_state(thread_id)
    assert state["values"] == {"steps": ["s1", "s2", "s3"]} and state["next"] == []
    assert counted.runs(thread_id) == {"s1": 1, "s2": 1, "s3": 1}
    assert (await sdk.threads.get(thread_id))["status"] == "idle"


@pytest.mark.anyio
async def test_breakpoints_from_assistant_config(sdk: LangGraphClient, counted: Counted) -> None:
    assistant = await sdk.assistants.create(
        "slow", config={"interrupt_before": ["s3"], "interrupt_after": ["s1"]}
    )
    thread_id = (await sdk.threads.create())["thread_id"]
    await sdk.runs.wait(thread_id, assistant["assistant_id"], input={"steps": []})
    assert (await sdk.threads.get_state(thread_id))["next"] == ["s2"]
    await sdk.runs.wait(thread_id, assistant["assistant_id"], input=None)
    assert (await sdk.threads.get_state(thread_id))["next"] == ["s3"]
    assert counted.runs(thread_id) == {"s1": 1, "s2": 1}
    # the run's own breakpoints replace the assistant's
    await sdk.runs.wait(thread_id, assistant["assistant_id"], input=None, interrupt_before=[])
    assert (await sdk.threads.get_state(thread_id))["next"] == []
    assert counted.runs(thread_id) == {"s1": 1, "s2": 1, "s3": 1}
    [run, *_] = await sdk.runs.list(thread_id)
    assert "interrupt_before" not in run["kwargs"]["config"]


# -- editing state -------------------------------------------------------------------


@pytest.mark.anyio
async def test_update_state_as_node_then_continue(sdk: LangGraphClient, counted: Counted) -> None:
    thread_id = await paused_thread(sdk)
    result = await sdk.threads.update_state(
        thread_id, {"steps": ["edited"], "answer": "by hand"}, as_node="review"
    )
    assert result["checkpoint"]["thread_id"] == thread_id
    assert result["checkpoint"]["checkpoint_ns"] == ""
    state = await sdk.threads.get_state(thread_id)
    assert state["checkpoint"] == result["checkpoint"]
    assert state["next"] == ["finish"] and state["interrupts"] == []
    assert state["metadata"]["source"] == "update"
    thread = await sdk.threads.get(thread_id)
    assert thread["status"] == "interrupted" and thread["interrupts"] == {}
    assert thread["values"] == {"steps": ["prepare", "edited"], "answer": "by hand"}
    done = await sdk.runs.wait(thread_id, "hitl", input=None)
    assert done == {"steps": ["prepare", "edited", "finish"], "answer": "by hand"}
    # `review` was answered by the edit: it never ran again
    assert counted.runs(thread_id) == {"prepare": 1, "review": 1, "finish": 1}


@pytest.mark.anyio
async def test_update_state_while_running_is_409(sdk: LangGraphClient) -> None:
    thread_id = (await sdk.threads.create())["thread_id"]
    run = await sdk.runs.create(
        thread_id, "slow", input={"steps": []}, config={"configurable": {"sleep": 0.5}}
    )
    with pytest.raises(ConflictError):
        await sdk.threads.update_state(thread_id, {"steps": ["x"]}, as_node="s1")
    await sdk.runs.join(thread_id, run["run_id"])
    await sdk.threads.update_state(thread_id, {"steps": ["x"]}, as_node="s3")
    assert (await sdk.threads.get_state(thread_id))["values"]["steps"][-1] == "x"


# -- RemoteGraph and the sync client -------------------------------------------------


def test_remote_graph_resume_by_id(counted: Counted) -> None:
    graph = RemoteGraph("hitl_parallel", url=counted.url)
    thread_id = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread_id}}
    paused = graph.invoke({"items": []}, config)
    assert {i["value"] for i in paused["__interrupt__"]} == {"a?", "b?"}
    state = graph.get_state(config)
    assert all(isinstance(i, Interrupt) for i in state.interrupts)
    ids = {i.value: i.id for i in state.interrupts}
    assert sorted(state.next) == ["a", "b"]
    # the step's finished task (`c`) is listed too, with its result
    assert {t.name: t.result for t in state.tasks}["c"] == {"items": ["c"]}
    done = graph.invoke(Command(resume={ids["a?"]: 1, ids["b?"]: 2}), config)
    assert sorted(done["items"]) == ["a=1", "b=2", "b_prep", "c", "merge"]
    assert counted.runs(thread_id) == {"a": 2, "b_prep": 1, "b_ask": 2, "c": 1, "merge": 1}


def test_remote_graph_breakpoint_and_update(counted: Counted) -> None:
    graph = RemoteGraph("hitl", url=counted.url)
    thread_id = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread_id}}
    graph.invoke({"steps": []}, config, interrupt_before=["review"])
    state = graph.get_state(config)
    assert state.next == ("review",) and state.interrupts == ()
    graph.update_state(config, {"answer": "remote"}, as_node="review")
    assert graph.get_state(config).next == ("finish",)
    assert graph.invoke(None, config) == {"steps": ["prepare", "finish"], "answer": "remote"}
    assert counted.runs(thread_id) == {"prepare": 1, "finish": 1}


def test_sync_client_resume(counted: Counted) -> None:
    with langgraph_sdk.get_sync_client(url=counted.url) as client:
        thread_id = client.threads.create()["thread_id"]
        body = client.runs.wait(thread_id, "hitl", input={"steps": []})
        [item] = body["__interrupt__"]
        parts = list(
            client.runs.stream(
                thread_id, "hitl", command={"resume": {item["id"]: "sync"}}, stream_mode="values"
            )
        )
        assert parts[-1].data == {"steps": ["prepare", "review", "finish"], "answer": "sync"}
        with pytest.raises(httpx.HTTPStatusError) as info:
            client.runs.create(thread_id, "hitl", command={"resume": "again"})
        assert info.value.response.status_code == 400
    assert counted.runs(thread_id) == {"prepare": 1, "review": 2, "finish": 1}
