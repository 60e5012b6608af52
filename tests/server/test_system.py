"""System routes and the default assistants of the session server."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient

from tests.berth_server import GRAPHS_CONFIG, BerthServer

#: Namespace of the default assistants' uuid5 ids, fixed by the Agent Server API.
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
GRAPH_IDS = sorted(json.loads(GRAPHS_CONFIG.read_text())["graphs"])


def test_ok(server: BerthServer) -> None:
    response = httpx.get(f"{server.url}/ok")
    assert response.status_code == 200
    assert response.json()["ok"] is True


def test_info(server: BerthServer) -> None:
    response = httpx.get(f"{server.url}/info")
    assert response.status_code == 200
    info = response.json()
    assert isinstance(info, dict)
    assert isinstance(info["version"], str)


@pytest.mark.anyio
async def test_one_system_assistant_per_graph(client: LangGraphClient) -> None:
    assistants = await client.assistants.search(metadata={"created_by": "system"}, limit=100)
    assert sorted(a["graph_id"] for a in assistants) == GRAPH_IDS
    for assistant in assistants:
        graph_id = assistant["graph_id"]
        assert assistant["assistant_id"] == str(uuid.uuid5(ASSISTANT_NAMESPACE, graph_id))
        assert assistant["metadata"] == {"created_by": "system"}


def test_sync_client_sees_system_assistants(sync_client: SyncLangGraphClient) -> None:
    assistants = sync_client.assistants.search(limit=100)
    system = [a for a in assistants if a["metadata"] == {"created_by": "system"}]
    assert sorted(a["graph_id"] for a in system) == GRAPH_IDS


def test_openapi_and_docs(server: BerthServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    assert spec["info"]["title"] == "Berth"
    for path in (
        "/threads/{thread_id}/runs/stream",
        "/runs/wait",
        "/assistants/search",
        "/store/items",
    ):
        assert path in spec["paths"], path
    docs = httpx.get(f"{server.url}/docs", timeout=30)
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
