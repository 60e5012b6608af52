"""`langgraph.json` → `ProjectSpec`: what a LangGraph project asks its server to serve."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from berth.core import errors


@dataclasses.dataclass(frozen=True, kw_only=True)
class GraphSpec:
    graph_id: str
    #: `./file.py:attr` (relative to the project folder) or `package.module:attr`
    path: str
    description: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProjectSpec:
    root: Path
    graphs: list[GraphSpec]
    env: dict[str, str]
    dependencies: list[Path]
    store: dict[str, Any]
    checkpointer: dict[str, Any]
    http: dict[str, Any]
    auth: dict[str, Any]
    webhooks: dict[str, Any]
    raw: dict[str, Any]


def load(path: Path) -> ProjectSpec:
    """Read and check a `langgraph.json`; raise `ConfigError` saying what and where."""
    path = path.resolve()
    if not path.is_file():
        raise errors.ConfigError(f"{path}: no such file")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise errors.ConfigError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
        ) from None
    if not isinstance(raw, dict):
        raise errors.ConfigError(f"{path}: expected a JSON object")
    root = path.parent
    graphs_raw = raw.get("graphs")
    if not isinstance(graphs_raw, dict) or not graphs_raw:
        raise errors.ConfigError(f"{path}: 'graphs' must be a non-empty object of id → path")
    graphs = [_graph(path, graph_id, value) for graph_id, value in graphs_raw.items()]
    deps = raw.get("dependencies", [])
    if not isinstance(deps, list):
        raise errors.ConfigError(f"{path}: 'dependencies' must be a list")
    return ProjectSpec(
        root=root,
        graphs=graphs,
        env=_env(path, raw.get("env")),
        dependencies=[
            (root / d).resolve() for d in deps if isinstance(d, str) and not _is_package(d)
        ],
        store=_section(path, raw, "store"),
        checkpointer=_section(path, raw, "checkpointer"),
        http=_section(path, raw, "http"),
        auth=_section(path, raw, "auth"),
        webhooks=_section(path, raw, "webhooks"),
        raw=raw,
    )


def _graph(path: Path, graph_id: str, value: Any) -> GraphSpec:
    if isinstance(value, str):
        spec, description = value, None
    elif isinstance(value, dict) and isinstance(value.get("path"), str):
        spec, description = value["path"], value.get("description")
    else:
        raise errors.ConfigError(
            f"{path}: graph {graph_id!r} must be 'file.py:attr' or {{\"path\": ...}}"
        )
    if ":" not in spec:
        raise errors.ConfigError(
            f"{path}: graph {graph_id!r} path {spec!r} must name an attribute ('file.py:graph')"
        )
    return GraphSpec(graph_id=graph_id, path=spec, description=description)


def _env(path: Path, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str):
        env_file = (path.parent / value).resolve()
        if not env_file.is_file():
            raise errors.ConfigError(f"{path}: env file {env_file} not found")
        return _parse_env_file(env_file)
    raise errors.ConfigError(f"{path}: 'env' must be an object or a file path")


def _parse_env_file(env_file: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


def _section(path: Path, raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise errors.ConfigError(f"{path}: {key!r} must be an object")
    return value


def _is_package(dep: str) -> bool:
    # "." and "./src" are folders; anything else ("langchain_openai") is a pip package
    # that a self-hosted deployment installs itself.
    return not (dep.startswith(".") or dep.startswith("/") or os.sep in dep)
