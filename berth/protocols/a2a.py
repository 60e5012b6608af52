"""`/a2a/{assistant_id}`: the Agent2Agent protocol over JSON-RPC 2.0 (contract §12).

One endpoint per assistant, so the a2a-sdk's server pieces (one agent card and one
request handler per app, their own task store) do not fit; the JSON-RPC layer is small
and spoken here, while the SDK's types parse every request and shape every reply. The
v1.0 methods (`SendMessage`, …) parse as protobuf and reply in ProtoJSON (`ROLE_AGENT`,
`TASK_STATE_COMPLETED`); the v0.3 methods (`message/send`, …) parse with the SDK's v0.3
models and reply through its v0.3 conversions (`agent`, `completed`, `kind`).

Like MCP, the protocol's own errors are JSON-RPC error objects with HTTP 200; what is
not a protocol error stays HTTP: a wrong `Accept` is 400, an unknown assistant 404 (its
body carries both `detail` and a JSON-RPC error).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pydantic
from a2a.compat.v0_3 import conversions
from a2a.compat.v0_3 import types as v03
from a2a.types import a2a_pb2 as pb
from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage

from berth import serde
from berth.api import sse
from berth.api.deps import Components, components
from berth.api.responses import JSONResponse
from berth.core import errors, ids, results
from berth.core.models import Assistant, CancelAction
from berth.protocols import a2a_cards, a2a_runs, a2a_tasks
from berth.protocols.a2a_tasks import TaskRef

log = logging.getLogger("berth.a2a")

#: how long `CancelTask` waits for the worker to stop the run before answering
CANCEL_WAIT = 10.0
LIST_PAGE_SIZE = 50
LIST_MAX_PAGE_SIZE = 100
#: runs read per thread by `ListTasks` without a `contextId`
LIST_SCAN = 1000
_FINAL_STATES = {
    pb.TASK_STATE_COMPLETED,
    pb.TASK_STATE_CANCELED,
    pb.TASK_STATE_FAILED,
    pb.TASK_STATE_REJECTED,
    pb.TASK_STATE_INPUT_REQUIRED,
}

router = APIRouter(tags=["a2a"])


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Call:
    c: Components
    assistant: Assistant
    #: a v0.3 method: reply in v0.3 JSON
    legacy: bool
    request_id: Any
    base_url: str


# -- agent cards ---------------------------------------------------------------


async def _assistant(c: Components, assistant_id: str) -> Assistant:
    try:
        return await c.runs.assistant_for(assistant_id)
    except (errors.NotFound, errors.InvalidInput):
        raise errors.NotFound(f"Assistant {assistant_id!r} not found") from None


@router.get("/a2a/{assistant_id}")
@router.get("/a2a/{assistant_id}/.well-known/agent-card.json")
@router.get("/a2a/{assistant_id}/.well-known/agent.json")
async def agent_card(assistant_id: str, request: Request) -> Any:
    assistant = await _assistant(await components(request), assistant_id)
    return a2a_cards.card_json(assistant, str(request.base_url))


@router.get("/.well-known/agent-card.json")
async def well_known_card(request: Request, assistant_id: str | None = None) -> Any:
    if not assistant_id:
        raise errors.BadRequest("assistant_id query parameter is required")
    return await agent_card(assistant_id, request)


# -- JSON-RPC ------------------------------------------------------------------


@router.post("/a2a/{assistant_id}")
async def rpc(assistant_id: str, request: Request) -> Response:
    try:
        body = serde.loads(await request.body())
    except ValueError as exc:
        return _error(None, a2a_runs.PARSE_ERROR, f"Parse error: {exc}")
    request_id = _request_id(body)
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0":
        return _error(
            request_id, a2a_runs.INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 object"
        )
    name = body.get("method")
    if not isinstance(name, str) or not name:
        return _error(
            request_id, a2a_runs.INVALID_REQUEST, "Invalid Request: 'method' must be a string"
        )
    method = _METHODS.get(name)
    if method is None:
        return _error(request_id, a2a_runs.METHOD_NOT_FOUND, f"Method not found: {name}")
    op, legacy = method
    _check_accept(request, streaming=op == "stream")
    c = await components(request)
    try:
        assistant = await _assistant(c, assistant_id)
    except errors.NotFound as exc:
        # 404 as the Agent Server documents it, with a JSON-RPC error for RPC clients
        reply = _reply(request_id, a2a_runs.INVALID_PARAMS, exc.message)
        return JSONResponse({**reply, "detail": exc.message}, status_code=404)
    call = _Call(
        c=c,
        assistant=assistant,
        legacy=legacy,
        request_id=request_id,
        base_url=str(request.base_url),
    )
    params = body.get("params")
    try:
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise _invalid("'params' must be an object")
        if op == "stream":
            return await _stream(call, params)
        result = await _HANDLERS[op](call, params)
    except a2a_runs.RpcError as exc:
        return _error(request_id, exc.code, exc.message)
    except (a2a_tasks.InvalidParts, errors.BadRequest, errors.InvalidInput) as exc:
        return _error(request_id, a2a_runs.INVALID_PARAMS, f"Invalid params: {exc}")
    except errors.BerthError as exc:
        return _error(request_id, a2a_runs.INTERNAL_ERROR, exc.message)
    except Exception as exc:
        log.exception("A2A %s failed", name)
        return _error(
            request_id, a2a_runs.INTERNAL_ERROR, f"Internal error: {type(exc).__name__}: {exc}"
        )
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result})


def _request_id(body: Any) -> Any:
    rid = body.get("id") if isinstance(body, dict) else None
    return rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None


def _reply(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _error(request_id: Any, code: int, message: str) -> JSONResponse:
    return JSONResponse(_reply(request_id, code, message))


def _check_accept(request: Request, *, streaming: bool) -> None:
    accept = request.headers.get("accept", "*/*").lower()
    if streaming:
        if "text/event-stream" not in accept:
            raise errors.BadRequest("Streaming methods need 'Accept: text/event-stream'")
    elif not any(t in accept for t in ("application/json", "application/*", "*/*")):
        raise errors.BadRequest("Non-streaming methods need 'Accept: application/json'")


def _invalid(detail: str) -> a2a_runs.RpcError:
    return a2a_runs.RpcError(a2a_runs.INVALID_PARAMS, f"Invalid params: {detail}")


def _proto(params: dict[str, Any], message: Any) -> Any:
    try:
        return json_format.ParseDict(params, message, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise _invalid(str(exc)) from None


def _compat(model: type[pydantic.BaseModel], params: dict[str, Any]) -> Any:
    try:
        return model.model_validate(params)
    except pydantic.ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise _invalid(where) from None


def _dump(call: _Call, message: ProtoMessage) -> dict[str, Any]:
    """A Task, AgentCard or SendMessageResponse as the caller's protocol version writes it."""
    if not call.legacy:
        return json_format.MessageToDict(message)  # type: ignore[no-any-return]
    if isinstance(message, pb.SendMessageResponse):
        message = message.task
    compat: pydantic.BaseModel
    if isinstance(message, pb.AgentCard):
        compat = conversions.to_compat_agent_card(message)
    else:
        compat = conversions.to_compat_task(message)
    return compat.model_dump(mode="json", by_alias=True, exclude_none=True)


