"""`/threads`: conversations, their state and history."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from berth import serde
from berth.api import schemas, sse
from berth.api.deps import Components, components, page_headers, select, truthy, uuid_path
from berth.api.responses import JSONResponse
from berth.core import errors, ids
from berth.core.models import CancelAction, Thread
from berth.streaming.base import StreamEvent

router = APIRouter(prefix="/threads", tags=["threads"])


def public(thread: Thread) -> dict[str, Any]:
    out: dict[str, Any] = {
        "thread_id": thread.thread_id,
        "created_at": thread.created_at,
        "updated_at": thread.updated_at,
        "state_updated_at": thread.state_updated_at or thread.updated_at,
        "metadata": thread.metadata,
        "config": thread.config,
        "status": thread.status.value,
        "values": thread.values,
        "interrupts": thread.interrupts,
    }
    if thread.error is not None:
        out["error"] = thread.error
    return out


@router.post("")
async def create(body: schemas.ThreadCreate, c: Components = Depends(components)) -> Any:
    thread_id = uuid_path(body.thread_id, "thread_id") if body.thread_id else ids.new_id()
    metadata = dict(body.metadata or {})
    if body.graph_id:
        metadata["graph_id"] = body.graph_id
    if body.supersteps and metadata.get("graph_id") not in c.registry:
        raise errors.BadRequest("supersteps need a registered graph_id in the thread metadata")
    if body.supersteps and body.if_exists == "do_nothing":
        # An existing thread is returned untouched: its history must not grow.
        try:
            return public(await c.storage.threads.get(thread_id))
        except errors.NotFound:
            pass
    thread = await c.storage.threads.create(
        thread_id=thread_id,
        metadata=metadata,
        if_exists=body.if_exists,
        ttl=body.ttl.model_dump() if body.ttl else None,
    )
    if body.supersteps:
        await c.state.bulk_update(thread_id, [_updates(step) for step in body.supersteps])
        thread = await c.storage.threads.get(thread_id)
    return public(thread)


def _extract(item: Any, path: str) -> Any:
    """Follow `values.messages[-1]` through a thread; None where the path runs out."""
    for key, index in re.findall(r"([^.\[\]]+)|\[(-?\d+)\]", path):
        try:
            item = item[int(index)] if index else item[key]
        except (KeyError, IndexError, TypeError):
            return None
    return serde.to_jsonable(item)


def _updates(superstep: schemas.ThreadSuperstep) -> list[dict[str, Any]]:
    """One superstep's updates; a `command` stands in for `values` via its `update`."""
    out = []
    for update in superstep.updates:
        values = update.values
        if values is None and update.command:
            values = update.command.get("update")
        out.append({"values": values, "as_node": update.as_node})
    return out


