"""MCP tools: one per visible assistant, listed and called through Berth's own run path.

Contract §11: a tool's name is the assistant's name normalised for MCP, its input schema
is the graph's input schema with LangChain message lists turned into a plain string, and
calling it is a stateless wait run whose final state comes back as JSON text.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from berth import serde
from berth.core import results
from berth.core.runs import RunRequest

if TYPE_CHECKING:
    from berth.api.deps import Components
    from berth.core.models import Assistant

#: tools/list page size; the cursor is an offset into the visible assistants
PAGE_SIZE = 100
MAX_NAME_LENGTH = 128
DEFAULT_DESCRIPTION = "Run the LangGraph assistant {name!r} and return its final state."
MESSAGES_DESCRIPTION = "A message to send; it becomes the user message of the run."

_SCAN_PAGE = 1000
_WHITESPACE = re.compile(r"\s")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]")
#: the LangChain message classes (and their chunks) pydantic puts in `$defs`
_MESSAGE_DEF = re.compile(r"^(AI|Human|Chat|System|Function|Tool|Remove|Base|Any)Message(Chunk)?$")
_REF_PREFIX = "#/$defs/"


class ToolNotFound(Exception):
    """No single tool answers to the name (unknown or ambiguous): JSON-RPC -32602."""


def tool_name(assistant_name: str) -> str:
    """MCP tool names allow `[A-Za-z0-9_.-]` only: whitespace becomes `_`, the rest goes."""
    return _NOT_ALLOWED.sub("", _WHITESPACE.sub("_", assistant_name))[:MAX_NAME_LENGTH]


async def _all_assistants(c: Components) -> list[Assistant]:
    # Oldest first, so a graph's default assistant keeps its name when a later one
    # normalises to the same tool name.
    found: list[Assistant] = []
    while True:
        page, total = await c.storage.assistants.search(
            graph_ids=c.registry.ids,
            limit=_SCAN_PAGE,
            offset=len(found),
            sort_by="created_at",
            sort_order="asc",
        )
        found.extend(page)
        if not page or len(found) >= total:
            return found


def _first_by_name(assistants: list[Assistant]) -> Iterator[tuple[int, str, Assistant]]:
    """`(index, tool name, assistant)` for each assistant whose name is a new tool name."""
    seen: set[str] = set()
    for index, assistant in enumerate(assistants):
        name = tool_name(assistant.name)
        if name and name not in seen:
            seen.add(name)
            yield index, name, assistant


async def list_tools(c: Components, offset: int) -> dict[str, Any]:
    """One page of tools starting at assistant `offset` (the integer behind the cursor)."""
    assistants = await _all_assistants(c)
    end = offset + PAGE_SIZE
    tools = []
    for index, name, assistant in _first_by_name(assistants):
        if offset <= index < end:
            schema, _ = await input_schema(c, assistant)
            tools.append(
                {
                    "name": name,
                    "title": assistant.name,
                    "description": assistant.description
                    or DEFAULT_DESCRIPTION.format(name=assistant.name),
                    "inputSchema": schema,
                }
            )
    result: dict[str, Any] = {"tools": tools}
    if end < len(assistants):
        result["nextCursor"] = str(end)
    return result


async def find(c: Components, name: str) -> Assistant:
    matches = [a for a in await _all_assistants(c) if tool_name(a.name) == name]
    if not matches:
        raise ToolNotFound(f"Unknown tool: {name}")
    if len(matches) > 1:
        raise ToolNotFound(f"Ambiguous tool name {name!r}: {len(matches)} assistants share it")
    return matches[0]


async def input_schema(c: Components, assistant: Assistant) -> tuple[dict[str, Any], set[str]]:
    """The tool's input schema and the names of the fields that were message lists."""
    graph = c.registry.get(assistant.graph_id)
    try:
        async with graph.build(assistant.config, checkpointer=None) as g:
            raw = g.get_input_jsonschema()
    except Exception:
        # A graph whose schema cannot be drawn is still callable with free-form input.
        raw = None
    return simplify_schema(raw)