def _send_request(call: _Call, params: dict[str, Any]) -> pb.SendMessageRequest:
    if not call.legacy:
        request: pb.SendMessageRequest = _proto(params, pb.SendMessageRequest())
        if not request.HasField("message"):
            raise _invalid("'message' is required")
        return request
    compat = _compat(v03.MessageSendParams, params)
    try:
        return conversions.to_core_send_message_request(
            v03.SendMessageRequest(id=call.request_id or 0, params=compat)
        )
    except (ValueError, TypeError) as exc:
        raise _invalid(str(exc)) from None


async def _send(call: _Call, params: dict[str, Any]) -> dict[str, Any]:
    request = _send_request(call, params)
    run, events = await a2a_runs.start(call.c, call.assistant, request.message, stream=False)
    ref = TaskRef(thread_id=run.thread_id, run_id=run.run_id)
    config = request.configuration
    if config.return_immediately:
        await a2a_runs.close(events)
    else:
        await results.final_body(call.c.storage, run, events)
    length = config.history_length if config.HasField("history_length") else None
    task = await a2a_runs.load_task(call.c, call.assistant, ref, length)
    a2a_tasks.with_request(task, request.message, ref)
    return _dump(call, pb.SendMessageResponse(task=task))


async def _get(call: _Call, params: dict[str, Any]) -> dict[str, Any]:
    if call.legacy:
        query = _compat(v03.TaskQueryParams, params)
        # v0.3 reads a history length of 0 as "all of it"
        task_id, length = query.id, query.history_length or None
    else:
        request = _proto(params, pb.GetTaskRequest())
        task_id = request.id
        length = request.history_length if request.HasField("history_length") else None
    return _dump(
        call, await a2a_runs.load_task(call.c, call.assistant, a2a_runs.task_ref(task_id), length)
    )


