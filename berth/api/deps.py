"""What every route reaches: the components built by `create_app`, and small parsers."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from langgraph.store.base import BaseStore

from berth.api.headers import HeaderPolicy
from berth.core import errors, ids
from berth.core.runs import Runs
from berth.core.state import ThreadState
from berth.graphs import GraphRegistry
from berth.settings import Settings
from berth.storage.base import Storage
from berth.streaming.base import Broker


@dataclasses.dataclass(frozen=True, kw_only=True)
class Components:
    settings: Settings
    storage: Storage
    broker: Broker
    registry: GraphRegistry
    runs: Runs
    state: ThreadState
    store: BaseStore
    #: request headers copied into runs' configurable
    headers: HeaderPolicy = dataclasses.field(default_factory=HeaderPolicy)


async def components(request: Request) -> Components:
    # async: FastAPI runs a plain `def` dependency in a worker thread, on every request.
    return request.app.state.berth  # type: ignore[no-any-return]


def uuid_path(value: str, name: str) -> str:
    if not ids.is_uuid(value):
        raise errors.InvalidInput(f"{name} must be a UUID, not {value!r}")
    return value


def truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "yes", "1", "on")


def page_headers(total: int, offset: int, returned: int) -> dict[str, str]:
    headers = {"X-Pagination-Total": str(total)}
    if offset + returned < total:
        headers["X-Pagination-Next"] = str(offset + returned)
    return headers


def select(item: dict[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in fields} if fields else item
