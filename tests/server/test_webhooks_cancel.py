"""Webhooks of runs cancelled before they started (contract §7).

A pending run that is cancelled, or displaced by an `interrupt`/`rollback` double-text,
still ends, so it still POSTs its final run: `interrupted`, or `rollback` when it was
deleted. It never started, so `run_started_at` is null.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import langgraph_sdk
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from berth.webhooks import signing
from tests.berth_server import BerthServer
from tests.server.test_webhooks import (
    FAST_RETRIES,
    SECRET,
    WEBHOOKS_CONFIG,
    Receiver,
    deliveries,
    wait_settled,
)

pytestmark = pytest.mark.anyio

FOREVER = {"configurable": {"sleep": 30}}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def hook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """Loopback receivers allowed, signed deliveries (the webhooks test project)."""
    berth = BerthServer(
        tmp_path_factory.mktemp("webhooks-cancel") / "data",
        config=WEBHOOKS_CONFIG,
        env=FAST_RETRIES,
    )
    berth.start()
    yield berth
    berth.stop()


@pytest.fixture
async def sdk(hook_server: BerthServer) -> AsyncIterator[LangGraphClient]:
    client = langgraph_sdk.get_client(url=hook_server.url)
    yield client
    await client.aclose()


async def running_blocker(sdk: LangGraphClient, thread_id: str) -> dict[str, Any]:
    run = await sdk.runs.create(thread_id, "slow", input={"steps": []}, config=FOREVER)
    deadline = time.monotonic() + 20
    while (await sdk.runs.get(thread_id, run["run_id"]))["status"] != "running":
        assert time.monotonic() < deadline, "the blocker never started"
        await asyncio.sleep(0.02)
    return dict(run)


def payload_of(receiver: Receiver, path: str) -> dict[str, Any]:
    (request,) = receiver.received(path)
    assert signing.verify(SECRET, request["headers"], request["body"])
    return json.loads(request["body"])  # type: ignore[no-any-return]


@pytest.mark.parametrize("action", ["interrupt", "rollback"])
async def test_cancelled_pending_run_sends_its_end(
    hook_server: BerthServer, receiver: Receiver, sdk: LangGraphClient, action: str
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    blocker = await running_blocker(sdk, tid)
    path = receiver.new_path()
    queued = await sdk.runs.create(
        tid,
        "slow",
        input={"steps": []},
        metadata={"tag": "queued"},
        webhook=receiver.url(path),
    )
    assert (await sdk.runs.get(tid, queued["run_id"]))["status"] == "pending"
    await sdk.runs.cancel(tid, queued["run_id"], action=action)  # type: ignore[arg-type]

    delivery = wait_settled(hook_server, queued["run_id"])
    assert delivery["status"] == "delivered"
    expected = "interrupted" if action == "interrupt" else "rollback"
    assert delivery["run_status"] == expected
    payload = payload_of(receiver, path)
    assert payload["run_id"] == queued["run_id"]
    assert payload["thread_id"] == tid
    assert payload["status"] == expected
    assert payload["metadata"] == {"tag": "queued"}
    assert payload["kwargs"]["webhook"] == receiver.url(path)
    assert payload["error"] is None
    assert payload["run_started_at"] is None  # it never started
    assert payload["run_ended_at"] is not None
    if action == "rollback":
        with pytest.raises(NotFoundError):
            await sdk.runs.get(tid, queued["run_id"])
    await sdk.runs.cancel(tid, blocker["run_id"], wait=True)


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_double_texting_sends_the_displaced_pending_runs_end(
    hook_server: BerthServer, receiver: Receiver, sdk: LangGraphClient, strategy: str
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    blocker_path = receiver.new_path()
    blocker = await sdk.runs.create(
        tid, "slow", input={"steps": []}, config=FOREVER, webhook=receiver.url(blocker_path)
    )
    deadline = time.monotonic() + 20
    while (await sdk.runs.get(tid, blocker["run_id"]))["status"] != "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    path = receiver.new_path()
    queued = await sdk.runs.create(
        tid, "slow", input={"steps": []}, config=FOREVER, webhook=receiver.url(path)
    )
    # The new run displaces both: the pending one is settled at admission.
    newest = await sdk.runs.create(
        tid,
        "slow",
        input={"steps": []},
        multitask_strategy=strategy,
    )
    expected = "interrupted" if strategy == "interrupt" else "rollback"
    for run, hook in ((queued, path), (blocker, blocker_path)):
        delivery = wait_settled(hook_server, run["run_id"])
        assert delivery["status"] == "delivered"
        assert delivery["run_status"] == expected
        payload = payload_of(receiver, hook)
        assert payload["run_id"] == run["run_id"]
        assert payload["status"] == expected
    assert payload_of(receiver, path)["run_started_at"] is None
    assert payload_of(receiver, blocker_path)["run_started_at"] is not None
    await sdk.runs.join(tid, newest["run_id"])
    assert (await sdk.runs.get(tid, newest["run_id"]))["status"] == "success"


async def test_bulk_cancel_sends_one_webhook_per_run(
    hook_server: BerthServer, receiver: Receiver, sdk: LangGraphClient
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    delayed = []
    for _ in range(3):
        path = receiver.new_path()
        run = await sdk.runs.create(
            tid, "echo", input={"messages": []}, after_seconds=60, webhook=receiver.url(path)
        )
        delayed.append((run, path))
    no_hook = await sdk.runs.create(tid, "echo", input={"messages": []}, after_seconds=60)
    await sdk.runs.cancel_many(
        thread_id=tid, run_ids=[r["run_id"] for r, _ in delayed] + [no_hook["run_id"]]
    )
    for run, path in delayed:
        delivery = wait_settled(hook_server, run["run_id"])
        assert delivery["run_status"] == "interrupted"
        assert payload_of(receiver, path)["status"] == "interrupted"
    assert deliveries(hook_server, no_hook["run_id"]) == []
    assert (await sdk.threads.get(tid))["status"] == "idle"


async def test_cancelled_pending_stateless_run_sends_null_values(
    hook_server: BerthServer, receiver: Receiver, sdk: LangGraphClient
) -> None:
    path = receiver.new_path()
    run = await sdk.runs.create(
        None, "echo", input={"messages": []}, after_seconds=60, webhook=receiver.url(path)
    )
    await sdk.runs.cancel(run["thread_id"], run["run_id"])
    assert wait_settled(hook_server, run["run_id"])["status"] == "delivered"
    payload = payload_of(receiver, path)
    assert payload["status"] == "interrupted"
    assert payload["values"] is None
    # Its temporary thread went with it.
    with pytest.raises(NotFoundError):
        await sdk.threads.get(run["thread_id"])