async def _cancel(call: _Call, params: dict[str, Any]) -> dict[str, Any]:
    task_id = _compat(v03.TaskIdParams, params).id if call.legacy else None
    if task_id is None:
        task_id = _proto(params, pb.CancelTaskRequest()).id
    ref = a2a_runs.task_ref(task_id)
    task = await a2a_runs.load_task(call.c, call.assistant, ref)
    if task.status.state in _FINAL_STATES:
        state = pb.TaskState.Name(task.status.state)
        raise a2a_runs.RpcError(
            a2a_runs.TASK_NOT_CANCELABLE, f"Task cannot be canceled: it is {state}"
        )
    await call.c.runs.cancel([ref.run_id], CancelAction.INTERRUPT)
    deadline = time.monotonic() + CANCEL_WAIT
    while task.status.state not in _FINAL_STATES and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        task = await a2a_runs.load_task(call.c, call.assistant, ref)
    if task.status.state not in _FINAL_STATES:
        # The worker has been told and will stop it; the answer should not wait longer.
        task.status.state = pb.TASK_STATE_CANCELED
    return _dump(call, task)


async def _list(call: _Call, params: dict[str, Any]) -> dict[str, Any]:
    request: pb.ListTasksRequest = _proto(params, pb.ListTasksRequest())
    size = min(request.page_size or LIST_PAGE_SIZE, LIST_MAX_PAGE_SIZE)
    try:
        offset = int(request.page_token or 0)
    except ValueError:
        raise _invalid("unknown pageToken") from None
    if size < 1 or offset < 0:
        raise _invalid("pageSize and pageToken must be positive")
    storage, assistant = call.c.storage, call.assistant
    if request.context_id:
        thread_ids = [request.context_id] if ids.is_uuid(request.context_id) else []
    else:
        threads, _ = await storage.threads.search(
            metadata={"assistant_id": assistant.assistant_id}, limit=LIST_MAX_PAGE_SIZE
        )
        thread_ids = [t.thread_id for t in threads]
    found: list[tuple[Any, pb.Task]] = []
    length = request.history_length if request.HasField("history_length") else None
    for thread_id in thread_ids:
        try:
            thread = await storage.threads.get(thread_id)
            runs = await storage.runs.list(thread_id, limit=LIST_SCAN)
        except errors.NotFound:
            continue
        for index, run in enumerate(runs):
            if run.assistant_id != assistant.assistant_id:
                continue
            task = a2a_tasks.build_task(run, thread, latest=index == 0, history_length=length)
            if not request.status or task.status.state == request.status:
                found.append((run.created_at, task))
    found.sort(key=lambda item: item[0], reverse=True)
    page = [task for _, task in found[offset : offset + size]]
    more = offset + size < len(found)
    response = pb.ListTasksResponse(
        tasks=page,
        next_page_token=str(offset + size) if more else "",
        page_size=size,
        total_size=len(found),
    )
    result = json_format.MessageToDict(response, always_print_fields_with_no_presence=True)
    if not request.include_artifacts:
        for task in result["tasks"]:
            task.pop("artifacts", None)
    return result  # type: ignore[no-any-return]


