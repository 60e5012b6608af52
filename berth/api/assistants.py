"""`/assistants`: configured versions of the project's graphs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from berth import serde
from berth.api import schemas
from berth.api.deps import Components, components, page_headers, select, uuid_path
from berth.api.responses import JSONResponse
from berth.core import errors, ids
from berth.core.models import Assistant
from berth.core.runs import resolve_assistant_id

router = APIRouter(prefix="/assistants", tags=["assistants"])


def public(assistant: Assistant) -> dict[str, Any]:
    return {
        "assistant_id": assistant.assistant_id,
        "graph_id": assistant.graph_id,
        "name": assistant.name,
        "description": assistant.description,
        "config": assistant.config,
        "context": assistant.context,
        "metadata": assistant.metadata,
        "version": assistant.version,
        "created_at": assistant.created_at,
        "updated_at": assistant.updated_at,
    }


def _mirror(
    config: dict[str, Any] | None, context: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keep `config.configurable` and `context` the same (the two spellings of one thing)."""
    config = dict(config or {})
    configurable = config.get("configurable") or {}
    if configurable and context:
        raise errors.BadRequest(
            "Cannot specify both configurable and context. Prefer setting context alone."
        )
    context = context or configurable
    config["configurable"] = context
    return config, dict(context)


async def _get(c: Components, assistant_id: str) -> Assistant:
    assistant = await c.storage.assistants.get(uuid_path(assistant_id, "assistant_id"))
    if assistant.graph_id not in c.registry:
        raise errors.NotFound(f"Assistant {assistant_id} not found")
    return assistant


@router.post("")
async def create(body: schemas.AssistantCreate, c: Components = Depends(components)) -> Any:
    if body.graph_id not in c.registry:
        raise errors.NotFound(f"Graph {body.graph_id!r} not found")
    config, context = _mirror(body.config, body.context)
    assistant_id = body.assistant_id or ids.new_id()
    uuid_path(assistant_id, "assistant_id")
    assistant = await c.storage.assistants.create(
        assistant_id=assistant_id,
        graph_id=body.graph_id,
        name=body.name or "Untitled",
        description=body.description,
        config=config,
        context=context,
        metadata=body.metadata or {},
        if_exists=body.if_exists,
    )
    return public(assistant)


@router.post("/search")
async def search(body: schemas.AssistantSearch, c: Components = Depends(components)) -> Any:
    found, total = await c.storage.assistants.search(
        graph_ids=c.registry.ids,
        graph_id=body.graph_id,
        metadata=body.metadata,
        name=body.name,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    items = [select(public(a), body.select) for a in found]
    return JSONResponse(
        serde.to_jsonable(items), headers=page_headers(total, body.offset, len(items))
    )


@router.post("/count")
async def count(body: schemas.AssistantCount, c: Components = Depends(components)) -> int:
    return await c.storage.assistants.count(
        graph_ids=c.registry.ids, graph_id=body.graph_id, metadata=body.metadata, name=body.name
    )


@router.api_route("/{assistant_id}", methods=["GET", "HEAD"])
async def get(assistant_id: str, c: Components = Depends(components)) -> Any:
    return public(await _get(c, assistant_id))


@router.patch("/{assistant_id}")
async def patch(
    assistant_id: str, body: schemas.AssistantPatch, c: Components = Depends(components)
) -> Any:
    current = await _get(c, assistant_id)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude_none=True)
    if "graph_id" in changes and changes["graph_id"] not in c.registry:
        raise errors.NotFound(f"Graph {changes['graph_id']!r} not found")
    if "config" in changes or "context" in changes:
        config, context = _mirror(
            changes.get("config", current.config if "context" not in changes else {}),
            changes.get("context"),
        )
        changes["config"], changes["context"] = config, context
    return public(await c.storage.assistants.update(current.assistant_id, changes))


@router.delete("/{assistant_id}", status_code=204)
async def delete(
    assistant_id: str, delete_threads: bool = False, c: Components = Depends(components)
) -> Response:
    assistant_id = uuid_path(assistant_id, "assistant_id")
    await c.storage.assistants.delete(assistant_id)
    if delete_threads:
        threads, _ = await c.storage.threads.search(
            metadata={"assistant_id": assistant_id}, limit=10_000
        )
        for thread in threads:
            await c.storage.threads.delete(thread.thread_id)
    return Response(status_code=204)


@router.post("/{assistant_id}/versions")
async def versions(
    assistant_id: str, body: schemas.VersionsSearch, c: Components = Depends(components)
) -> Any:
    found = await c.storage.assistants.versions(
        uuid_path(assistant_id, "assistant_id"),
        metadata=body.metadata,
        limit=body.limit,
        offset=body.offset,
    )
    if not found and body.offset == 0 and not body.metadata:
        raise errors.NotFound(f"Assistant {assistant_id} not found")
    return found


@router.post("/{assistant_id}/latest")
async def set_latest(
    assistant_id: str, body: schemas.SetLatest, c: Components = Depends(components)
) -> Any:
    return public(
        await c.storage.assistants.set_latest(uuid_path(assistant_id, "assistant_id"), body.version)
    )


async def _graph(c: Components, assistant_id: str) -> Any:
    resolved = resolve_assistant_id(assistant_id, c.registry)
    return await _get(c, resolved)


@router.api_route("/{assistant_id}/graph", methods=["GET", "HEAD"])
async def graph(assistant_id: str, xray: str = "false", c: Components = Depends(components)) -> Any:
    assistant = await _graph(c, assistant_id)
    depth: int | bool = True if xray.lower() in ("true", "1", "yes") else False
    if xray.isdigit() and xray not in ("0", "1"):
        depth = int(xray)
    async with c.registry.get(assistant.graph_id).build(assistant.config, checkpointer=None) as g:
        drawable = await g.aget_graph(config=assistant.config, xray=depth)
        return serde.to_jsonable(drawable.to_json())


@router.api_route("/{assistant_id}/schemas", methods=["GET", "HEAD"])
async def graph_schemas(assistant_id: str, c: Components = Depends(components)) -> Any:
    assistant = await _graph(c, assistant_id)
    async with c.registry.get(assistant.graph_id).build(assistant.config, checkpointer=None) as g:
        return {"graph_id": assistant.graph_id, **_schemas(g)}


def _schemas(g: Any) -> dict[str, Any]:
    def attempt(fn: Any) -> Any:
        try:
            return fn()
        except Exception:
            return None

    return {
        "input_schema": attempt(g.get_input_jsonschema),
        "output_schema": attempt(g.get_output_jsonschema),
        "state_schema": attempt(
            lambda: g.get_state_jsonschema() if hasattr(g, "get_state_jsonschema") else None
        ),
        "config_schema": attempt(g.get_config_jsonschema),
        "context_schema": attempt(g.get_context_jsonschema),
    }


@router.api_route("/{assistant_id}/subgraphs", methods=["GET", "HEAD"])
@router.api_route("/{assistant_id}/subgraphs/{namespace}", methods=["GET", "HEAD"])
async def subgraphs(
    assistant_id: str,
    namespace: str | None = None,
    recurse: bool = False,
    c: Components = Depends(components),
) -> Any:
    assistant = await _graph(c, assistant_id)
    async with c.registry.get(assistant.graph_id).build(assistant.config, checkpointer=None) as g:
        return {
            ns: _schemas(sub)
            async for ns, sub in g.aget_subgraphs(namespace=namespace, recurse=recurse)
        }
