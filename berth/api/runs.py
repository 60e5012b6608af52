"""`/runs` and `/threads/{id}/runs`: create, stream, wait, join and cancel runs."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from berth import tracing
from berth.api import schemas, sse
from berth.api.deps import Components, components, truthy, uuid_path
from berth.api.responses import JSONResponse
from berth.core import errors, results
from berth.core.models import CancelAction, OnDisconnect, Run, RunStatus
from berth.core.runs import RunRequest
from berth.streaming.base import StreamEvent

router = APIRouter(tags=["runs"])


#: the body fields a RunRequest takes as they are (read off the model: no dump, no copy)
_REQUEST_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(RunRequest)
    if f.name in schemas.RunCreate.model_fields and f.name != "durability"
)


def _request(body: schemas.RunCreate) -> RunRequest:
    values = {name: getattr(body, name) for name in _REQUEST_FIELDS}
    return RunRequest(**values, durability=body.resolved_durability())


def _run_json(run: Run, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(run.public(), status_code=status, headers=headers)


# -- creation ------------------------------------------------------------------


def _path(run: Run, thread_id: str | None) -> str:
    """The run's URL: under its thread when the request named one."""
    return f"/threads/{run.thread_id}/runs/{run.run_id}" if thread_id else f"/runs/{run.run_id}"


async def _create(
    c: Components, thread_id: str | None, body: schemas.RunCreate, http: Request
) -> Run:
    return await c.runs.create(
        thread_id,
        _request(body),
        trace=tracing.incoming(http.headers),
        server_configurable=c.headers.select(http.headers.items()),
    )


async def _start(
    c: Components, thread_id: str | None, request: RunRequest, http: Request
) -> tuple[Run, AsyncIterator[StreamEvent]]:
    """Create a run with its events attached (`results.start`), as `_create` does."""
    return await results.start(
        c.runs,
        c.broker,
        thread_id,
        request,
        trace=tracing.incoming(http.headers),
        server_configurable=c.headers.select(http.headers.items()),
    )


@router.post("/threads/{thread_id}/runs")
async def create(
    thread_id: str, body: schemas.RunCreate, http: Request, c: Components = Depends(components)
) -> Any:
    run = await _create(c, uuid_path(thread_id, "thread_id"), body, http)
    return _run_json(run, headers={"Content-Location": _path(run, thread_id)})


@router.post("/runs")
async def create_stateless(
    body: schemas.RunCreate, http: Request, c: Components = Depends(components)
) -> Any:
    run = await _create(c, None, body, http)
    return _run_json(run, headers={"Content-Location": _path(run, None)})


@router.post("/runs/batch")
async def create_batch(
    bodies: list[schemas.RunCreate], http: Request, c: Components = Depends(components)
) -> Any:
    runs = [await _create(c, None, body, http) for body in bodies]
    return JSONResponse([run.public() for run in runs])


# -- streaming -----------------------------------------------------------------


async def _stream_new(
    c: Components, thread_id: str | None, body: schemas.RunCreate, http: Request
) -> Response:
    request = _request(body)
    run, events = await _start(c, thread_id, request, http)
    base = _path(run, thread_id)
    headers = {"Location": f"{base}/stream", "Content-Location": base}
    return _sse(
        c,
        run,
        events,
        modes=request.stream_mode,
        with_ids=request.stream_resumable,
        cancel_on_disconnect=body.on_disconnect == OnDisconnect.CANCEL,
        headers=headers,
    )


def _sse(
    c: Components,
    run: Run,
    events: AsyncIterator[StreamEvent],
    *,
    modes: list[str] | None,
    with_ids: bool,
    cancel_on_disconnect: bool,
    headers: dict[str, str] | None = None,
) -> Response:
    accept = sse.mode_filter(modes)
    done = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal done
        async for event in events:
            if accept(event.event):
                yield sse.frame(event, with_id=with_ids)
        done = True

    async def on_close() -> None:
        if not done and cancel_on_disconnect:
            await c.runs.cancel([run.run_id], CancelAction.INTERRUPT)

    return sse.response(
        body(), headers=headers, keepalive=c.settings.keepalive_interval, on_close=on_close
    )