async def _card(call: _Call, params: dict[str, Any]) -> dict[str, Any]:
    version = a2a_cards.LEGACY_PROTOCOL_VERSION if call.legacy else a2a_cards.PROTOCOL_VERSION
    return _dump(call, a2a_cards.card(call.assistant, call.base_url, version))


# -- streaming -------------------------------------------------------------------


def _frame(call: _Call, response: pb.StreamResponse, *, final: bool = False) -> bytes:
    if call.legacy:
        event = conversions.to_compat_stream_response(response).result
        if isinstance(event, v03.TaskStatusUpdateEvent):
            event.final = final
        result = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    else:
        result = json_format.MessageToDict(response)
        if final:
            result["statusUpdate"]["final"] = True
    body = {"jsonrpc": "2.0", "id": call.request_id, "result": result}
    return b"data: " + serde.dumps(body) + b"\n\n"


def _status(ref: TaskRef, status: pb.TaskStatus) -> pb.StreamResponse:
    update = pb.TaskStatusUpdateEvent(task_id=ref.task_id, context_id=ref.thread_id, status=status)
    return pb.StreamResponse(status_update=update)


async def _stream(call: _Call, params: dict[str, Any]) -> Response:
    """The task as SSE: submitted, working (with the agent's text as it streams), the
    answer as an artifact, then the final status with `final: true`."""
    request = _send_request(call, params)
    run, events = await a2a_runs.start(call.c, call.assistant, request.message, stream=True)
    ref = TaskRef(thread_id=run.thread_id, run_id=run.run_id)
    submitted = pb.Task(
        id=ref.task_id,
        context_id=ref.thread_id,
        status=pb.TaskStatus(state=pb.TASK_STATE_SUBMITTED),
        history=[a2a_tasks.user_message(request.message, ref)],
    )

    async def body() -> AsyncIterator[bytes]:
        yield _frame(call, pb.StreamResponse(task=submitted))
        working = False
        try:
            async for event in events:
                name = event.event
                if not working and name in ("metadata", "values", "messages"):
                    working = True
                    yield _frame(call, _status(ref, pb.TaskStatus(state=pb.TASK_STATE_WORKING)))
                if name == "messages" and (got := a2a_tasks.chunk_text(serde.loads(event.data))):
                    message_id, text = got
                    message = a2a_tasks.agent_message(ref, [pb.Part(text=text)], message_id)
                    status = pb.TaskStatus(state=pb.TASK_STATE_WORKING, message=message)
                    yield _frame(call, _status(ref, status))
            task = await a2a_runs.load_task(call.c, call.assistant, ref)
        except Exception as exc:
            if not isinstance(exc, a2a_runs.RpcError):
                log.exception("A2A stream of %s failed", ref.task_id)
            code = exc.code if isinstance(exc, a2a_runs.RpcError) else a2a_runs.INTERNAL_ERROR
            reply = serde.dumps(_reply(call.request_id, code, str(exc)))
            yield b"event: error\ndata: " + reply + b"\n\n"
            return
        for artifact in task.artifacts:
            update = pb.TaskArtifactUpdateEvent(
                task_id=ref.task_id, context_id=ref.thread_id, artifact=artifact, last_chunk=True
            )
            yield _frame(call, pb.StreamResponse(artifact_update=update))
        yield _frame(call, _status(ref, task.status), final=True)

    async def close() -> None:
        await a2a_runs.close(events)

    return sse.response(body(), keepalive=call.c.settings.keepalive_interval, on_close=close)


_METHODS: dict[str, tuple[str, bool]] = {
    "message/send": ("send", True),
    "message/stream": ("stream", True),
    "tasks/get": ("get", True),
    "tasks/cancel": ("cancel", True),
    "agent/getAuthenticatedExtendedCard": ("card", True),
    "SendMessage": ("send", False),
    "SendStreamingMessage": ("stream", False),
    "GetTask": ("get", False),
    "CancelTask": ("cancel", False),
    "ListTasks": ("list", False),
    "GetExtendedAgentCard": ("card", False),
}

_HANDLERS: dict[str, Callable[[_Call, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "send": _send,
    "get": _get,
    "cancel": _cancel,
    "list": _list,
    "card": _card,
}
