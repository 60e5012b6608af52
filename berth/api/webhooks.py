"""`/berth/webhooks`: read-only view of webhook deliveries and their attempts.

Not part of the LangGraph API, hence the `/berth` prefix. The payload itself (which
carries the thread's values) is left out: this route checks no per-thread access.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from berth.api.deps import Components, components, uuid_path
from berth.storage.webhooks import Attempt, Delivery, DeliveryStatus, WebhookStore

router = APIRouter(prefix="/berth/webhooks", tags=["berth"])


def _store(c: Components) -> WebhookStore:
    return WebhookStore(c.storage.db)


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "started_at": attempt.started_at,
        "duration_ms": round(attempt.duration_ms, 3),
        "status_code": attempt.status_code,
        "error": attempt.error,
        "outcome": attempt.outcome.value,
    }


def _delivery_json(delivery: Delivery, attempts: list[Attempt]) -> dict[str, Any]:
    return {
        "delivery_id": delivery.delivery_id,
        "run_id": delivery.run_id,
        "thread_id": delivery.thread_id,
        "url": delivery.url,
        "run_status": delivery.payload.get("status"),
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at
        if delivery.status == DeliveryStatus.PENDING
        else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
        "delivered_at": delivery.delivered_at,
        "attempt_log": [_attempt_json(a) for a in attempts],
    }


@router.get("")
async def list_deliveries(
    run_id: str | None = None,
    thread_id: str | None = None,
    status: DeliveryStatus | None = None,
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    c: Components = Depends(components),
) -> list[dict[str, Any]]:
    """Deliveries, newest first; filter by `run_id`, `thread_id` or `status`."""
    found = await _store(c).list(
        run_id=uuid_path(run_id, "run_id") if run_id else None,
        thread_id=uuid_path(thread_id, "thread_id") if thread_id else None,
        status=status,
        limit=limit,
        offset=offset,
    )
    return [_delivery_json(d, a) for d, a in found]


@router.get("/{delivery_id}")
async def get_delivery(delivery_id: str, c: Components = Depends(components)) -> dict[str, Any]:
    delivery, attempts = await _store(c).get(uuid_path(delivery_id, "delivery_id"))
    return _delivery_json(delivery, attempts)
