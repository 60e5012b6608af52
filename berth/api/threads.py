"""`/threads`: conversations, their state and history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from berth import serde
from berth.api import schemas
from berth.api.deps import Components, components, page_headers, select, truthy, uuid_path
from berth.api.responses import JSONResponse
from berth.core import errors, ids
from berth.core.models import CancelAction, Thread

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
    thread = await c.storage.threads.create(
        thread_id=thread_id, metadata=metadata, if_exists=body.if_exists
    )
    for superstep in body.supersteps or []:
        for update in superstep.get("updates", []):
            await c.state.update(
                thread_id,
                values=update.get("values"),
                as_node=update.get("as_node"),
                checkpoint=None,
                checkpoint_id=None,
            )
    if body.supersteps:
        thread = await c.storage.threads.get(thread_id)
    return public(thread)


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
    items = [select(public(t), body.select) for t in found]
    return JSONResponse(
        serde.to_jsonable(items), headers=page_headers(total, body.offset, len(items))
    )


@router.post("/count")
async def count(body: schemas.ThreadCount, c: Components = Depends(components)) -> int:
    return await c.storage.threads.count(
        metadata=body.metadata, values=body.values, status=body.status
    )


@router.api_route("/{thread_id}", methods=["GET", "HEAD"])
async def get(thread_id: str, c: Components = Depends(components)) -> Any:
    return public(await c.storage.threads.get(uuid_path(thread_id, "thread_id")))


@router.patch("/{thread_id}")
async def patch(
    thread_id: str, body: schemas.ThreadPatch, request: Request, c: Components = Depends(components)
) -> Any:
    thread = await c.storage.threads.update(
        uuid_path(thread_id, "thread_id"), metadata=body.metadata
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


@router.api_route("/{thread_id}/state", methods=["GET", "HEAD"])
async def get_state(
    thread_id: str, subgraphs: str | None = None, c: Components = Depends(components)
) -> Any:
    return await c.state.get(uuid_path(thread_id, "thread_id"), subgraphs=truthy(subgraphs))


@router.api_route("/{thread_id}/state/{checkpoint_id}", methods=["GET", "HEAD"])
async def get_state_at(
    thread_id: str,
    checkpoint_id: str,
    subgraphs: str | None = None,
    c: Components = Depends(components),
) -> Any:
    return await c.state.get(
        uuid_path(thread_id, "thread_id"),
        checkpoint_id=uuid_path(checkpoint_id, "checkpoint_id"),
        subgraphs=truthy(subgraphs),
    )


@router.post("/{thread_id}/state/checkpoint")
async def post_state_at(
    thread_id: str, body: schemas.StateAtCheckpoint, c: Components = Depends(components)
) -> Any:
    return await c.state.get(
        uuid_path(thread_id, "thread_id"), checkpoint=body.checkpoint, subgraphs=body.subgraphs
    )


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
    limit: int = 1,
    before: str | None = None,
    c: Components = Depends(components),
) -> Any:
    if limit < 1:
        raise errors.InvalidInput("limit must be at least 1")
    return await c.state.history(
        uuid_path(thread_id, "thread_id"),
        limit=limit,
        before=before,
        metadata=None,
        checkpoint=None,
    )


@router.post("/{thread_id}/history")
async def post_history(
    thread_id: str, body: schemas.HistoryQuery, c: Components = Depends(components)
) -> Any:
    return await c.state.history(
        uuid_path(thread_id, "thread_id"),
        limit=body.limit,
        before=body.before,
        metadata=body.metadata,
        checkpoint=body.checkpoint,
    )
