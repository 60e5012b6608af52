"""`/a2a/{assistant_id}`: the a2a-sdk client (v1.0 and v0.3 transports) and raw JSON-RPC."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2AClientError, Client, ClientConfig, ClientFactory, create_client
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import InvalidParamsError, TaskNotCancelableError, TaskNotFoundError
from google.protobuf import json_format
from langgraph_sdk.client import LangGraphClient

from berth.core import ids
from tests.berth_server import GRAPHS_CONFIG, BerthServer
from tests.conftest import StartServer

SSE = {"Accept": "text/event-stream"}


def user(*parts: pb.Part, context_id: str = "", task_id: str = "") -> pb.Message:
    return pb.Message(
        message_id=str(uuid.uuid4()),
        role=pb.ROLE_USER,
        parts=list(parts),
        context_id=context_id,
        task_id=task_id,
    )


def text(value: str) -> pb.Part:
    return pb.Part(text=value)


def data(value: dict[str, Any]) -> pb.Part:
    part = pb.Part()
    json_format.ParseDict(value, part.data)
    return part


async def sdk(server: BerthServer, assistant: str, **config: Any) -> Client:
    """An a2a-sdk client found through the assistant's agent card."""
    http = httpx.AsyncClient(timeout=30)
    return await create_client(
        f"{server.url}/a2a/{assistant}", ClientConfig(httpx_client=http, **config)
    )


async def events(client: Client, message: pb.Message) -> list[pb.StreamResponse]:
    return [e async for e in client.send_message(pb.SendMessageRequest(message=message))]


async def send(client: Client, message: pb.Message) -> pb.Task:
    (response,) = await events(client, message)
    assert response.HasField("task")
    return response.task


def texts(parts: Any) -> list[str]:
    return [p.text for p in parts if p.WhichOneof("content") == "text"]