@router.post("/search")
async def search(body: schemas.ThreadSearch, c: Components = Depends(components)) -> Any:
    found, total = await c.storage.threads.search(
        ids=body.ids,
        metadata=body.metadata,
        values=body.values,
        status=body.status,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    items = []
    for thread in found:
        item = public(thread)
        if body.extract:
            item["extracted"] = {
                alias: _extract(item, path) for alias, path in body.extract.items()
            }
        items.append(select(item, [*body.select, "extracted"] if body.select else None))
    return JSONResponse(
        serde.to_jsonable(items), headers=page_headers(total, body.offset, len(items))
    )


@router.post("/count")
async def count(body: schemas.ThreadCount, c: Components = Depends(components)) -> int:
    return await c.storage.threads.count(
        metadata=body.metadata, values=body.values, status=body.status
    )


@router.post("/prune")
async def prune(body: schemas.ThreadPrune, c: Components = Depends(components)) -> Any:
    pruned, in_flight = await c.storage.threads.prune(body.thread_ids, body.strategy)
    for run_id in in_flight:
        await c.broker.cancel(run_id, CancelAction.ROLLBACK)
    return {"pruned_count": pruned}


@router.api_route("/{thread_id}", methods=["GET", "HEAD"])
async def get(
    thread_id: str,
    include: list[str] | None = Query(None),
    c: Components = Depends(components),
) -> Any:
    thread_id = uuid_path(thread_id, "thread_id")
    # `include=ttl`, `include=a,b` or repeated
    wanted = {part.strip() for item in include or () for part in item.split(",")} - {""}
    if unknown := wanted - {"ttl"}:
        raise errors.InvalidInput(f"include takes only 'ttl', not {sorted(unknown)}")
    if not wanted:
        return public(await c.storage.threads.get(thread_id))
    thread, ttl = await c.storage.threads.get_with_ttl(thread_id)
    return {**public(thread), "ttl": ttl}


@router.patch("/{thread_id}")
async def patch(
    thread_id: str, body: schemas.ThreadPatch, request: Request, c: Components = Depends(components)
) -> Any:
    thread = await c.storage.threads.update(
        uuid_path(thread_id, "thread_id"),
        metadata=body.metadata,
        ttl=body.ttl.model_dump() if body.ttl else None,
    )
    if request.headers.get("prefer", "").lower() == "return=minimal":
        return Response(status_code=204)
    return public(thread)


@router.delete("/{thread_id}", status_code=204)
async def delete(thread_id: str, c: Components = Depends(components)) -> Response:
    in_flight = await c.storage.threads.delete(uuid_path(thread_id, "thread_id"))
    for run_id in in_flight:
        await c.broker.cancel(run_id, CancelAction.ROLLBACK)
    return Response(status_code=204)


@router.post("/{thread_id}/copy")
async def copy(thread_id: str, c: Components = Depends(components)) -> Any:
    return public(await c.storage.threads.copy(uuid_path(thread_id, "thread_id"), ids.new_id()))


def _select_state(state: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """Keep the requested ThreadState fields; `values.<key>` keeps one state key."""
    if not fields:
        return state
    keys = {f.partition(".")[0] for f in fields}
    value_keys = [f.partition(".")[2] for f in fields if f.startswith("values.")]
    out = {k: v for k, v in state.items() if k in keys}
    if value_keys and "values" not in fields and isinstance(state.get("values"), dict):
        out["values"] = {k: v for k, v in state["values"].items() if k in value_keys}
    return out


@router.api_route("/{thread_id}/state", methods=["GET", "HEAD"])
async def get_state(
    thread_id: str,
    subgraphs: str | None = None,
    select: list[str] | None = Query(None),
    c: Components = Depends(components),
) -> Any:
    state = await c.state.get(uuid_path(thread_id, "thread_id"), subgraphs=truthy(subgraphs))
    return _select_state(state, select)


@router.api_route("/{thread_id}/state/{checkpoint_id}", methods=["GET", "HEAD"])
async def get_state_at(
    thread_id: str,
    checkpoint_id: str,
    subgraphs: str | None = None,
    select: list[str] | None = Query(None),
    c: Components = Depends(components),
) -> Any:
    state = await c.state.get(
        uuid_path(thread_id, "thread_id"),
        checkpoint_id=uuid_path(checkpoint_id, "checkpoint_id"),
        subgraphs=truthy(subgraphs),
    )
    return _select_state(state, select)


@router.post("/{thread_id}/state/checkpoint")
async def post_state_at(
    thread_id: str, body: schemas.StateAtCheckpoint, c: Components = Depends(components)
) -> Any:
    state = await c.state.get(
        uuid_path(thread_id, "thread_id"), checkpoint=body.checkpoint, subgraphs=body.subgraphs
    )
    return _select_state(state, body.select)


@router.post("/{thread_id}/state")
async def update_state(
    thread_id: str, body: schemas.StateUpdate, c: Components = Depends(components)
) -> Any:
    return await c.state.update(
        uuid_path(thread_id, "thread_id"),
        values=body.values,
        as_node=body.as_node,
        checkpoint=body.checkpoint,
        checkpoint_id=body.checkpoint_id,
    )


@router.api_route("/{thread_id}/history", methods=["GET", "HEAD"])
async def get_history(
    thread_id: str,
    limit: int = Query(1, ge=1, le=10_000),
    before: str | None = None,
    select: list[str] | None = Query(None),
    c: Components = Depends(components),
) -> Any:
    states = await c.state.history(
        uuid_path(thread_id, "thread_id"),
        limit=limit,
        before=before,
        metadata=None,
        checkpoint=None,
    )
    return [_select_state(s, select) for s in states]


@router.post("/{thread_id}/history")
async def post_history(
    thread_id: str, body: schemas.HistoryQuery, c: Components = Depends(components)
) -> Any:
    states = await c.state.history(
        uuid_path(thread_id, "thread_id"),
        limit=body.limit,
        before=body.before,
        metadata=body.metadata,
        checkpoint=body.checkpoint,
    )
    return [_select_state(s, body.select) for s in states]


# -- the thread's stream (contract §6.6) --------------------------------------------

THREAD_MODES = ("run_modes", "lifecycle", "state_update")
_LAST_EVENT_ID = re.compile(r"(\d+)(?:-(\d+|\*))?|-")
#: the largest sequence number of a Redis stream id: `N-*` is after every event of ms N
_MAX_SEQ = 2**64 - 1


def _resume_after(header: str | None) -> str | None:
    """The event id to replay after: `-` from the start, `N` as `N-0`, `N-*` past ms N."""
    if header is None:
        return None
    match = _LAST_EVENT_ID.fullmatch(header.strip())
    if match is None:
        raise errors.InvalidInput(
            f"Last-Event-ID must look like '<ms>-<seq>' or '-', not {header!r}"
        )
    if header.strip() == "-":
        return "0-0"
    ms, seq = match.groups()
    return f"{ms}-{_MAX_SEQ if seq == '*' else int(seq or 0)}"


def _thread_modes(values: list[str]) -> set[str]:
    modes = {part.strip() for value in values for part in value.split(",")} - {""}
    if unknown := modes - set(THREAD_MODES):
        raise errors.InvalidInput(
            f"stream modes must be among {list(THREAD_MODES)}, not {sorted(unknown)}"
        )
    return modes or {"run_modes"}


def _thread_filter(modes: set[str]) -> Any:
    """`run_modes`: every run event and `run_done`; `lifecycle`: only `metadata` (run
    start and `run_done`); `state_update`: state writes."""

    def accept(event: str) -> bool:
        if event == "state_update":
            return "state_update" in modes
        return "run_modes" in modes or ("lifecycle" in modes and event == "metadata")

    return accept


@router.api_route("/{thread_id}/stream", methods=["GET", "HEAD"])
async def join_thread_stream(
    thread_id: str,
    request: Request,
    stream_modes: list[str] | None = Query(None),
    stream_mode: list[str] | None = Query(None),
    c: Components = Depends(components),
) -> Any:
    thread_id = uuid_path(thread_id, "thread_id")
    accept = _thread_filter(_thread_modes([*(stream_modes or ()), *(stream_mode or ())]))
    after = _resume_after(request.headers.get("last-event-id"))
    await c.storage.threads.get(thread_id)  # 404 for an unknown thread
    if request.method == "HEAD":
        # The stream never ends: HEAD answers with its headers alone.
        return Response(media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
    events: AsyncIterator[StreamEvent] = c.broker.subscribe_thread(thread_id, after=after)

    async def body() -> AsyncIterator[bytes]:
        async for event in events:
            if accept(event.event):
                yield sse.frame(event, with_id=True)

    return sse.response(body(), keepalive=c.settings.keepalive_interval)