def simplify_schema(raw: dict[str, Any] | None) -> tuple[dict[str, Any], set[str]]:
    """Turn message-list fields into strings and drop the `$defs` nothing refers to any more.

    LangChain message definitions are huge and no MCP client can fill them in; a tool
    caller sends text, which `call_tool` turns back into a user message.
    """
    schema = copy.deepcopy(raw) if isinstance(raw, dict) else {}
    defs: dict[str, Any] = schema.pop("$defs", None) or {}
    message_fields: set[str] = set()
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for field, prop in list(properties.items()):
            if _is_message_list(prop, defs):
                message_fields.add(field)
                properties[field] = {
                    "type": "string",
                    "title": prop.get("title", field),
                    "description": MESSAGES_DESCRIPTION,
                }
    kept = _reachable(schema, defs)
    if kept:
        schema["$defs"] = {k: v for k, v in defs.items() if k in kept}
    schema["type"] = "object"
    schema.setdefault("properties", {})
    return schema, message_fields


def _is_message_list(prop: Any, defs: dict[str, Any]) -> bool:
    if not isinstance(prop, dict):
        return False
    if prop.get("type") == "array" and _mentions_message(prop.get("items"), defs, set()):
        return True
    # Optional lists arrive as `anyOf: [{array}, {null}]`.
    return any(_is_message_list(option, defs) for option in prop.get("anyOf", []))


def _mentions_message(node: Any, defs: dict[str, Any], visiting: set[str]) -> bool:
    if isinstance(node, list):
        return any(_mentions_message(n, defs, visiting) for n in node)
    if not isinstance(node, dict):
        return False
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        name = ref[len(_REF_PREFIX) :]
        if _MESSAGE_DEF.match(name):
            return True
        if name in visiting:
            return False
        return _mentions_message(defs.get(name), defs, visiting | {name})
    return any(
        _mentions_message(node.get(key), defs, visiting) for key in ("anyOf", "oneOf", "allOf")
    )


def _reachable(schema: Any, defs: dict[str, Any]) -> set[str]:
    kept: set[str] = set()
    pending = list(_refs(schema))
    while pending:
        name = pending.pop()
        if name in kept or name not in defs:
            continue
        kept.add(name)
        pending.extend(_refs(defs[name]))
    return kept


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            yield ref[len(_REF_PREFIX) :]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


async def call_tool(
    c: Components, name: str, arguments: dict[str, Any], context: dict[str, Any] | None
) -> dict[str, Any]:
    """Run the tool's assistant to the end; failures are `isError` results, not raises.

    Raises:
        ToolNotFound: no single assistant answers to `name`.
    """
    assistant = await find(c, name)
    try:
        _, message_fields = await input_schema(c, assistant)
        run_input = {
            key: [{"role": "user", "content": value}]
            if key in message_fields and isinstance(value, str)
            else value
            for key, value in arguments.items()
        }
        request = RunRequest(
            assistant_id=assistant.assistant_id, input=run_input, context=context or None
        )
        run, events = await results.start(c.runs, c.broker, None, request)
        body = await results.final_body(c.storage, run, events)
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc)
        return _error(f"{type(exc).__name__}: {message}")
    final = serde.loads(body)
    if isinstance(final, dict) and "__error__" in final:
        error = final["__error__"]
        if isinstance(error, dict):
            return _error(f"{error.get('error', 'Error')}: {error.get('message', '')}")
        return _error(f"Error: {error}")
    if isinstance(final, dict) and "__interrupt__" in final:
        interrupts = serde.dumps(final["__interrupt__"]).decode()
        return _error(f"The run is paused on an interrupt and needs input: {interrupts}")
    return {"content": [{"type": "text", "text": body.decode()}], "isError": False}


def _error(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": True}
