"""`/mcp`: the official `mcp` client end to end, and the raw Streamable HTTP wire."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.berth_server import GRAPHS_CONFIG, BerthServer
from tests.conftest import StartServer

JSON_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
}
TEST_GRAPHS = {"echo", "chain10", "interrupting", "failing", "slow", "messages"}


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """A server of its own: tool names come from assistant names, and other modules'
    assistants on the session server could make `echo` ambiguous."""
    berth = BerthServer(tmp_path_factory.mktemp("mcp-server") / "data")
    berth.start()
    yield berth
    berth.stop()


@asynccontextmanager
async def mcp_session(server: BerthServer) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(f"{server.url}/mcp") as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def rpc(server: BerthServer, method: str, params: Any = None, **headers: str) -> httpx.Response:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        message["params"] = params
    return httpx.post(
        f"{server.url}/mcp", json=message, headers={**JSON_HEADERS, **headers}, timeout=30
    )


def result(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] == 1, body
    assert "error" not in body, body
    return body["result"]


def create_assistant(server: BerthServer, graph_id: str, name: str, **extra: Any) -> str:
    response = httpx.post(
        f"{server.url}/assistants", json={"graph_id": graph_id, "name": name, **extra}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["assistant_id"])


def text_of(called: object) -> str:
    """The single text block of a `tools/call` result."""
    assert isinstance(called, CallToolResult)
    assert len(called.content) == 1
    block = called.content[0]
    assert isinstance(block, TextContent) and block.type == "text"
    return block.text


# --- the mcp client ---------------------------------------------------------------


@pytest.mark.anyio
async def test_client_initializes_and_lists_tools(mcp_server: BerthServer) -> None:
    async with streamable_http_client(f"{mcp_server.url}/mcp") as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.server_info.name == "LangGraph"
            assert init.protocol_version == "2025-11-25"
            assert init.capabilities.tools is not None
            assert init.capabilities.tools.list_changed is False
            await session.send_ping()
            listed = await session.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert TEST_GRAPHS <= set(tools)
    assert listed.next_cursor is None
    echo = tools["echo"]
    assert echo.title == "echo"
    assert echo.description
    schema = echo.input_schema
    assert schema["type"] == "object"
    assert schema["properties"]["messages"]["type"] == "string"
    assert schema["required"] == ["messages"]
    # The LangChain message definitions are gone, and nothing points at them.
    assert "$defs" not in schema
    assert "#/$defs/" not in json.dumps(schema)
    # Other fields keep the graph's own schema.
    assert tools["chain10"].input_schema["properties"]["count"]["type"] == "integer"
    assert tools["slow"].input_schema["properties"]["steps"]["type"] == "array"


@pytest.mark.anyio
async def test_client_calls_echo(mcp_server: BerthServer) -> None:
    async with mcp_session(mcp_server) as session:
        called = await session.call_tool("echo", {"messages": "hello"})
    assert called.is_error is False
    state = json.loads(text_of(called))
    messages = state["messages"]
    assert [(m["type"], m["content"]) for m in messages] == [
        ("human", "hello"),
        ("ai", "echo: hello"),
    ]


@pytest.mark.anyio
async def test_client_calls_tool_with_plain_fields(mcp_server: BerthServer) -> None:
    async with mcp_session(mcp_server) as session:
        called = await session.call_tool("slow", {"steps": ["a"]})
    assert called.is_error is False
    state = json.loads(text_of(called))
    assert state["steps"] == ["a", "s1", "s2", "s3"]


@pytest.mark.anyio
async def test_client_failing_tool_is_error_result(mcp_server: BerthServer) -> None:
    async with mcp_session(mcp_server) as session:
        called = await session.call_tool("failing", {})
    assert called.is_error is True
    assert text_of(called) == "ValueError: boom"


@pytest.mark.anyio
async def test_client_interrupted_tool_is_paused_error(mcp_server: BerthServer) -> None:
    async with mcp_session(mcp_server) as session:
        called = await session.call_tool("interrupting", {"value": "x"})
    assert called.is_error is True
    text = text_of(called)
    assert "paused" in text
    interrupts = json.loads(text[text.index("[") :])
    assert [i["value"] for i in interrupts] == [{"question": "what?"}]
    assert all(i["id"] for i in interrupts)


@pytest.mark.anyio
async def test_client_unknown_tool_is_jsonrpc_error(mcp_server: BerthServer) -> None:
    async with mcp_session(mcp_server) as session:
        with pytest.raises(MCPError) as caught:
            await session.call_tool("no_such_tool", {})
    assert caught.value.code == -32602
    assert "no_such_tool" in caught.value.message


# --- tools from assistants ----------------------------------------------------------


def test_assistant_names_are_normalised_and_deduplicated(mcp_server: BerthServer) -> None:
    suffix = uuid.uuid4().hex[:8]
    create_assistant(mcp_server, "echo", f"My Échö bot! {suffix}", description="Says it back")
    create_assistant(mcp_server, "echo", f"My\tÉchö bot? {suffix}")
    name = f"My_ch_bot_{suffix}"
    tools = [t for t in result(rpc(mcp_server, "tools/list"))["tools"] if t["name"] == name]
    assert len(tools) == 1
    assert tools[0]["title"] == f"My Échö bot! {suffix}"
    assert tools[0]["description"] == "Says it back"
    assert tools[0]["inputSchema"]["properties"]["messages"]["type"] == "string"
    # Two assistants answer to the name: calling it is ambiguous.
    body = rpc(mcp_server, "tools/call", {"name": name, "arguments": {"messages": "x"}}).json()
    assert body["error"]["code"] == -32602
    assert "mbiguous" in body["error"]["message"]


def test_created_assistant_is_callable_with_its_config(mcp_server: BerthServer) -> None:
    name = f"counter_{uuid.uuid4().hex[:8]}"
    create_assistant(mcp_server, "chain10", name)
    called = result(rpc(mcp_server, "tools/call", {"name": name, "arguments": {"count": 0}}))
    assert called["isError"] is False
    assert called["content"][0]["type"] == "text"
    assert json.loads(called["content"][0]["text"])["count"] == 10


def test_pagination_cursor(start_server: StartServer) -> None:
    server = start_server(name="paging")
    for index in range(105):
        create_assistant(server, "chain10", f"page {index:03d}")
    total = len(httpx.post(f"{server.url}/assistants/search", json={"limit": 1000}).json())
    assert total > 100
    first = result(rpc(server, "tools/list"))
    assert len(first["tools"]) == 100
    assert first["nextCursor"] == "100"
    second = result(rpc(server, "tools/list", {"cursor": first["nextCursor"]}))
    assert "nextCursor" not in second
    assert len(second["tools"]) == total - 100
    names = [t["name"] for t in first["tools"] + second["tools"]]
    assert len(set(names)) == total
    assert {"echo", "page_000", "page_104"} <= set(names)
    bad = rpc(server, "tools/list", {"cursor": "not-a-cursor"}).json()
    assert bad["error"]["code"] == -32602


# --- the raw wire -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "agreed"),
    [
        ("2024-11-05", "2024-11-05"),
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
        (None, "2025-11-25"),
    ],
)
def test_protocol_version_negotiation(
    mcp_server: BerthServer, asked: str | None, agreed: str
) -> None:
    params: dict[str, Any] = {"capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    if asked is not None:
        params["protocolVersion"] = asked
    init = result(rpc(mcp_server, "initialize", params))
    assert init["protocolVersion"] == agreed
    assert init["serverInfo"]["name"] == "LangGraph"
    assert init["capabilities"] == {"tools": {"listChanged": False}}


def test_ping_and_unknown_method(mcp_server: BerthServer) -> None:
    assert result(rpc(mcp_server, "ping")) == {}
    body = rpc(mcp_server, "resources/list").json()
    assert body["id"] == 1
    assert body["error"]["code"] == -32601


def test_notifications_and_responses_get_202(mcp_server: BerthServer) -> None:
    for message in (
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 7, "result": {}},
    ):
        response = httpx.post(f"{mcp_server.url}/mcp", json=message, headers=JSON_HEADERS)
        assert response.status_code == 202
        assert response.content == b""


def test_get_is_405_and_delete_is_404(mcp_server: BerthServer) -> None:
    got = httpx.get(f"{mcp_server.url}/mcp", headers={"accept": "text/event-stream"})
    assert got.status_code == 405
    assert "error" in got.json()
    deleted = httpx.delete(f"{mcp_server.url}/mcp", headers={"mcp-session-id": "abc"})
    assert deleted.status_code == 404
    assert "error" in deleted.json()


def test_bad_requests_are_400(mcp_server: BerthServer) -> None:
    url = f"{mcp_server.url}/mcp"
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    bad_accept = httpx.post(url, json=ping, headers={**JSON_HEADERS, "accept": "text/html"})
    assert bad_accept.status_code == 400
    assert "Accept" in bad_accept.json()["error"]["message"]
    not_json = httpx.post(url, content=b"{nope", headers=JSON_HEADERS)
    assert not_json.status_code == 400
    assert not_json.json()["error"]["code"] == -32700
    not_rpc = httpx.post(url, json={"id": 1, "method": "ping"}, headers=JSON_HEADERS)
    assert not_rpc.status_code == 400
    assert not_rpc.json()["error"]["code"] == -32600
    params = rpc(mcp_server, "tools/call", {"name": "echo", "arguments": ["x"]}).json()
    assert params["error"]["code"] == -32602


def test_batch_answers_requests_only(mcp_server: BerthServer) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "b", "method": "nope"},
    ]
    response = httpx.post(f"{mcp_server.url}/mcp", json=batch, headers=JSON_HEADERS)
    assert response.status_code == 200
    replies = {r["id"]: r for r in response.json()}
    assert replies["a"]["result"] == {}
    assert replies["b"]["error"]["code"] == -32601


def test_origin_guard(mcp_server: BerthServer) -> None:
    for origin in ("http://localhost:3000", "http://127.0.0.1:5173", "http://[::1]"):
        assert result(rpc(mcp_server, "ping", origin=origin)) == {}
    for origin in ("https://evil.example.com", "null"):
        refused = rpc(mcp_server, "ping", origin=origin)
        assert refused.status_code == 403
        assert "origin" in refused.json()["error"]["message"]


def write_config(tmp_path: Path, http: dict[str, Any]) -> Path:
    """A project serving the test `echo` graph with the given `http` section."""
    graph = (GRAPHS_CONFIG.parent / "echo.py").resolve()
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"echo": f"{graph}:graph"}, "http": http}))
    return config


def test_origin_allowed_by_cors_config(tmp_path: Path, start_server: StartServer) -> None:
    config = write_config(tmp_path, {"cors": {"allow_origins": ["https://app.example.com"]}})
    server = start_server(name="cors", config=config)
    assert result(rpc(server, "ping", origin="https://app.example.com")) == {}
    assert rpc(server, "ping", origin="https://other.example.com").status_code == 403


def test_disable_mcp(tmp_path: Path, start_server: StartServer) -> None:
    server = start_server(name="no-mcp", config=write_config(tmp_path, {"disable_mcp": True}))
    assert httpx.get(f"{server.url}/ok").status_code == 200
    assert rpc(server, "ping").status_code == 404
