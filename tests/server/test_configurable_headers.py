"""`http.configurable_headers`: chosen request headers reach the run's configurable (§9)."""

from __future__ import annotations

from pathlib import Path

import langgraph_sdk
import pytest

from tests.berth_server import BerthServer
from tests.conftest import StartServer

pytestmark = pytest.mark.anyio

CONFIG = Path(__file__).parents[1] / "graphs" / "headers" / "langgraph.json"
HEADERS = {
    "x-user-id": "u-1",
    "X-User-Role": "admin",
    "x-user-secret": "hunter2",
    "x-other": "not asked for",
    "authorization": "Bearer token",
    "x-tenant-id": "t-1",
}


async def _seen(server: BerthServer, **kwargs: object) -> dict[str, str]:
    async with langgraph_sdk.get_client(url=server.url) as client:
        result = await client.runs.wait(
            None,
            "headers_probe",
            input={},
            headers=HEADERS,
            **kwargs,  # type: ignore[arg-type]
        )
    return dict(result["seen"])  # type: ignore[index]


async def test_included_headers_reach_the_run(start_server: StartServer) -> None:
    server = start_server(config=CONFIG, name="headers")
    # Patterns match case-insensitively; excludes win; credentials are never copied,
    # even when a pattern names them (authorization, x-tenant-id).
    assert await _seen(server) == {"x-user-id": "u-1", "x-user-role": "admin"}
    async with langgraph_sdk.get_client(url=server.url) as client:
        thread = await client.threads.create()
        parts = [
            part
            async for part in client.runs.stream(
                thread["thread_id"], "headers_probe", input={}, headers=HEADERS
            )
        ]
    values = [p.data for p in parts if p.event == "values"]
    assert values[-1]["seen"] == {"x-user-id": "u-1", "x-user-role": "admin"}


async def test_nothing_is_copied_without_configuration(server: BerthServer) -> None:
    assert await _seen(server) == {}


def test_bad_configuration_stops_the_server(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    config = tmp_path / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "graphs": {"g": str(CONFIG.parent.parent / "echo.py") + ":graph"},
                "http": {"configurable_headers": {"includes": "x-*"}},
            }
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "berth",
            "dev",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "configurable_headers.includes must be a list" in result.stderr
