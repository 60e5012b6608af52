"""`/assistants`: configured versions of the project's graphs."""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Depends, Response
from langchain_core.runnables import RunnableConfig

from berth import serde
from berth.api import schemas
from berth.api.deps import Components, components, page_headers, select, uuid_path
from berth.api.responses import JSONResponse
from berth.core import errors, ids
from berth.core.models import Assistant, CancelAction
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
    context = _client_keys(context or configurable)
    config["configurable"] = context
    return config, dict(context)


def _client_keys(values: dict[str, Any]) -> dict[str, Any]:
    """Drop keys the server sets on each run, so an assistant cannot forge them."""
    return {
        k: v
        for k, v in values.items()
        if k != "langgraph_request_id"
        and not k.startswith("langgraph_auth_")
        and not (k.startswith("__") and k.endswith("__"))
    }


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
        if "config" in changes:
            config = changes["config"]
            if "context" not in changes and not config.get("configurable"):
                # A config without `configurable` leaves the context as it was.
                config = {**config, "configurable": current.context}
        else:
            # New context alone keeps the rest of the config (tags, recursion_limit…).
            config = {**current.config, "configurable": {}}
        changes["config"], changes["context"] = _mirror(config, changes.get("context"))
    return public(await c.storage.assistants.update(current.assistant_id, changes))


@router.delete("/{assistant_id}", status_code=204)
async def delete(
    assistant_id: str, delete_threads: bool = False, c: Components = Depends(components)
) -> Response:
    assistant_id = uuid_path(assistant_id, "assistant_id")
    in_flight = await c.storage.assistants.delete(assistant_id)
    if in_flight:
        # Its runs cannot go on without it; stop them and keep what they wrote.
        await c.runs.cancel(in_flight, CancelAction.INTERRUPT)
    while delete_threads:
        threads, _ = await c.storage.threads.search(
            metadata={"assistant_id": assistant_id}, limit=1000
        )
        if not threads:
            break
        for thread in threads:
            try:
                stopped = await c.storage.threads.delete(thread.thread_id)
            except errors.NotFound:
                continue  # deleted meanwhile
            for run_id in stopped:
                await c.broker.cancel(run_id, CancelAction.ROLLBACK)
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


async def _graph(c: Components, assistant_id: str) -> Assistant:
    resolved = resolve_assistant_id(assistant_id, c.registry)
    return await _get(c, resolved)


@router.api_route("/{assistant_id}/graph", methods=["GET", "HEAD"])
async def graph(assistant_id: str, xray: str = "false", c: Components = Depends(components)) -> Any:
    assistant = await _graph(c, assistant_id)
    depth: int | bool = True if xray.lower() in ("true", "1", "yes") else False
    if xray.isdigit() and xray not in ("0", "1"):
        depth = int(xray)
    async with c.registry.get(assistant.graph_id).build(assistant.config, checkpointer=None) as g:
        # A stored assistant config is a RunnableConfig serialised as plain JSON.
        config = cast(RunnableConfig, assistant.config)
        drawable = await g.aget_graph(config=config, xray=depth)
        return serde.to_jsonable(_drawn(drawable.to_json()))


def _drawn(drawn: dict[str, Any]) -> dict[str, Any]:
    """Give every node `id`, `type` and `data`, as clients index all three.

    langchain-core omits `data` for nodes without one (`__end__`); the SDK documents
    the entry and exit nodes as `{"type": "schema", "data": "__start__"}`.
    """
    nodes = []
    for node in drawn.get("nodes", []):
        node = dict(node)
        if node["id"] in ("__start__", "__end__"):
            node["type"], node["data"] = "schema", node["id"]
        node.setdefault("type", "unknown")
        node.setdefault("data", node["id"])
        nodes.append(node)
    return {**drawn, "nodes": nodes}


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
        "state_schema": attempt(lambda: _state_jsonschema(g)),
        "config_schema": attempt(g.get_config_jsonschema),
        "context_schema": attempt(g.get_context_jsonschema),
    }


def _state_jsonschema(g: Any) -> dict[str, Any] | None:
    """The JSON schema of a StateGraph's full state (inputs, outputs and private keys)."""
    if hasattr(g, "get_state_jsonschema"):
        return g.get_state_jsonschema()  # type: ignore[no-any-return]
    builder = getattr(g, "builder", None)
    if builder is None or getattr(builder, "state_schema", None) is None:
        return None
    # langgraph builds its input/output schemas with this helper; the state schema is
    # the same construction over the builder's state type.
    from langgraph.graph.state import _get_json_schema

    return _get_json_schema(
        typ=builder.state_schema,
        schemas=builder.schemas,
        channels=builder.channels,
        name=g.get_name("State"),
    )


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
