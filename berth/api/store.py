"""`/store`: the cross-thread key-value store graphs share (contract §3 "Store")."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from langgraph.store.base import NOT_PROVIDED, BaseStore, Item, SearchItem
from pydantic import Field

from berth.api import schemas
from berth.api.deps import Components, components
from berth.core import errors

router = APIRouter(prefix="/store", tags=["store"])


def _namespace(
    labels: list[str] | tuple[str, ...], *, allow_empty: bool = False
) -> tuple[str, ...]:
    if not labels and not allow_empty:
        raise errors.InvalidInput("namespace must have at least one label")
    for label in labels:
        if not isinstance(label, str) or not label:
            raise errors.InvalidInput(f"namespace labels must be non-empty strings: {labels!r}")
        if "." in label:
            raise errors.InvalidInput(f"namespace label {label!r} must not contain '.'")
    return tuple(labels)


#: the comparison operators both store backends implement
_FILTER_OPS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
#: field names the store accepts (it builds JSON paths from them)
_FILTER_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _filter(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """Reject what the store would fail on with a 500: unknown operators, odd field names."""
    for key, condition in (raw or {}).items():
        if not _FILTER_KEY.match(key):
            raise errors.InvalidInput(
                f"filter field {key!r} must be a top-level field name (letters, digits, _ or -)"
            )
        if isinstance(condition, dict):
            if not condition:
                raise errors.InvalidInput(f"filter on {key!r} has no operator")
            for op in condition:
                if op not in _FILTER_OPS:
                    raise errors.InvalidInput(
                        f"unsupported filter operator {op!r} on {key!r};"
                        f" use one of {', '.join(sorted(_FILTER_OPS))}"
                    )
    return raw


def _aware(moment: datetime) -> datetime:
    # The SQLite store returns naive UTC datetimes; the wire always carries an offset.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _item(item: Item | SearchItem) -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": _aware(item.created_at),
        "updated_at": _aware(item.updated_at),
    }
    if isinstance(item, SearchItem):
        out["score"] = item.score
    return out


def _store(c: Components) -> BaseStore:
    return c.store


def _flag(name: str, raw: str | None) -> bool | None:
    if raw is None:
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise errors.InvalidInput(f"{name} must be true or false, not {raw!r}")


class PutItem(schemas.Body):
    namespace: list[str]
    key: str = Field(min_length=1)
    value: dict[str, Any]
    #: false = not embedded; a list of JSON paths; null = the configured `fields`
    index: Literal[False] | list[str] | None = None
    #: minutes; absent = the configured `store.ttl.default_ttl`, null = never expires
    ttl: float | None = Field(None, gt=0)


class DeleteItem(schemas.Body):
    namespace: list[str]
    key: str = Field(min_length=1)


class SearchItems(schemas.Body):
    namespace_prefix: list[str] = Field(default_factory=list)
    filter: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    query: str | None = None
    refresh_ttl: bool | None = None


class ListNamespaces(schemas.Body):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: int | None = Field(None, ge=1)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0)


@router.put("/items", status_code=204)
async def put_item(body: PutItem, c: Components = Depends(components)) -> Response:
    ttl: Any = body.ttl if "ttl" in body.model_fields_set else NOT_PROVIDED
    await _store(c).aput(
        _namespace(body.namespace), body.key, body.value, index=body.index, ttl=ttl
    )
    return Response(status_code=204)


@router.get("/items")
async def get_item(request: Request, c: Components = Depends(components)) -> Any:
    params = request.query_params
    key = params.get("key")
    if not key:
        raise errors.BadRequest("key is required")
    raw = params.get("namespace", "")
    namespace = _namespace(raw.split(".") if raw else [])
    refresh = _flag("refresh_ttl", params.get("refresh_ttl"))
    item = await _store(c).aget(namespace, key, refresh_ttl=refresh)
    return None if item is None else _item(item)


@router.delete("/items", status_code=204)
async def delete_item(body: DeleteItem, c: Components = Depends(components)) -> Response:
    await _store(c).adelete(_namespace(body.namespace), body.key)
    return Response(status_code=204)


@router.post("/items/search")
async def search_items(body: SearchItems, c: Components = Depends(components)) -> Any:
    found = await _store(c).asearch(
        _namespace(body.namespace_prefix, allow_empty=True),
        query=body.query,
        filter=_filter(body.filter),
        limit=body.limit,
        offset=body.offset,
        refresh_ttl=body.refresh_ttl,
    )
    return {"items": [_item(i) for i in found]}


@router.post("/namespaces")
async def list_namespaces(body: ListNamespaces, c: Components = Depends(components)) -> Any:
    found = await _store(c).alist_namespaces(
        prefix=_namespace(body.prefix, allow_empty=True) if body.prefix else None,
        suffix=_namespace(body.suffix, allow_empty=True) if body.suffix else None,
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return {"namespaces": [list(ns) for ns in found]}
