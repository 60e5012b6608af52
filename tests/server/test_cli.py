"""`berth dev` start-up failures: one clear line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.berth_server import GRAPHS_CONFIG, BerthServer


def _berth(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "berth", "dev", "--data-dir", str(tmp_path / "data"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("berth: ")
    return lines[0]


def test_missing_config(tmp_path: Path) -> None:
    line = _one_line_error(_berth(tmp_path, "--config", "nowhere.json"))
    assert "nowhere.json" in line and "no such file" in line


def test_broken_json(tmp_path: Path) -> None:
    (tmp_path / "langgraph.json").write_text('{"graphs": ')
    line = _one_line_error(_berth(tmp_path, "--config", "langgraph.json"))
    assert "langgraph.json:1:" in line and "invalid JSON" in line


@pytest.mark.parametrize(
    ("graphs", "expected"),
    [
        ({"g": "./missing.py:graph"}, "missing.py not found"),
        ({"g": "./boom.py:graph"}, "RuntimeError: kaput"),
        ({"g": "./ok.py:nothing"}, "has no attribute 'nothing'"),
        ({"g": "./ok.py"}, "must name an attribute"),
        ({"g": "./ok.py:value"}, "not a compiled graph"),
    ],
)
def test_graph_that_does_not_load(tmp_path: Path, graphs: dict[str, str], expected: str) -> None:
    (tmp_path / "boom.py").write_text("raise RuntimeError('kaput')\n")
    (tmp_path / "ok.py").write_text("value = 42\n")
    import json

    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": graphs}))
    line = _one_line_error(_berth(tmp_path, "--config", "langgraph.json"))
    assert expected in line
    assert "'g'" in line or "langgraph.json" in line


def test_port_in_use(tmp_path: Path) -> None:
    with BerthServer(tmp_path / "first") as first:
        line = _one_line_error(
            _berth(tmp_path, "--config", str(GRAPHS_CONFIG), "--port", str(first.port))
        )
    assert f"127.0.0.1:{first.port}" in line and "in use" in line.lower()


@pytest.mark.parametrize("explicit_uri", [False, True], ids=["data-dir", "DATABASE_URI"])
def test_a_sqlite_database_serves_one_process(tmp_path: Path, explicit_uri: bool) -> None:
    """The embedded mode is one process: a second server on the same SQLite file stops."""
    env = {"DATABASE_URI": f"sqlite:///{tmp_path / 'shared.db'}"} if explicit_uri else {}
    with BerthServer(tmp_path / "data", env=env):
        line = _one_line_error(_berth(tmp_path, "--config", str(GRAPHS_CONFIG), env=env))
    assert "in use by another berth server" in line
    assert ("shared.db" if explicit_uri else "berth.db") in line


def test_announces_where_it_listens(tmp_path: Path) -> None:
    with BerthServer(tmp_path / "srv") as server:
        server.stop()
        out = server.output()
    assert f"http://127.0.0.1:{server.port}" in out
    assert "echo" in out and "chain10" in out
