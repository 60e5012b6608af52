"""GraphRegistry: load a project's graphs and hand out runnable copies per run."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore

from berth.core import errors
from berth.project import GraphSpec, ProjectSpec

#: wired copies kept per graph; the server uses two savers (durable and scratch)
_WIRED_LIMIT = 8


class LoadedGraph:
    """One registered graph: a compiled graph, or a factory called per run."""

    def __init__(self, spec: GraphSpec, target: Any) -> None:
        self.spec = spec
        self.graph_id = spec.graph_id
        self.description = spec.description
        self._graph: Pregel[Any, Any, Any, Any] | None = None
        self._factory: Callable[..., Any] | None = None
        #: the server's cross-thread store, given to every graph built here
        self.store: BaseStore | None = None
        #: a compiled graph wired to (checkpointer, store), kept: copying it per run
        #: costs a tenth of a small run, and a compiled graph is safe to share
        self._wired: dict[tuple[int, int], Pregel[Any, Any, Any, Any]] = {}
        if isinstance(target, StateGraph):
            target = target.compile()
        if isinstance(target, Pregel):
            self._graph = target
        elif callable(target):
            self._factory = target
        else:
            raise errors.ConfigError(
                f"graph {spec.graph_id!r} ({spec.path}) is a {type(target).__name__}, "
                "not a compiled graph, StateGraph or factory"
            )

    @contextlib.asynccontextmanager
    async def build(
        self,
        config: Mapping[str, Any],
        *,
        checkpointer: BaseCheckpointSaver[Any] | None,
        store: BaseStore | None = None,
    ) -> AsyncIterator[Pregel[Any, Any, Any, Any]]:
        """Yield the graph for one run, wired to `checkpointer` and `store`.

        `config` is the run's (or a stored assistant's) config, handed to a factory as
        its `RunnableConfig`; a plain mapping is accepted because stored configs are.
        """
        store = store or self.store
        if self._graph is not None:
            key = (id(checkpointer), id(store))
            wired = self._wired.get(key)
            if wired is None:
                if len(self._wired) >= _WIRED_LIMIT:  # callers passing a saver per call
                    self._wired.clear()
                wired = self._wired[key] = _wire(self._graph, checkpointer, store)
            yield wired
            return
        assert self._factory is not None
        result = _call_factory(self._factory, config)
        if inspect.isawaitable(result):
            result = await result
        if hasattr(result, "__aenter__"):
            async with result as graph:
                yield _wire(_compiled(graph, self.spec), checkpointer, store)
        elif hasattr(result, "__enter__"):
            with result as graph:
                yield _wire(_compiled(graph, self.spec), checkpointer, store)
        else:
            yield _wire(_compiled(result, self.spec), checkpointer, store)


def _call_factory(factory: Callable[..., Any], config: Mapping[str, Any]) -> Any:
    params = inspect.signature(factory).parameters
    return factory(config) if params else factory()


def _compiled(graph: Any, spec: GraphSpec) -> Pregel[Any, Any, Any, Any]:
    if isinstance(graph, StateGraph):
        graph = graph.compile()
    if not isinstance(graph, Pregel):
        raise errors.ConfigError(
            f"graph factory {spec.path} returned {type(graph).__name__}, not a graph"
        )
    return graph


def _wire(
    graph: Pregel[Any, Any, Any, Any], checkpointer: Any, store: BaseStore | None
) -> Pregel[Any, Any, Any, Any]:
    update: dict[str, Any] = {"checkpointer": checkpointer}
    if store is not None:
        update["store"] = store
    return graph.copy(update=update)


class GraphRegistry:
    """The graphs a project declares, imported once at start-up."""

    def __init__(self, graphs: dict[str, LoadedGraph]) -> None:
        self._graphs = graphs

    @classmethod
    def load(cls, project: ProjectSpec) -> GraphRegistry:
        for folder in [project.root, *project.dependencies]:
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
        graphs = {
            spec.graph_id: LoadedGraph(
                spec, load_object(project.root, spec.path, f"graph {spec.graph_id!r}")
            )
            for spec in project.graphs
        }
        return cls(graphs)

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._graphs

    def __iter__(self) -> Any:
        return iter(self._graphs.values())

    def attach_store(self, store: BaseStore) -> None:
        for graph in self._graphs.values():
            graph.store = store

    @property
    def ids(self) -> list[str]:
        return list(self._graphs)

    def get(self, graph_id: str) -> LoadedGraph:
        try:
            return self._graphs[graph_id]
        except KeyError:
            raise errors.NotFound(f"Graph {graph_id!r} not found") from None


def load_object(root: Path, path: str, what: str) -> Any:
    """Import `./file.py:attr` (relative to `root`) or `package.module:attr`.

    Args:
        what: how errors name the object (`graph 'agent'`, `store embeddings`).
    """
    location, _, attr = path.rpartition(":")
    try:
        if location.endswith(".py") or "/" in location:
            file = (root / location).resolve()
            if not file.is_file():
                raise errors.ConfigError(f"{what}: file {file} not found")
            name = f"berth_user.{file.stem}_{abs(hash(str(file)))}"
            module_spec = importlib.util.spec_from_file_location(name, file)
            if module_spec is None or module_spec.loader is None:
                raise errors.ConfigError(f"{what}: cannot import {file}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(location)
    except errors.ConfigError:
        raise
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        raise errors.ConfigError(
            f"{what}: importing {location} failed: {type(exc).__name__}: {exc}{where}"
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise errors.ConfigError(f"{what}: {location} has no attribute {attr!r}")
        target = getattr(target, part)
    return target