def rpc(server: BerthServer, assistant: str, method: str, params: Any, **headers: str) -> Any:
    body = {"jsonrpc": "2.0", "id": "r1", "method": method, "params": params}
    response = httpx.post(f"{server.url}/a2a/{assistant}", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["jsonrpc"] == "2.0" and reply["id"] == "r1"
    return reply


def sse_frames(server: BerthServer, assistant: str, method: str, params: Any) -> list[Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    url = f"{server.url}/a2a/{assistant}"
    with httpx.stream("POST", url, json=body, headers=SSE, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    frames = [json.loads(line[len("data: ") :]) for line in lines]
    assert all(f["jsonrpc"] == "2.0" and f["id"] == 7 for f in frames)
    return [f["result"] for f in frames]


V03_HELLO = {
    "message": {"role": "user", "messageId": "m-1", "parts": [{"kind": "text", "text": "hi"}]}
}
V10_HELLO = {"message": {"role": "ROLE_USER", "messageId": "m-2", "parts": [{"text": "hi"}]}}


# -- cards -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_card_discovery(server: BerthServer) -> None:
    a2a = await sdk(server, "echo")
    card = a2a._card  # type: ignore[attr-defined]
    assert card.name == "echo"
    assert card.capabilities.streaming and not card.capabilities.push_notifications
    (interface,) = card.supported_interfaces
    assistant_id = ids.default_assistant_id("echo")
    assert interface.url == f"{server.url}/a2a/{assistant_id}"
    assert (interface.protocol_binding, interface.protocol_version) == ("JSONRPC", "1.0")
    assert card.skills[0].id == "echo-main" and "text/plain" in card.default_input_modes
    await a2a.close()

    paths = [
        f"/a2a/{assistant_id}",
        f"/a2a/{assistant_id}/.well-known/agent-card.json",
        "/a2a/echo/.well-known/agent.json",
        f"/.well-known/agent-card.json?assistant_id={assistant_id}",
    ]
    cards = [httpx.get(server.url + path).json() for path in paths]
    assert all(c == cards[0] for c in cards)
    assert cards[0]["url"] == interface.url and cards[0]["preferredTransport"] == "JSONRPC"
    assert cards[0]["capabilities"] == {"streaming": True, "pushNotifications": False}

    missing = httpx.get(f"{server.url}/a2a/{uuid.uuid4()}/.well-known/agent-card.json")
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    no_id = httpx.get(f"{server.url}/.well-known/agent-card.json")
    assert no_id.status_code == 400 and "assistant_id" in no_id.json()["detail"]


# -- the SDK client (v1.0) ---------------------------------------------------------


@pytest.mark.anyio
async def test_send_continue_and_get_task(server: BerthServer) -> None:
    a2a = await sdk(server, "echo", streaming=False)
    task = await send(a2a, user(text("hello")))
    assert task.status.state == pb.TASK_STATE_COMPLETED
    assert task.id == f"{task.context_id}:{task.id.split(':')[1]}"
    (artifact,) = task.artifacts
    assert texts(artifact.parts) == ["echo: hello"]
    assert [(m.role, texts(m.parts)) for m in task.history] == [
        (pb.ROLE_USER, ["hello"]),
        (pb.ROLE_AGENT, ["echo: hello"]),
    ]

    # The same contextId continues the thread: a new task, the conversation grows.
    again = await send(a2a, user(text("more"), context_id=task.context_id))
    assert again.context_id == task.context_id and again.id != task.id
    assert texts(again.artifacts[0].parts) == ["echo: more"]
    assert [texts(m.parts)[0] for m in again.history] == [
        "hello",
        "echo: hello",
        "more",
        "echo: more",
    ]

    fetched = await a2a.get_task(pb.GetTaskRequest(id=again.id))
    assert fetched.status.state == pb.TASK_STATE_COMPLETED
    assert texts(fetched.artifacts[0].parts) == ["echo: more"]
    short = await a2a.get_task(pb.GetTaskRequest(id=again.id, history_length=1))
    assert [texts(m.parts) for m in short.history] == [["echo: more"]]
    # The first task is no longer the thread's latest; its state stays completed.
    first = await a2a.get_task(pb.GetTaskRequest(id=task.id))
    assert first.status.state == pb.TASK_STATE_COMPLETED
    with pytest.raises(TaskNotFoundError):
        await a2a.get_task(pb.GetTaskRequest(id=f"{task.context_id}:{uuid.uuid4()}"))
    await a2a.close()


@pytest.mark.anyio
async def test_stream_messages(server: BerthServer) -> None:
    a2a = await sdk(server, "messages")
    stream = await events(a2a, user(text("hi")))
    kinds = [e.WhichOneof("payload") for e in stream]
    assert kinds[0] == "task" and stream[0].task.status.state == pb.TASK_STATE_SUBMITTED
    assert texts(stream[0].task.history[0].parts) == ["hi"]
    assert kinds[-2:] == ["artifact_update", "status_update"]
    working = [e.status_update for e in stream if e.WhichOneof("payload") == "status_update"][:-1]
    assert working and all(u.status.state == pb.TASK_STATE_WORKING for u in working)
    streamed = "".join(t for u in working for t in texts(u.status.message.parts))
    assert streamed == "hello there friend"
    assert texts(stream[-2].artifact_update.artifact.parts) == ["hello there friend"]
    assert stream[-2].artifact_update.last_chunk
    assert stream[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    task_id = stream[0].task.id
    assert all(getattr(e, e.WhichOneof("payload")).task_id == task_id for e in stream[1:])
    await a2a.close()


@pytest.mark.anyio
async def test_cancel(server: BerthServer, client: LangGraphClient) -> None:
    slow = await client.assistants.create("slow", config={"configurable": {"sleep": 2}})
    a2a = await sdk(server, slow["assistant_id"], streaming=False, polling=True)
    task = await send(a2a, user(data({"steps": []})))
    assert task.status.state in (pb.TASK_STATE_SUBMITTED, pb.TASK_STATE_WORKING)
    canceled = await a2a.cancel_task(pb.CancelTaskRequest(id=task.id))
    assert canceled.id == task.id and canceled.status.state == pb.TASK_STATE_CANCELED
    fetched = await a2a.get_task(pb.GetTaskRequest(id=task.id))
    assert fetched.status.state == pb.TASK_STATE_CANCELED
    run = await client.runs.get(task.context_id, task.id.split(":")[1])
    assert run["status"] == "interrupted"
    with pytest.raises(TaskNotCancelableError):
        await a2a.cancel_task(pb.CancelTaskRequest(id=task.id))
    await a2a.close()


@pytest.mark.anyio
async def test_interrupt_then_resume_by_next_message(server: BerthServer) -> None:
    a2a = await sdk(server, "a2a_approval", streaming=False)
    asked = await send(a2a, user(text("deploy")))
    assert asked.status.state == pb.TASK_STATE_INPUT_REQUIRED
    assert texts(asked.status.message.parts) == ["approve 'deploy'?"]
    assert not asked.artifacts
    fetched = await a2a.get_task(pb.GetTaskRequest(id=asked.id))
    assert fetched.status.state == pb.TASK_STATE_INPUT_REQUIRED

    done = await send(a2a, user(text("yes"), context_id=asked.context_id, task_id=asked.id))
    assert done.status.state == pb.TASK_STATE_COMPLETED and done.id != asked.id
    assert texts(done.artifacts[0].parts) == ["approved: deploy (yes)"]
    assert [texts(m.parts)[0] for m in done.history] == ["deploy", "yes", "approved: deploy (yes)"]
    # The paused task is settled now that the thread has moved on.
    assert (await a2a.get_task(pb.GetTaskRequest(id=asked.id))).status.state == (
        pb.TASK_STATE_COMPLETED
    )
    await a2a.close()

    streaming = await sdk(server, "a2a_approval")
    stream = await events(streaming, user(text("ship")))
    final = stream[-1].status_update
    assert final.status.state == pb.TASK_STATE_INPUT_REQUIRED
    assert texts(final.status.message.parts) == ["approve 'ship'?"]
    resumed = await events(streaming, user(text("ok"), context_id=final.context_id))
    assert resumed[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    assert texts(resumed[-2].artifact_update.artifact.parts) == ["approved: ship (ok)"]
    await streaming.close()


@pytest.mark.anyio
async def test_data_parts_and_resume_data_part(server: BerthServer) -> None:
    a2a = await sdk(server, "interrupting", streaming=False)
    asked = await send(a2a, user(data({"value": "start"})))
    assert asked.status.state == pb.TASK_STATE_INPUT_REQUIRED
    (question,) = asked.status.message.parts
    assert json_format.MessageToDict(question.data) == {"question": "what?"}
    # `resume` on a thread that waits for nothing is refused.
    with pytest.raises(InvalidParamsError, match="nothing waits"):
        await send(a2a, user(data({"resume": 1})))
    done = await send(a2a, user(data({"resume": 42}), context_id=asked.context_id))
    assert done.status.state == pb.TASK_STATE_COMPLETED
    (artifact,) = done.artifacts
    state = json_format.MessageToDict(artifact.parts[0].data)
    assert state == {"value": "done:42", "answer": 42}
    # A graph without `messages` history holds just the caller's message.
    assert [m.role for m in done.history] == [pb.ROLE_USER]
    await a2a.close()


@pytest.mark.anyio
async def test_failed_task_and_file_parts(server: BerthServer) -> None:
    failing = await sdk(server, "failing", streaming=False)
    task = await send(failing, user(data({"value": "x"})))
    assert task.status.state == pb.TASK_STATE_FAILED
    assert texts(task.status.message.parts) == ["ValueError: boom"]
    await failing.close()

    echo = await sdk(server, "echo", streaming=False)
    picture = pb.Part(url="https://example.com/cat.png", media_type="image/png", filename="cat.png")
    blob = pb.Part(raw=b"%PDF-1", media_type="application/pdf")
    task = await send(echo, user(text("look"), picture, blob))
    # The file parts are content blocks of the human message, next to its text.
    assert texts(task.artifacts[0].parts) == ["echo: look"]
    await echo.close()


@pytest.mark.anyio
async def test_sdk_errors(server: BerthServer) -> None:
    chain = await sdk(server, "chain10", streaming=False)
    with pytest.raises(InvalidParamsError, match="no 'messages' key"):
        await send(chain, user(text("count")))
    # Data parts are top-level input keys, which chain10 does take.
    task = await send(chain, user(data({"count": 5})))
    assert json_format.MessageToDict(task.artifacts[0].parts[0].data) == {"count": 15}
    await chain.close()

    with pytest.raises(A2AClientError, match="404"):
        await sdk(server, str(uuid.uuid4()))


@pytest.mark.anyio
async def test_list_tasks(server: BerthServer) -> None:
    a2a = await sdk(server, "echo", streaming=False)
    first = await send(a2a, user(text("one")))
    second = await send(a2a, user(text("two"), context_id=first.context_id))
    listed = await a2a.list_tasks(pb.ListTasksRequest(context_id=first.context_id))
    assert [t.id for t in listed.tasks] == [second.id, first.id]
    assert listed.total_size == 2 and not listed.tasks[0].artifacts
    page = await a2a.list_tasks(
        pb.ListTasksRequest(context_id=first.context_id, page_size=1, include_artifacts=True)
    )
    assert [t.id for t in page.tasks] == [second.id] and page.next_page_token == "1"
    assert texts(page.tasks[0].artifacts[0].parts) == ["echo: two"]
    everything = await a2a.list_tasks(pb.ListTasksRequest(page_size=100))
    assert {first.id, second.id} <= {t.id for t in everything.tasks}
    await a2a.close()


# -- the SDK's v0.3 transport --------------------------------------------------------


@pytest.mark.anyio
async def test_v03_sdk_client(server: BerthServer) -> None:
    methods: list[str] = []

    async def record(request: httpx.Request) -> None:
        if request.method == "POST":
            methods.append(json.loads(request.content)["method"])

    http = httpx.AsyncClient(timeout=30, event_hooks={"request": [record]})
    card = await create_client(f"{server.url}/a2a/echo", ClientConfig(httpx_client=http))
    legacy = pb.AgentCard()
    legacy.CopyFrom(card._card)  # type: ignore[attr-defined]
    legacy.supported_interfaces[0].protocol_version = "0.3"
    factory = ClientFactory(ClientConfig(httpx_client=http, streaming=False))
    a2a = factory.create(legacy)
    task = await send(a2a, user(text("old")))
    assert task.status.state == pb.TASK_STATE_COMPLETED
    assert texts(task.artifacts[0].parts) == ["echo: old"]
    fetched = await a2a.get_task(pb.GetTaskRequest(id=task.id))
    assert [m.role for m in fetched.history] == [pb.ROLE_USER, pb.ROLE_AGENT]

    streaming = ClientFactory(ClientConfig(httpx_client=http)).create(legacy)
    stream = await events(streaming, user(text("new"), context_id=task.context_id))
    assert stream[0].task.status.state == pb.TASK_STATE_SUBMITTED
    assert stream[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    assert methods == ["message/send", "tasks/get", "message/stream"]
    await http.aclose()


# -- raw JSON-RPC -------------------------------------------------------------------------


def test_raw_v03_methods(server: BerthServer) -> None:
    sent = rpc(server, "echo", "message/send", V03_HELLO)["result"]
    assert sent["kind"] == "task" and sent["status"]["state"] == "completed"
    assert [(m["kind"], m["role"]) for m in sent["history"]] == [
        ("message", "user"),
        ("message", "agent"),
    ]
    assert sent["history"][0]["messageId"] == "m-1"
    assert sent["artifacts"][0]["parts"] == [{"kind": "text", "text": "echo: hi"}]
    got = rpc(server, "echo", "tasks/get", {"id": sent["id"], "historyLength": 1})["result"]
    assert got["id"] == sent["id"] and got["contextId"] == sent["contextId"]
    assert [m["role"] for m in got["history"]] == ["agent"]
    card = rpc(server, "echo", "agent/getAuthenticatedExtendedCard", {})["result"]
    assert card["name"] == "echo" and card["capabilities"]["streaming"] is True
    assert card["url"].endswith(f"/a2a/{ids.default_assistant_id('echo')}")
    assert card["preferredTransport"] == "JSONRPC"
    refused = rpc(server, "echo", "tasks/cancel", {"id": sent["id"]})["error"]
    assert refused["code"] == -32002 and "TASK_STATE_COMPLETED" in refused["message"]

    frames = sse_frames(server, "echo", "message/stream", V03_HELLO)
    assert [f["kind"] for f in frames] == [
        "task",
        "status-update",
        "status-update",
        "artifact-update",
        "status-update",
    ]
    assert frames[0]["status"]["state"] == "submitted"
    assert [f["final"] for f in frames if f["kind"] == "status-update"] == [False, False, True]
    assert frames[2]["status"]["message"]["parts"] == [{"kind": "text", "text": "echo: hi"}]
    assert frames[-1]["status"]["state"] == "completed"


def test_raw_v10_methods(server: BerthServer) -> None:
    sent = rpc(server, "echo", "SendMessage", V10_HELLO)["result"]
    task = sent["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert [m["role"] for m in task["history"]] == ["ROLE_USER", "ROLE_AGENT"]
    assert task["artifacts"][0]["parts"] == [{"text": "echo: hi"}]
    got = rpc(server, "echo", "GetTask", {"id": task["id"]})["result"]
    assert got["id"] == task["id"] and got["status"]["state"] == "TASK_STATE_COMPLETED"
    listed = rpc(server, "echo", "ListTasks", {"contextId": task["contextId"]})["result"]
    assert [t["id"] for t in listed["tasks"]] == [task["id"]] and listed["totalSize"] == 1
    card = rpc(server, "echo", "GetExtendedAgentCard", {})["result"]
    assert card["name"] == "echo" and card["supportedInterfaces"][0]["protocolVersion"] == "1.0"
    assert rpc(server, "echo", "CancelTask", {"id": task["id"]})["error"]["code"] == -32002

    frames = sse_frames(server, "echo", "SendStreamingMessage", V10_HELLO)
    assert [next(iter(f)) for f in frames] == [
        "task",
        "statusUpdate",
        "statusUpdate",
        "artifactUpdate",
        "statusUpdate",
    ]
    assert frames[0]["task"]["status"]["state"] == "TASK_STATE_SUBMITTED"
    assert frames[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert frames[-1]["statusUpdate"]["final"] is True
    assert "final" not in frames[1]["statusUpdate"]


def test_raw_errors(server: BerthServer) -> None:
    assert rpc(server, "echo", "tasks/list", {})["error"]["code"] == -32601
    assert rpc(server, "echo", "DoSomething", {})["error"]["code"] == -32601
    bad = [
        ("SendMessage", {"message": "not an object"}),
        ("SendMessage", {}),
        ("SendMessage", {"message": {"messageId": "x", "parts": []}}),
        ("message/send", {"message": {"role": "user", "parts": [{"kind": "text", "text": "x"}]}}),
        ("message/send", []),
        ("GetTask", {"id": 5, "historyLength": "many"}),
        (
            "SendMessage",
            {"message": {"messageId": "x", "contextId": "nope", "parts": [{"text": "x"}]}},
        ),
    ]
    for method, params in bad:
        error = rpc(server, "echo", method, params)["error"]
        assert error["code"] == -32602, (method, params, error)
        assert error["message"].startswith("Invalid params")
    no_messages = rpc(server, "chain10", "message/send", V03_HELLO)["error"]
    assert no_messages["code"] == -32602 and "'messages'" in no_messages["message"]
    assert rpc(server, "echo", "tasks/get", {"id": "no-such-task"})["error"]["code"] == -32001
    unknown = rpc(server, "echo", "GetTask", {"id": f"{uuid.uuid4()}:{uuid.uuid4()}"})
    assert unknown["error"]["code"] == -32001

    url = f"{server.url}/a2a/echo"
    parse = httpx.post(url, content=b"{nope", headers={"Content-Type": "application/json"})
    assert parse.status_code == 200 and parse.json()["error"]["code"] == -32700
    invalid = httpx.post(url, json={"id": 1, "method": "SendMessage"})
    assert invalid.json() == {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {"code": -32600, "message": invalid.json()["error"]["message"]},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": V03_HELLO}
    missing = httpx.post(f"{server.url}/a2a/{uuid.uuid4()}", json=body)
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    assert missing.json()["error"]["code"] == -32602 and missing.json()["id"] == 1
    assert httpx.post(f"{server.url}/a2a/no-such-graph", json=body).status_code == 404
    # Streaming needs an event-stream Accept; the others need JSON.
    stream = {**body, "method": "message/stream"}
    wrong = httpx.post(url, json=stream, headers={"Accept": "application/json"})
    assert wrong.status_code == 400 and "text/event-stream" in wrong.json()["detail"]
    wrong = httpx.post(url, json=body, headers={"Accept": "text/event-stream"})
    assert wrong.status_code == 400 and "application/json" in wrong.json()["detail"]


def test_disable_a2a(tmp_path: Path, start_server: StartServer) -> None:
    graph = (GRAPHS_CONFIG.parent / "echo.py").resolve()
    config = tmp_path / "langgraph.json"
    config.write_text(
        json.dumps({"graphs": {"echo": f"{graph}:graph"}, "http": {"disable_a2a": True}})
    )
    server = start_server(name="no-a2a", config=config)
    assert httpx.get(f"{server.url}/a2a/echo").status_code == 404
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": V03_HELLO}
    assert httpx.post(f"{server.url}/a2a/echo", json=body).status_code in (404, 405)
