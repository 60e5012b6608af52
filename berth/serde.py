"""JSON for the wire and the JSON columns: LangChain messages, pydantic models,
dataclasses and LangGraph's own types, via orjson."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from langgraph.types import Interrupt

# Dataclasses come to `default` so LangGraph types (Interrupt) get their wire shape.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS


def default(obj: Any) -> Any:
    """orjson's fallback for everything it does not know natively."""
    if isinstance(obj, Interrupt):
        return interrupt_dict(obj)
    if hasattr(obj, "model_dump") and callable(obj.model_dump):
        return obj.model_dump()
    if hasattr(obj, "dict") and callable(obj.dict) and hasattr(obj, "__fields__"):
        return obj.dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "_asdict"):
        return obj._asdict()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes | bytearray):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, Sequence) and not isinstance(obj, str):
        return list(obj)
    if isinstance(obj, BaseException):
        return {"error": type(obj).__name__, "message": str(obj)}
    if isinstance(obj, type):
        return obj.__name__
    return str(obj)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=default, option=_OPTIONS)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def to_jsonable(value: Any) -> Any:
    """A plain JSON value (dicts, lists, scalars) equal to what `dumps` writes."""
    return orjson.loads(dumps(value))


def interrupt_dict(interrupt: Interrupt) -> dict[str, Any]:
    """An interrupt as clients rebuild it (`Interrupt(**item)`): id, value, schema if any."""
    out: dict[str, Any] = {"value": interrupt.value, "id": interrupt.id}
    if isinstance(interrupt.response_schema, dict):
        out["response_schema"] = interrupt.response_schema
    return out
