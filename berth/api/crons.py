"""`/runs/crons` and `/threads/{id}/runs/crons`: scheduled runs (contract §3 "Crons")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from berth import serde
from berth.api.deps import Components, components, page_headers, select, uuid_path
from berth.api.responses import JSONResponse
from berth.api.schemas import StreamMode
from berth.core import crons
from berth.core.models import MultitaskStrategy, OnCompletion
from berth.core.runs import resolve_assistant_id

router = APIRouter(tags=["crons"])

CronField = Literal[
    "cron_id",
    "assistant_id",
    "thread_id",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "now",
    "on_run_completed",
    "enabled",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _RunOptions(_Body):
    input: Any = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: list[StreamMode] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    end_time: datetime | None = None
    timezone: str | None = None
    enabled: bool | None = None

    @field_validator("stream_mode", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class CronCreate(_RunOptions):
    assistant_id: str
    schedule: str
    checkpoint_during: bool | None = None
    on_run_completed: OnCompletion | None = None
    multitask_strategy: MultitaskStrategy | None = None


class CronPatch(_RunOptions):
    schedule: str | None = None
    on_run_completed: OnCompletion | None = None


class CronSearch(_Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[CronField] | None = None


class CronCount(_Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None


def _service(c: Components) -> crons.Crons:
    return crons.Crons(storage=c.storage, runs=c.runs)


def _payload(body: CronCreate) -> dict[str, Any]:
    values = body.model_dump(mode="json")
    payload = {k: values.get(k) for k in crons.PAYLOAD_FIELDS}
    if payload["durability"] is None and body.checkpoint_during is not None:
        payload["durability"] = "async" if body.checkpoint_during else "exit"
    return payload


async def _create(c: Components, thread_id: str | None, body: CronCreate) -> Any:
    cron = await _service(c).create(
        thread_id=thread_id,
        schedule=body.schedule,
        timezone=body.timezone,
        end_time=body.end_time,
        enabled=True if body.enabled is None else body.enabled,
        payload=_payload(body),
        on_run_completed=body.on_run_completed,
        multitask_strategy=body.multitask_strategy,
    )
    return cron.public()


@router.post("/runs/crons")
async def create(body: CronCreate, c: Components = Depends(components)) -> Any:
    return await _create(c, None, body)


@router.post("/threads/{thread_id}/runs/crons")
async def create_for_thread(
    thread_id: str, body: CronCreate, c: Components = Depends(components)
) -> Any:
    return await _create(c, uuid_path(thread_id, "thread_id"), body)


def _assistant(c: Components, assistant_id: str | None) -> str | None:
    return resolve_assistant_id(assistant_id, c.registry) if assistant_id else None


@router.post("/runs/crons/search")
async def search(body: CronSearch, c: Components = Depends(components)) -> Any:
    found, total = await c.storage.crons.search(
        assistant_id=_assistant(c, body.assistant_id),
        thread_id=body.thread_id,
        enabled=body.enabled,
        metadata=body.metadata,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    fields: list[str] | None = list(body.select) if body.select else None
    items = [select(cron.public(), fields) for cron in found]
    return JSONResponse(
        serde.to_jsonable(items), headers=page_headers(total, body.offset, len(items))
    )


@router.post("/runs/crons/count")
async def count(body: CronCount, c: Components = Depends(components)) -> int:
    return await c.storage.crons.count(
        assistant_id=_assistant(c, body.assistant_id),
        thread_id=body.thread_id,
        enabled=body.enabled,
        metadata=body.metadata,
    )


@router.api_route("/runs/crons/{cron_id}", methods=["GET", "HEAD"])
async def get(cron_id: str, c: Components = Depends(components)) -> Any:
    return (await c.storage.crons.get(uuid_path(cron_id, "cron_id"))).public()


@router.patch("/runs/crons/{cron_id}")
async def patch(cron_id: str, body: CronPatch, c: Components = Depends(components)) -> Any:
    values = body.model_dump(mode="json", exclude_unset=True)
    # Only `end_time` gives null a meaning (clear it); elsewhere null is "unchanged".
    changes = {k: v for k, v in values.items() if v is not None or k == "end_time"}
    if "end_time" in changes:
        changes["end_time"] = body.end_time
    cron = await _service(c).update(uuid_path(cron_id, "cron_id"), changes)
    return cron.public()


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete(cron_id: str, c: Components = Depends(components)) -> Response:
    await c.storage.crons.delete(uuid_path(cron_id, "cron_id"))
    return Response(status_code=204)
