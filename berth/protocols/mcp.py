"""`/mcp`: the Model Context Protocol over stateless Streamable HTTP (contract §11).

Every POST carries one JSON-RPC message (or a batch) and gets its answer as one JSON
body: no sessions, no server-initiated streams, so GET is 405 and DELETE (session end)
is 404. The protocol is small enough to speak directly, which keeps the exact wire
behaviour the contract asks for (version negotiation, error codes, status codes) in
one place; the `mcp` package's client is what the tests prove it against.

This endpoint is an ordinary route of the Berth app, so whatever guards the app's
routes (CORS, and authentication once Berth has it) guards MCP calls too; tools run
through the same run path as `POST /runs/wait`. Like A2A, its errors are JSON-RPC
error objects (`{"error": …}`), not the REST API's `{"detail": …}`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response

import berth
from berth import serde
from berth.api.deps import Components, components
from berth.api.responses import JSONResponse
from berth.protocols import mcp_tools

#: oldest first; a client asking for anything else gets the newest
PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
SERVER_NAME = "LangGraph"

log = logging.getLogger("berth.mcp")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

_ACCEPTED = ("application/json", "text/event-stream", "*/*", "application/*")


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def router(http: dict[str, Any]) -> APIRouter:
    """The `/mcp` route, with the Origin guard taken from the project's `http.cors`."""
    allowed = _OriginPolicy.from_cors(http.get("cors"))
    api = APIRouter(tags=["mcp"])

    @api.post("/mcp", include_in_schema=False)
    async def post(request: Request) -> Response:
        if (refused := _check_headers(request, allowed)) is not None:
            return refused
        try:
            message = serde.loads(await request.body())
        except ValueError as exc:
            return _http_error(400, PARSE_ERROR, f"Parse error: {exc}")
        c = await components(request)
        if isinstance(message, list) and message:
            # JSON-RPC batches (2025-03-26): answer the requests, drop the rest.
            replies = [r for m in message if (r := await _handle(c, m)) is not None]
            return JSONResponse(replies) if replies else Response(status_code=202)
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return _http_error(400, INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message")
        reply = await _handle(c, message)
        return JSONResponse(reply) if reply is not None else Response(status_code=202)

    @api.get("/mcp", include_in_schema=False)
    async def get(request: Request) -> Response:
        # Streamable HTTP opens a server-to-client stream with GET; a stateless
        # server has nothing to send, and the spec's answer for that is 405.
        if (refused := _check_origin(request, allowed)) is not None:
            return refused
        return _http_error(405, INVALID_REQUEST, "Method Not Allowed", headers={"Allow": "POST"})

    @api.delete("/mcp", include_in_schema=False)
    async def delete(request: Request) -> Response:
        if (refused := _check_origin(request, allowed)) is not None:
            return refused
        return _http_error(404, INVALID_REQUEST, "Session not found: the server is stateless")

    return api


async def _handle(c: Components, message: Any) -> dict[str, Any] | None:
    """One JSON-RPC message in, its response out (`None` for notifications and responses)."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _rpc_error(None, INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message")
    if "method" not in message:
        return None  # a response to a server request: we never send any, so nothing to do
    method, request_id = message["method"], message.get("id")
    if "id" not in message:
        return None  # notification (notifications/initialized, cancelled, …)
    if not isinstance(method, str) or not isinstance(request_id, (str, int)):
        return _rpc_error(request_id, INVALID_REQUEST, "Invalid Request: bad method or id")
    params = message.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return _rpc_error(request_id, INVALID_PARAMS, "params must be an object")
    try:
        result = await _dispatch(c, method, params)
    except _RpcError as exc:
        return _rpc_error(request_id, exc.code, exc.message)
    except Exception as exc:
        log.exception("MCP %s failed", method)
        return _rpc_error(request_id, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


async def _dispatch(c: Components, method: str, params: dict[str, Any]) -> dict[str, Any]:
    if method == "initialize":
        return _initialize(params)
    if method == "ping":
        return {}
    if method == "tools/list":
        return await mcp_tools.list_tools(c, _cursor(params.get("cursor")))
    if method == "tools/call":
        name, arguments, context = (
            params.get("name"),
            params.get("arguments"),
            params.get("context"),
        )
        if not isinstance(name, str):
            raise _RpcError(INVALID_PARAMS, "tools/call needs a tool 'name'")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise _RpcError(INVALID_PARAMS, "tools/call 'arguments' must be an object")
        if context is not None and not isinstance(context, dict):
            raise _RpcError(INVALID_PARAMS, "tools/call 'context' must be an object")
        try:
            return await mcp_tools.call_tool(c, name, arguments, context)
        except mcp_tools.ToolNotFound as exc:
            raise _RpcError(INVALID_PARAMS, str(exc)) from None
    raise _RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")


def _initialize(params: dict[str, Any]) -> dict[str, Any]:
    asked = params.get("protocolVersion")
    return {
        "protocolVersion": asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1],
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": SERVER_NAME, "version": berth.__version__},
    }


def _cursor(value: Any) -> int:
    """The cursor is an offset; MCP types it as a string, so both spellings are read."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise _RpcError(INVALID_PARAMS, f"Invalid cursor: {value!r}")


def _check_headers(request: Request, allowed: _OriginPolicy) -> Response | None:
    if (refused := _check_origin(request, allowed)) is not None:
        return refused
    content_type = request.headers.get("content-type", "application/json")
    if content_type.split(";")[0].strip().lower() != "application/json":
        return _http_error(400, INVALID_REQUEST, "Content-Type must be application/json")
    # A missing Accept or a wildcard accepts JSON; a list naming neither MCP type does not.
    accept = [
        part.split(";")[0].strip().lower()
        for part in request.headers.get("accept", "*/*").split(",")
    ]
    if not any(kind in _ACCEPTED for kind in accept):
        return _http_error(
            400, INVALID_REQUEST, "Accept must include application/json or text/event-stream"
        )
    return None


def _check_origin(request: Request, allowed: _OriginPolicy) -> Response | None:
    # DNS-rebinding guard the MCP spec asks for: a browser page from another site must
    # not reach a local server. Clients that are not browsers send no Origin.
    origin = request.headers.get("origin")
    if origin is None or allowed.permits(origin):
        return None
    return _http_error(403, INVALID_REQUEST, f"Forbidden: origin {origin!r} is not allowed")


class _OriginPolicy:
    """Loopback origins always; others only as `http.cors` allows them."""

    def __init__(self, origins: set[str], pattern: re.Pattern[str] | None) -> None:
        self.origins = origins
        self.pattern = pattern

    @classmethod
    def from_cors(cls, cors: Any) -> _OriginPolicy:
        cors = cors if isinstance(cors, dict) else {}
        origins = cors.get("allow_origins") or []
        regex = cors.get("allow_origin_regex")
        return cls(
            {str(o).rstrip("/").lower() for o in origins if isinstance(o, str)},
            re.compile(regex) if isinstance(regex, str) and regex else None,
        )

    def permits(self, origin: str) -> bool:
        if _is_loopback(origin):
            return True
        normalised = origin.rstrip("/").lower()
        if "*" in self.origins or normalised in self.origins:
            return True
        return self.pattern is not None and self.pattern.fullmatch(origin) is not None


def _is_loopback(origin: str) -> bool:
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _rpc_error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _http_error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(_rpc_error(None, code, message), status_code=status, headers=headers)
