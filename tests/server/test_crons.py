"""Crons over a real server: CRUD, validation, and the scheduler firing runs.

Schedules fire within seconds through the sixth cron field, which is **seconds**
(croniter's convention: `* * * * * *` is every second, `* * * * * 5,6` seconds 5
and 6 of each minute). Servers run with `BERTH_CRON_INTERVAL` well below a second.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import langgraph_sdk
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import BadRequestError, NotFoundError, UnprocessableEntityError

from berth.core.crons import Cron
from berth.storage.base import Storage
from tests.berth_server import BerthServer
from tests.conftest import StartServer

pytestmark = pytest.mark.anyio

T = TypeVar("T")
EVERY_SECOND = "* * * * * *"
NEVER_SOON = "0 0 1 1 *"
HI = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def counter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cron-counter") / "executions.log"


@pytest.fixture(scope="module")
def cron_server(tmp_path_factory: pytest.TempPathFactory, counter: Path) -> Iterator[BerthServer]:
    env = {"BERTH_CRON_INTERVAL": "0.1", "BERTH_TEST_COUNTER_FILE": str(counter)}
    berth = BerthServer(tmp_path_factory.mktemp("cron-server") / "data", env=env)
    berth.start()
    yield berth
    berth.stop()


@pytest.fixture
async def sdk(cron_server: BerthServer) -> AsyncIterator[LangGraphClient]:
    client = langgraph_sdk.get_client(url=cron_server.url)
    yield client
    await client.aclose()


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float = 10.0
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def settled_runs(sdk: LangGraphClient, thread_id: str) -> list[dict[str, Any]]:
    runs = await eventually(
        lambda: sdk.runs.list(thread_id, limit=100),
        lambda rs: all(r["status"] not in ("pending", "running") for r in rs),
        timeout=20,
    )
    return sorted(runs, key=lambda r: r["created_at"])


# -- firing ---------------------------------------------------------------------------


async def test_stateless_crons_keep_or_delete_their_threads(
    sdk: LangGraphClient, counter: Path
) -> None:
    kept_assistant = await sdk.assistants.create("slow", name="cron-keep")
    gone_assistant = await sdk.assistants.create("slow", name="cron-delete")
    keep = await sdk.crons.create(
        kept_assistant["assistant_id"],
        schedule=EVERY_SECOND,
        input={"steps": []},
        metadata={"origin": "cron-test"},
        on_run_completed="keep",
    )
    # What create answers is a Cron, not a Run.
    assert "run_id" not in keep and "status" not in keep
    assert keep["thread_id"] is None
    assert keep["on_run_completed"] == "keep"
    assert keep["enabled"] is True and keep["timezone"] == "UTC"
    assert keep["metadata"] == {"origin": "cron-test"}
    assert keep["payload"]["input"] == {"steps": []}
    next_run = datetime.fromisoformat(keep["next_run_date"])
    assert (
        datetime.now(UTC) - timedelta(seconds=1)
        < next_run
        <= datetime.now(UTC) + timedelta(seconds=1.5)
    )
    gone = await sdk.crons.create(
        gone_assistant["assistant_id"], schedule=EVERY_SECOND, input={"steps": []}
    )
    assert gone["on_run_completed"] == "delete"

    async def deleted_threads_that_ran() -> set[str]:
        # The log first: a thread it names existed before the search below.
        text = counter.read_text() if counter.exists() else ""
        ran = {line.split()[1] for line in text.splitlines() if line.startswith("s3 ")}
        kept = await sdk.threads.search(
            metadata={"assistant_id": kept_assistant["assistant_id"]}, limit=1000
        )
        return ran - {t["thread_id"] for t in kept}

    try:
        kept = await eventually(
            lambda: sdk.threads.search(metadata={"assistant_id": kept_assistant["assistant_id"]}),
            lambda ts: any(t["values"] == {"steps": ["s1", "s2", "s3"]} for t in ts),
        )
        deleted = await eventually(deleted_threads_that_ran, bool)
    finally:
        await sdk.crons.delete(keep["cron_id"])
        await sdk.crons.delete(gone["cron_id"])

    done = next(t for t in kept if t["values"] == {"steps": ["s1", "s2", "s3"]})
    assert done["metadata"]["assistant_id"] == kept_assistant["assistant_id"]
    [run] = await sdk.runs.list(done["thread_id"])
    assert run["status"] == "success"
    # The cron's id is the server's to attach: in the run's metadata and configurable.
    assert run["metadata"] == {"origin": "cron-test", "cron_id": keep["cron_id"]}
    assert run["kwargs"]["config"]["configurable"]["cron_id"] == keep["cron_id"]

    # The delete cron's threads ran to the end, then went.
    assert deleted
    leftovers = await eventually(
        lambda: sdk.threads.search(metadata={"assistant_id": gone_assistant["assistant_id"]}),
        lambda ts: not ts,
    )
    assert leftovers == []
    for thread_id in deleted:
        with pytest.raises(NotFoundError):
            await sdk.threads.get(thread_id)


async def test_thread_cron_enqueues_on_its_thread(sdk: LangGraphClient) -> None:
    thread = await sdk.threads.create()
    tid = thread["thread_id"]
    # Each run outlasts the one-second period: fires queue up behind it.
    cron = await sdk.crons.create_for_thread(
        tid, "marker", schedule=EVERY_SECOND, input={}, config={"configurable": {"sleep": 1.3}}
    )
    assert cron["thread_id"] == tid
    assert cron["on_run_completed"] is None
    assert cron["payload"]["multitask_strategy"] == "enqueue"
    try:
        await eventually(lambda: sdk.runs.list(tid), lambda rs: len(rs) >= 3)
    finally:
        await sdk.crons.delete(cron["cron_id"])
    runs = await settled_runs(sdk, tid)
    assert len(runs) >= 3
    assert {r["status"] for r in runs} == {"success"}
    assert {r["multitask_strategy"] for r in runs} == {"enqueue"}
    assert all(r["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"] for r in runs)
    assert all(r["metadata"] == {"cron_id": cron["cron_id"]} for r in runs)
    state = await sdk.threads.get_state(tid)
    assert state["values"]["marks"] == ["?"] * len(runs)


async def test_cron_id_with_context_payload_and_forged_metadata(sdk: LangGraphClient) -> None:
    """A payload with `context` still gets `cron_id` in metadata and configurable (the
    server's, added after the configurable/context check); a `cron_id` the client put
    in the cron's metadata is not the run's."""
    thread = await sdk.threads.create()
    tid = thread["thread_id"]
    cron = await sdk.crons.create_for_thread(
        tid,
        "echo",
        schedule=EVERY_SECOND,
        input=HI,
        context={"model": "m1"},
        metadata={"cron_id": "forged", "team": "ops"},
    )
    try:
        await eventually(lambda: sdk.runs.list(tid), bool)
    finally:
        await sdk.crons.delete(cron["cron_id"])
    runs = await settled_runs(sdk, tid)
    assert runs
    for run in runs:
        assert run["status"] == "success", run
        assert run["metadata"] == {"team": "ops", "cron_id": cron["cron_id"]}
        assert run["kwargs"]["context"] == {"model": "m1"}
        assert run["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    found = await sdk.runs.list(tid, limit=100)
    assert {r["metadata"]["cron_id"] for r in found} == {cron["cron_id"]}


@pytest.mark.parametrize(
    "webhook", ["http://127.0.0.1/hook", "http://169.254.169.254/latest", "not a url"]
)
async def test_cron_webhook_refused_at_creation(sdk: LangGraphClient, webhook: str) -> None:
    """The runs' webhook policy applies when the cron is made, not only at each fire."""
    before = await sdk.crons.count()
    async with httpx.AsyncClient(base_url=str(sdk.http.client.base_url)) as raw:
        for path in (
            "/runs/crons",
            f"/threads/{(await sdk.threads.create())['thread_id']}/runs/crons",
        ):
            response = await raw.post(
                path, json={"assistant_id": "echo", "schedule": NEVER_SOON, "webhook": webhook}
            )
            assert response.status_code == 422, response.text
            assert "webhook" in response.json()["detail"]
        cron = await sdk.crons.create("echo", schedule=NEVER_SOON)
        try:
            response = await raw.patch(f"/runs/crons/{cron['cron_id']}", json={"webhook": webhook})
            assert response.status_code == 422, response.text
            assert "webhook" in response.json()["detail"]
            current = (await raw.get(f"/runs/crons/{cron['cron_id']}")).json()
            assert "webhook" not in current["payload"]
        finally:
            await sdk.crons.delete(cron["cron_id"])
    assert await sdk.crons.count() == before


async def test_failing_cron_does_not_stall_the_others(sdk: LangGraphClient) -> None:
    busy = await sdk.threads.create()
    blocker = await sdk.runs.create(
        busy["thread_id"], "marker", input={}, config={"configurable": {"sleep": 4}}
    )
    # Every fire of this one is refused: its thread is busy and it rejects double-texts.
    refused = await sdk.crons.create_for_thread(
        busy["thread_id"], "marker", schedule=EVERY_SECOND, input={}, multitask_strategy="reject"
    )
    healthy_thread = await sdk.threads.create()
    healthy = await sdk.crons.create_for_thread(
        healthy_thread["thread_id"], "echo", schedule=EVERY_SECOND, input=HI
    )
    try:
        runs = await eventually(
            lambda: sdk.runs.list(healthy_thread["thread_id"]), lambda rs: len(rs) >= 2
        )
        assert len(runs) >= 2
        # Its refused fires still advance it: it is never stuck on a past fire.
        current = await sdk.http.get(f"/runs/crons/{refused['cron_id']}")
        late = datetime.now(UTC) - datetime.fromisoformat(current["next_run_date"])
        assert late < timedelta(seconds=1)
    finally:
        await sdk.crons.delete(refused["cron_id"])
        await sdk.crons.delete(healthy["cron_id"])
    assert [r["run_id"] for r in await sdk.runs.list(busy["thread_id"])] == [blocker["run_id"]]
    await sdk.runs.cancel(busy["thread_id"], blocker["run_id"])


async def test_end_time_stops_a_cron(sdk: LangGraphClient) -> None:
    past = await sdk.threads.create()
    ended = await sdk.crons.create_for_thread(
        past["thread_id"],
        "echo",
        schedule=EVERY_SECOND,
        input=HI,
        end_time=datetime.now(UTC) - timedelta(hours=1),
    )
    soon = await sdk.threads.create()
    ending = await sdk.crons.create_for_thread(
        soon["thread_id"],
        "echo",
        schedule=EVERY_SECOND,
        input=HI,
        end_time=datetime.now(UTC) + timedelta(seconds=2.5),
    )
    await asyncio.sleep(3.5)
    after_end = len(await sdk.runs.list(soon["thread_id"]))
    await asyncio.sleep(1.5)
    assert await sdk.runs.list(past["thread_id"]) == []
    assert 1 <= after_end <= 3
    assert len(await sdk.runs.list(soon["thread_id"])) == after_end
    for cron in (ended, ending):
        await sdk.crons.delete(cron["cron_id"])


async def test_deleting_thread_or_assistant_deletes_its_crons(sdk: LangGraphClient) -> None:
    thread = await sdk.threads.create()
    on_thread = await sdk.crons.create_for_thread(thread["thread_id"], "echo", schedule=NEVER_SOON)
    assistant = await sdk.assistants.create("echo")
    of_assistant = await sdk.crons.create(assistant["assistant_id"], schedule=NEVER_SOON)
    await sdk.threads.delete(thread["thread_id"])
    await sdk.assistants.delete(assistant["assistant_id"])
    for cron in (on_thread, of_assistant):
        with pytest.raises(NotFoundError):
            await sdk.http.get(f"/runs/crons/{cron['cron_id']}")


# -- CRUD and validation --------------------------------------------------------------


async def test_search_count_get_patch_delete(
    sdk: LangGraphClient, cron_server: BerthServer
) -> None:
    assistant = await sdk.assistants.create("echo", name="cron-crud")
    aid = assistant["assistant_id"]
    thread = await sdk.threads.create()
    a = await sdk.crons.create(aid, schedule=NEVER_SOON, metadata={"k": "a", "shared": 1})
    b = await sdk.crons.create(
        aid, schedule="30 6 * * *", timezone=ZoneInfo("Europe/Paris"), metadata={"k": "b"}
    )
    c = await sdk.crons.create_for_thread(
        thread["thread_id"], aid, schedule=NEVER_SOON, enabled=False, metadata={"k": "c"}
    )
    assert b["timezone"] == "Europe/Paris"
    paris = datetime.fromisoformat(b["next_run_date"]).astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute, paris.second) == (6, 30, 0)

    found = await sdk.crons.search(assistant_id=aid, limit=10)
    assert [x["cron_id"] for x in found] == [c["cron_id"], b["cron_id"], a["cron_id"]]
    assert await sdk.crons.count(assistant_id=aid) == 3
    assert await sdk.crons.count(assistant_id=aid, metadata={"shared": 1}) == 1
    assert await sdk.crons.count(thread_id=thread["thread_id"]) == 1
    only_disabled = await sdk.crons.search(assistant_id=aid, enabled=False)
    assert [x["cron_id"] for x in only_disabled] == [c["cron_id"]]
    by_next = await sdk.crons.search(assistant_id=aid, sort_by="next_run_date", sort_order="asc")
    assert by_next[0]["cron_id"] == b["cron_id"]
    picked = await sdk.crons.search(assistant_id=aid, select=["cron_id", "schedule"], limit=1)
    assert picked == [{"cron_id": c["cron_id"], "schedule": NEVER_SOON}]

    async with httpx.AsyncClient(base_url=cron_server.url) as raw:
        page = await raw.post("/runs/crons/search", json={"assistant_id": aid, "limit": 2})
        assert page.headers["x-pagination-total"] == "3"
        assert page.headers["x-pagination-next"] == "2"
        bad_sort = await raw.post("/runs/crons/search", json={"sort_by": "schedule"})
        assert bad_sort.status_code == 422 and "sort_by" in bad_sort.json()["detail"]
        head = await raw.head(f"/runs/crons/{a['cron_id']}")
        assert head.status_code == 200
        empty = await raw.patch(f"/runs/crons/{a['cron_id']}", json={})
        assert empty.status_code == 400 and "detail" in empty.json()
        not_uuid = await raw.get("/runs/crons/not-a-uuid")
        assert not_uuid.status_code == 422

    got = await sdk.http.get(f"/runs/crons/{a['cron_id']}")
    assert got == a

    end = datetime.now(UTC) + timedelta(days=2)
    patched = await sdk.crons.update(
        a["cron_id"],
        schedule="*/15 * * * *",
        end_time=end,
        input={"messages": []},
        metadata={"k": "a2"},
        on_run_completed="keep",
        enabled=False,
    )
    assert patched["schedule"] == "*/15 * * * *"
    assert datetime.fromisoformat(patched["end_time"]) == end
    assert patched["metadata"] == {"k": "a2", "shared": 1}
    assert patched["payload"]["input"] == {"messages": []}
    assert patched["payload"]["metadata"] == {"k": "a2", "shared": 1}
    assert patched["on_run_completed"] == "keep"
    assert patched["enabled"] is False
    nxt = datetime.fromisoformat(patched["next_run_date"])
    assert nxt.minute % 15 == 0 and nxt - datetime.now(UTC) <= timedelta(minutes=15)
    assert datetime.fromisoformat(patched["updated_at"]) > datetime.fromisoformat(a["updated_at"])

    cleared = await sdk.crons.update(a["cron_id"], end_time=None)
    assert cleared["end_time"] is None
    assert cleared["schedule"] == "*/15 * * * *"

    with pytest.raises(BadRequestError, match="stateless"):
        await sdk.crons.update(c["cron_id"], on_run_completed="delete")
    with pytest.raises(UnprocessableEntityError):
        await sdk.crons.update(a["cron_id"], schedule="not a schedule")
    with pytest.raises(UnprocessableEntityError):
        await sdk.crons.update(a["cron_id"], timezone="Nowhere/Land")

    for cron in (a, b, c):
        await sdk.crons.delete(cron["cron_id"])
    assert await sdk.crons.count(assistant_id=aid) == 0
    with pytest.raises(NotFoundError):
        await sdk.crons.delete(a["cron_id"])
    with pytest.raises(NotFoundError):
        await sdk.crons.update(a["cron_id"], enabled=True)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"schedule": "* * *"}, UnprocessableEntityError),
        ({"schedule": "99 * * * *"}, UnprocessableEntityError),
        ({"schedule": "* * * * * * * *"}, UnprocessableEntityError),
        ({"schedule": "0 0 31 2 *"}, UnprocessableEntityError),
        ({"schedule": "* * * * *", "timezone": "Mars/Olympus"}, UnprocessableEntityError),
        ({"schedule": "* * * * *", "interrupt_before": "n1"}, UnprocessableEntityError),
        (
            {"schedule": "* * * * *", "config": {"configurable": {"a": 1}}, "context": {"a": 1}},
            BadRequestError,
        ),
    ],
)
async def test_invalid_crons_are_refused(
    sdk: LangGraphClient, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    before = await sdk.crons.count()
    with pytest.raises(error):
        await sdk.crons.create("echo", **kwargs)
    assert await sdk.crons.count() == before


async def test_missing_assistant_or_thread(sdk: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await sdk.crons.create("00000000-0000-4000-8000-000000000000", schedule=NEVER_SOON)
    with pytest.raises(UnprocessableEntityError):
        await sdk.crons.create("no-such-graph", schedule=NEVER_SOON)
    with pytest.raises(NotFoundError):
        await sdk.crons.create_for_thread(
            "00000000-0000-4000-8000-000000000000", "echo", schedule=NEVER_SOON
        )
    info = await sdk.http.get("/info")
    assert info["flags"]["crons"] is True


# -- the scheduler across restarts and processes ------------------------------------


async def test_missed_fires_make_one_catch_up_run(start_server: StartServer) -> None:
    server = start_server(env={"BERTH_CRON_INTERVAL": "0.1"}, name="downtime")
    async with langgraph_sdk.get_client(url=server.url) as sdk:
        thread = await sdk.threads.create()
        # Three fires, 4-6 s from now, then none for nearly a minute.
        now = datetime.now(UTC)
        seconds = ",".join(str((now.second + d) % 60) for d in (4, 5, 6))
        cron = await sdk.crons.create_for_thread(
            thread["thread_id"], "echo", schedule=f"* * * * * {seconds}", input=HI
        )
    server.stop()
    first_fire = now.replace(microsecond=0) + timedelta(seconds=4)
    assert datetime.now(UTC) < first_fire, "the server took too long to stop"
    missed_until = now.replace(microsecond=0) + timedelta(seconds=7)
    await asyncio.sleep((missed_until - datetime.now(UTC)).total_seconds())

    server.start()
    restarted = datetime.now(UTC)
    async with langgraph_sdk.get_client(url=server.url) as sdk:
        await asyncio.sleep(2.5)
        runs = await settled_runs(sdk, thread["thread_id"])
        assert len(runs) == 1, "three fires were missed; exactly one catch-up run"
        assert datetime.fromisoformat(runs[0]["created_at"]) >= restarted - timedelta(seconds=1)
        assert runs[0]["status"] == "success"
        current = await sdk.http.get(f"/runs/crons/{cron['cron_id']}")
        assert datetime.fromisoformat(current["next_run_date"]) > datetime.now(UTC)


async def test_two_processes_fire_each_time_once(
    start_server: StartServer, pg_database: str, redis_uri: str
) -> None:
    env = {"DATABASE_URI": pg_database, "REDIS_URI": redis_uri, "BERTH_CRON_INTERVAL": "0.05"}
    servers = [start_server(env=env, name=f"node{i}") for i in range(2)]
    async with langgraph_sdk.get_client(url=servers[0].url) as sdk:
        thread = await sdk.threads.create()
        tid = thread["thread_id"]
        cron = await sdk.crons.create_for_thread(tid, "echo", schedule=EVERY_SECOND, input=HI)
        started = time.time()
        await asyncio.sleep(3.6)
        await sdk.crons.delete(cron["cron_id"])
        stopped = time.time()
        runs = await settled_runs(sdk, tid)

    fired = [datetime.fromisoformat(r["created_at"]).timestamp() for r in runs]
    # A fire is claimed within one 0.05 s tick of its second, so duplicates would
    # land together; one run per second means gaps near a whole second.
    gaps = [b - a for a, b in itertools.pairwise(fired)]
    assert all(gap > 0.5 for gap in gaps), gaps
    whole_seconds = int(stopped) - int(started)
    assert whole_seconds - 1 <= len(runs) <= whole_seconds + 1, (len(runs), whole_seconds)
    assert {r["status"] for r in runs} == {"success"}
    # Both processes claimed fires in the database; the log shows who made each run.
    made = [s.log_file.read_text().count(f"cron {cron['cron_id']}: fired") for s in servers]
    assert sum(made) == len(runs), made


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'berth.db'}"
    return str(request.getfixturevalue("pg_database"))


async def test_concurrent_claims_take_each_fire_once(shared_uri: str) -> None:
    """The claim itself, raced hard: four stores (as four processes would hold) with
    three claimers each, on one due cron, twenty times over."""
    stores = [Storage(shared_uri) for _ in range(4)]
    for store in stores:
        await store.open()
    try:
        now = datetime.now(UTC)
        cron = await stores[0].crons.create(
            Cron(
                cron_id=str(uuid.uuid4()),
                assistant_id=str(uuid.uuid4()),
                thread_id=None,
                user_id=None,
                schedule=EVERY_SECOND,
                timezone="UTC",
                end_time=None,
                next_run_date=now - timedelta(seconds=1),
                payload={},
                metadata={},
                on_run_completed=None,
                multitask_strategy=None,
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )

        def an_hour_on(_: Cron, at: datetime) -> datetime:
            return at + timedelta(hours=1)

        for _ in range(20):
            due = datetime.now(UTC)
            claims = await asyncio.gather(
                *(s.crons.claim_due(due, an_hour_on) for s in stores for _ in range(3))
            )
            claimed = [c for batch in claims for c in batch]
            assert [c.cron_id for c in claimed] == [cron.cron_id]
            assert claimed[0].next_run_date is not None and claimed[0].next_run_date < due
            current = await stores[0].crons.get(cron.cron_id)
            assert current.next_run_date == due + timedelta(hours=1)
            await stores[0].crons.update(
                cron.cron_id, lambda _: {"next_run_date": datetime.now(UTC) - timedelta(seconds=1)}
            )
    finally:
        for store in stores:
            await store.close()
