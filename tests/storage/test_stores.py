"""Thread and assistant stores on SQLite and PostgreSQL: the same answers on both."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from berth.core import errors, ids
from berth.core.models import ThreadStatus
from berth.storage.base import Storage
from tests.storage.conftest import make_run

pytestmark = pytest.mark.anyio

GRAPHS = ["echo", "slow"]

#: metadata stored on three threads, for containment searches
DOCS: dict[str, dict[str, Any]] = {
    "a": {
        "user": "ann",
        "flags": {"beta": True, "tier": {"level": 2}},
        "note": None,
        "n": 1,
        "tags": ["x", "y"],
    },
    "b": {"user": "bob", "flags": {"beta": False, "tier": {"level": 3}}, "n": True, "tags": ["y"]},
    "c": {"user": "ann", "flags": {"beta": True}, "note": "x", "n": "1"},
}

CONTAINMENT = [
    ({"user": "ann"}, {"a", "c"}),
    ({"user": "ann", "note": "x"}, {"c"}),
    ({"flags": {"beta": True}}, {"a", "c"}),
    ({"flags": {"beta": False}}, {"b"}),
    ({"flags": {"tier": {"level": 3}}}, {"b"}),
    ({"flags": {"beta": True, "tier": {"level": 2}}}, {"a"}),
    ({"note": None}, {"a"}),
    ({"n": 1}, {"a"}),
    ({"n": True}, {"b"}),
    ({"n": "1"}, {"c"}),
    ({"tags": ["x", "y"]}, {"a"}),
    ({"tags": ["y"]}, {"a", "b"}),
    ({"user": "zed"}, set()),
    ({"missing": None}, set()),
]


# -- threads ---------------------------------------------------------------------


async def test_thread_create_get_update(storage: Storage) -> None:
    thread_id = ids.new_id()
    created = await storage.threads.create(thread_id=thread_id, metadata={"a": 1})
    assert created.status == ThreadStatus.IDLE
    assert created.values is None
    assert created.interrupts == {}
    fetched = await storage.threads.get(thread_id)
    assert fetched.metadata == {"a": 1}
    assert fetched.created_at == created.created_at
    with pytest.raises(errors.Conflict):
        await storage.threads.create(thread_id=thread_id, metadata={})
    same = await storage.threads.create(
        thread_id=thread_id, metadata={"b": 2}, if_exists="do_nothing"
    )
    assert same.metadata == {"a": 1}

    updated = await storage.threads.update(thread_id, metadata={"b": {"c": [1, 2]}})
    assert updated.metadata == {"a": 1, "b": {"c": [1, 2]}}
    assert updated.updated_at >= created.updated_at
    assert (await storage.threads.get(thread_id)).metadata == {"a": 1, "b": {"c": [1, 2]}}
    with pytest.raises(errors.NotFound):
        await storage.threads.get(ids.new_id())
    with pytest.raises(errors.NotFound):
        await storage.threads.update(ids.new_id(), metadata={})


@pytest.mark.parametrize(("query", "expected"), CONTAINMENT)
async def test_thread_search_by_metadata_containment(
    storage: Storage, query: dict[str, Any], expected: set[str]
) -> None:
    by_id = {}
    for name, metadata in DOCS.items():
        thread_id = ids.new_id()
        by_id[thread_id] = name
        await storage.threads.create(thread_id=thread_id, metadata=metadata)
    found, total = await storage.threads.search(metadata=query, limit=10)
    assert {by_id[t.thread_id] for t in found} == expected
    assert total == len(expected)
    assert await storage.threads.count(metadata=query) == len(expected)


async def test_thread_search_status_values_ids_and_pages(storage: Storage) -> None:
    made = [ids.new_id() for _ in range(5)]
    for thread_id in made:
        await storage.threads.create(thread_id=thread_id, metadata={"kind": "t"})
    busy = made[0]
    await storage.runs.create(make_run(busy), create_thread=False, thread_metadata={})
    await storage.threads.record_state(
        made[1], values={"steps": ["s1"], "ok": True}, interrupts={}, paused=False
    )

    found, total = await storage.threads.search(status="busy")
    assert [t.thread_id for t in found] == [busy] and total == 1
    assert await storage.threads.count(status="idle") == 4
    found, _ = await storage.threads.search(values={"ok": True})
    assert [t.thread_id for t in found] == [made[1]]
    found, _ = await storage.threads.search(ids=[made[2], made[3]])
    assert {t.thread_id for t in found} == {made[2], made[3]}

    # Newest first by default; pages do not overlap and the total counts all.
    page1, total = await storage.threads.search(metadata={"kind": "t"}, limit=2)
    page2, _ = await storage.threads.search(metadata={"kind": "t"}, limit=2, offset=2)
    assert total == 5
    assert [t.thread_id for t in page1 + page2] == list(reversed(made))[:4]
    ascending, _ = await storage.threads.search(sort_by="created_at", sort_order="asc", limit=10)
    assert [t.thread_id for t in ascending] == made


async def test_thread_copy_keeps_metadata_values_and_checkpoints(storage: Storage) -> None:
    source = ids.new_id()
    await storage.threads.create(thread_id=source, metadata={"owner": "ann"})
    await storage.threads.record_state(source, values={"n": 1}, interrupts={}, paused=False)
    checkpoint = empty_checkpoint()
    await storage.checkpointer.aput(
        {"configurable": {"thread_id": source, "checkpoint_ns": ""}},
        checkpoint,
        {"source": "input", "step": -1},
        {},
    )
    target = ids.new_id()
    copy = await storage.threads.copy(source, target)
    assert copy.thread_id == target
    assert copy.metadata == {"owner": "ann"}
    assert copy.values == {"n": 1}
    assert copy.status == ThreadStatus.IDLE
    stored = await storage.threads.get(target)
    assert stored.metadata == {"owner": "ann"}
    copied = await storage.checkpointer.aget_tuple({"configurable": {"thread_id": target}})
    assert copied is not None and copied.checkpoint["id"] == checkpoint["id"]
    with pytest.raises(errors.NotFound):
        await storage.threads.copy(ids.new_id(), ids.new_id())


async def test_thread_delete_takes_runs_and_checkpoints(storage: Storage) -> None:
    thread_id = ids.new_id()
    await storage.threads.create(thread_id=thread_id, metadata={})
    run = (
        await storage.runs.create(make_run(thread_id), create_thread=False, thread_metadata={})
    ).run
    await storage.checkpointer.aput(
        {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}},
        empty_checkpoint(),
        {"source": "input", "step": -1},
        {},
    )
    assert await storage.threads.delete(thread_id) == [run.run_id]
    with pytest.raises(errors.NotFound):
        await storage.threads.get(thread_id)
    with pytest.raises(errors.NotFound):
        await storage.runs.get(run.run_id)
    assert await storage.checkpointer.aget_tuple({"configurable": {"thread_id": thread_id}}) is None
    with pytest.raises(errors.NotFound):
        await storage.threads.delete(thread_id)


# -- assistants ------------------------------------------------------------------


async def new_assistant(storage: Storage, metadata: dict[str, Any], **kwargs: Any) -> str:
    assistant_id = ids.new_id()
    fields: dict[str, Any] = {
        "graph_id": "echo",
        "name": "Untitled",
        "description": None,
        "config": {},
        "context": {},
        "if_exists": "raise",
    }
    fields.update(kwargs)
    await storage.assistants.create(assistant_id=assistant_id, metadata=metadata, **fields)
    return assistant_id


async def test_assistant_create_get_update_versions(storage: Storage) -> None:
    assistant_id = await new_assistant(
        storage, {"team": "a"}, name="Helper", config={"configurable": {"x": 1}}
    )
    got = await storage.assistants.get(assistant_id)
    assert (got.graph_id, got.name, got.version) == ("echo", "Helper", 1)
    assert got.config == {"configurable": {"x": 1}}
    duplicate: dict[str, Any] = {
        "assistant_id": assistant_id,
        "graph_id": "echo",
        "name": "Other",
        "description": None,
        "config": {},
        "context": {},
        "metadata": {},
    }
    with pytest.raises(errors.Conflict):
        await storage.assistants.create(**duplicate, if_exists="raise")
    kept = await storage.assistants.create(**duplicate, if_exists="do_nothing")
    assert kept.name == "Helper"
    updated = await storage.assistants.update(
        assistant_id, {"name": "Renamed", "metadata": {"stage": "prod"}}
    )
    assert updated.version == 2
    assert updated.name == "Renamed"
    assert updated.metadata == {"team": "a", "stage": "prod"}
    versions = await storage.assistants.versions(assistant_id)
    assert [v["version"] for v in versions] == [2, 1]
    assert [v["name"] for v in versions] == ["Renamed", "Helper"]
    restored = await storage.assistants.set_latest(assistant_id, 1)
    assert restored.name == "Helper" and restored.version == 1
    assert (await storage.assistants.get(assistant_id)).name == "Helper"
    with pytest.raises(errors.NotFound):
        await storage.assistants.set_latest(assistant_id, 9)
    await storage.assistants.delete(assistant_id)
    with pytest.raises(errors.NotFound):
        await storage.assistants.get(assistant_id)


@pytest.mark.parametrize(("query", "expected"), CONTAINMENT)
async def test_assistant_search_by_metadata_containment(
    storage: Storage, query: dict[str, Any], expected: set[str]
) -> None:
    by_id = {}
    for name, metadata in DOCS.items():
        by_id[await new_assistant(storage, metadata)] = name
    found, total = await storage.assistants.search(graph_ids=GRAPHS, metadata=query)
    assert {by_id[a.assistant_id] for a in found} == expected
    assert total == len(expected)
    assert await storage.assistants.count(graph_ids=GRAPHS, metadata=query) == len(expected)


async def test_assistant_search_graph_name_and_registry(storage: Storage) -> None:
    echo = await new_assistant(storage, {}, name="My Echo Bot")
    slow = await new_assistant(storage, {}, graph_id="slow", name="Slowpoke")
    await new_assistant(storage, {}, graph_id="gone", name="Unregistered")
    found, total = await storage.assistants.search(graph_ids=GRAPHS)
    assert {a.assistant_id for a in found} == {echo, slow} and total == 2
    found, _ = await storage.assistants.search(graph_ids=GRAPHS, graph_id="slow")
    assert [a.assistant_id for a in found] == [slow]
    found, _ = await storage.assistants.search(graph_ids=GRAPHS, name="echo")
    assert [a.assistant_id for a in found] == [echo]
    found, _ = await storage.assistants.search(graph_ids=GRAPHS, name="%")
    assert found == []
    assert await storage.assistants.count(graph_ids=GRAPHS, name="o") == 2
    found, _ = await storage.assistants.search(graph_ids=GRAPHS, limit=1, offset=1)
    assert [a.assistant_id for a in found] == [echo]


async def test_default_assistant_is_created_once(storage: Storage) -> None:
    default_id = ids.default_assistant_id("echo")
    for _ in range(2):
        await storage.assistants.ensure_default(
            assistant_id=default_id, graph_id="echo", name="echo"
        )
    got = await storage.assistants.get(default_id)
    assert got.metadata == {"created_by": "system"}
    assert got.version == 1
    assert await storage.assistants.count(graph_ids=["echo"]) == 1