@router.post("/threads/{thread_id}/runs/stream")
async def stream(
    thread_id: str, body: schemas.RunCreate, http: Request, c: Components = Depends(components)
) -> Any:
    return await _stream_new(c, uuid_path(thread_id, "thread_id"), body, http)


@router.post("/runs/stream")
async def stream_stateless(
    body: schemas.RunCreate, http: Request, c: Components = Depends(components)
) -> Any:
    return await _stream_new(c, None, body, http)


def _stream_modes(values: list[str]) -> list[str] | None:
    modes: list[str] = []
    for value in values:
        if value.startswith("["):
            try:
                modes.extend(orjson.loads(value))
            except orjson.JSONDecodeError:
                raise errors.InvalidInput(f"stream_mode is not a JSON list: {value!r}") from None
        else:
            modes.extend(v for v in value.split(",") if v)
    return [m.split("|", 1)[0] for m in modes] or None


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_stream(
    thread_id: str,
    run_id: str,
    request: Request,
    stream_mode: list[str] = Query(default_factory=list),
    cancel_on_disconnect: str | None = None,
    c: Components = Depends(components),
) -> Any:
    run = await c.storage.runs.get(uuid_path(run_id, "run_id"), uuid_path(thread_id, "thread_id"))
    last_id = request.headers.get("last-event-id")
    after = None if last_id is None else ("0-0" if last_id in ("-", "-1", "0") else last_id)
    known = await c.broker.is_finished(run.run_id) is not None
    events = c.broker.subscribe(run.run_id, after=after)
    run = await c.storage.runs.get(run.run_id)
    if run.status.is_final and (not known or after is None):
        await c.broker.finish(run.run_id, keep=known)
        events = _empty()
    return _sse(
        c,
        run,
        events,
        modes=_stream_modes(stream_mode),
        with_ids=bool(run.kwargs.get("resumable")),
        cancel_on_disconnect=truthy(cancel_on_disconnect),
    )


async def _empty() -> AsyncIterator[StreamEvent]:
    return
    yield


# -- waiting -------------------------------------------------------------------


async def _wait_response(
    c: Components,
    run: Run,
    events: AsyncIterator[StreamEvent] | None,
    *,
    cancel_on_disconnect: bool,
    headers: dict[str, str] | None = None,
) -> Response:
    result = asyncio.ensure_future(results.final_body(c.storage, run, events))
    if not cancel_on_disconnect:
        # Most runs end well within a heartbeat period: answer with a plain response
        # then, and only stream heartbeats for the slow ones.
        finished, _ = await asyncio.wait({result}, timeout=c.settings.keepalive_interval)
        if finished:
            return Response(result.result(), media_type="application/json", headers=headers)

    async def body() -> AsyncIterator[bytes]:
        yield await asyncio.shield(result)

    async def on_close() -> None:
        if not result.done():
            result.cancel()
            if cancel_on_disconnect:
                await c.runs.cancel([run.run_id], CancelAction.INTERRUPT)

    return sse.response(
        body(),
        headers=headers,
        keepalive=c.settings.keepalive_interval,
        on_close=on_close,
        media_type="application/json",
        heartbeat=b"\n",
    )


async def _wait_new(
    c: Components, thread_id: str | None, body: schemas.RunCreate, http: Request
) -> Response:
    request = _request(body)
    if "values" not in request.stream_mode:
        # The body is the last `values` event; a stateless run's thread is gone by then.
        request = dataclasses.replace(request, stream_mode=[*request.stream_mode, "values"])
    run, events = await _start(c, thread_id, request, http)
    base = _path(run, thread_id)
    return await _wait_response(
        c,
        run,
        events,
        cancel_on_disconnect=body.on_disconnect == OnDisconnect.CANCEL,
        headers={"Location": f"{base}/join", "Content-Location": base},
    )


@router.post("/threads/{thread_id}/runs/wait")
async def wait(
    thread_id: str, body: schemas.RunCreate, http: Request, c: Components = Depends(components)
) -> Any:
    return await _wait_new(c, uuid_path(thread_id, "thread_id"), body, http)


