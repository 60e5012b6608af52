"""`berth dev --reload`: editing a graph file restarts the server on the new code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.berth_server import free_port

GRAPH = """
from typing_extensions import TypedDict
from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    version: str


def node(state: State) -> dict:
    return {{"version": "{version}"}}


graph = StateGraph(State).add_node("node", node).add_edge(START, "node").compile()
"""


def _version(url: str) -> str | None:
    try:
        response = httpx.post(
            f"{url}/runs/wait", json={"assistant_id": "g", "input": {}}, timeout=10
        )
    except httpx.HTTPError:
        return None  # restarting
    return response.json().get("version") if response.status_code == 200 else None


def _wait_for(url: str, version: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _version(url) == version:
            return
        time.sleep(0.3)
    raise AssertionError(f"the server never served version {version!r}")


def test_dev_reload_serves_edited_graph(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "g.py").write_text(GRAPH.format(version="one"))
    (project / "langgraph.json").write_text(json.dumps({"graphs": {"g": "./g.py:graph"}}))
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "berth",
            "dev",
            "--reload",
            "--config",
            str(project / "langgraph.json"),
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, "one")
        (project / "g.py").write_text(GRAPH.format(version="two"))
        _wait_for(url, "two")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