@router.post("/runs/wait")
async def wait_stateless(
    body: schemas.RunCreate, http: Request, c: Components = Depends(components)
) -> Any:
    return await _wait_new(c, None, body, http)


async def _join_events(c: Components, run: Run) -> AsyncIterator[StreamEvent] | None:
    known = await c.broker.is_finished(run.run_id) is not None
    events = c.broker.subscribe(run.run_id, after="0-0")
    current = await c.storage.runs.get(run.run_id)
    if current.status.is_final and not known:
        await c.broker.finish(run.run_id, keep=False)
        return None
    return events


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join(
    thread_id: str,
    run_id: str,
    cancel_on_disconnect: str | None = None,
    c: Components = Depends(components),
) -> Any:
    run = await c.storage.runs.get(uuid_path(run_id, "run_id"), uuid_path(thread_id, "thread_id"))
    events = await _join_events(c, run)
    return await _wait_response(c, run, events, cancel_on_disconnect=truthy(cancel_on_disconnect))


# -- reading and deleting --------------------------------------------------------


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str,
    limit: int = Query(10, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    status: RunStatus | None = None,
    select: list[str] = Query(default_factory=list),
    c: Components = Depends(components),
) -> Any:
    runs = await c.storage.runs.list(
        uuid_path(thread_id, "thread_id"),
        limit=limit,
        offset=offset,
        status=status.value if status else None,
    )
    items = [run.public() for run in runs]
    if select:
        items = [{k: v for k, v in item.items() if k in select} for item in items]
    return JSONResponse(items)


@router.api_route("/threads/{thread_id}/runs/{run_id}", methods=["GET", "HEAD"])
async def get(thread_id: str, run_id: str, c: Components = Depends(components)) -> Any:
    return _run_json(
        await c.storage.runs.get(uuid_path(run_id, "run_id"), uuid_path(thread_id, "thread_id"))
    )


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete(thread_id: str, run_id: str, c: Components = Depends(components)) -> Response:
    await c.runs.delete(uuid_path(run_id, "run_id"), uuid_path(thread_id, "thread_id"))
    return Response(status_code=204)


# -- cancellation ----------------------------------------------------------------


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel(
    thread_id: str,
    run_id: str,
    wait: str | None = None,
    action: CancelAction = CancelAction.INTERRUPT,
    c: Components = Depends(components),
) -> Any:
    run = await c.storage.runs.get(uuid_path(run_id, "run_id"), uuid_path(thread_id, "thread_id"))
    if run.status.is_final:
        raise errors.NotFound(f"Run {run_id} is {run.status.value}: nothing to cancel")
    events = await _join_events(c, run) if truthy(wait) else None
    await c.runs.cancel([run.run_id], action)
    if events is None:
        return Response(status_code=202)
    return await _wait_response(c, run, events, cancel_on_disconnect=False)


@router.post("/runs/cancel", status_code=204)
async def cancel_many(
    body: schemas.RunCancelMany,
    action: CancelAction = CancelAction.INTERRUPT,
    c: Components = Depends(components),
) -> Response:
    if body.run_ids:
        if not body.thread_id:
            raise errors.InvalidInput("run_ids needs thread_id")
        wanted = {uuid_path(r, "run_ids") for r in body.run_ids}
        on_thread = await c.storage.runs.in_flight(thread_id=uuid_path(body.thread_id, "thread_id"))
        # Only the named thread's runs: an id from another thread is not cancelled.
        run_ids = [r.run_id for r in on_thread if r.run_id in wanted]
    elif body.status:
        status = None if body.status == "all" else body.status
        run_ids = [r.run_id for r in await c.storage.runs.in_flight(status=status)]
    elif body.thread_id:
        thread = uuid_path(body.thread_id, "thread_id")
        run_ids = [r.run_id for r in await c.storage.runs.in_flight(thread_id=thread)]
    else:
        raise errors.InvalidInput("give status, or thread_id with run_ids")
    await c.runs.cancel(run_ids, action)
    return Response(status_code=204)
