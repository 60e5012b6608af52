"""The webhook outbox: deliveries written with a run's end, claimed and settled by the
deliverer, and every attempt kept for inspection."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from berth import serde
from berth.core import errors, ids
from berth.storage import schema
from berth.storage.database import Database

if TYPE_CHECKING:
    from berth.storage.runs import Outcome

_D = schema.webhook_deliveries
_A = schema.webhook_attempts
_T = schema.threads


class DeliveryStatus(StrEnum):
    #: waiting for its next attempt (or being attempted, when claimed)
    PENDING = "pending"
    #: the receiver answered 2xx
    DELIVERED = "delivered"
    #: out of attempts, or refused for good (a 4xx, a forbidden address)
    FAILED = "failed"


class AttemptOutcome(StrEnum):
    #: the receiver answered 2xx
    DELIVERED = "delivered"
    #: a network error, timeout, 5xx or 429: tried again later
    RETRY = "retry"
    #: the delivery gives up with this attempt
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Delivery:
    delivery_id: str
    run_id: str
    thread_id: str | None
    url: str
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    last_status_code: int | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Delivery:
        data = {f.name: row._mapping[f.name] for f in dataclasses.fields(cls)}
        data["status"] = DeliveryStatus(data["status"])
        return cls(**data)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Attempt:
    delivery_id: str
    #: 1 for the first attempt
    attempt: int
    started_at: datetime
    duration_ms: float
    #: the final HTTP status (after redirects), None when no response came
    status_code: int | None
    error: str | None
    outcome: AttemptOutcome

    @classmethod
    def from_row(cls, row: Any) -> Attempt:
        data = {f.name: row._mapping[f.name] for f in dataclasses.fields(cls)}
        data["outcome"] = AttemptOutcome(data["outcome"])
        return cls(**data)


_SETTLED_BY = {
    AttemptOutcome.DELIVERED: DeliveryStatus.DELIVERED,
    AttemptOutcome.RETRY: DeliveryStatus.PENDING,
    AttemptOutcome.FAILED: DeliveryStatus.FAILED,
}


def enqueue(conn: Connection, run: Mapping[str, Any], outcome: Outcome, now: datetime) -> None:
    """Add the webhook for a run that just ended, inside the caller's transaction.

    Does nothing when the run has no webhook. Called where the run's end is recorded,
    so the end and its announcement commit (or vanish) together.

    Args:
        run: the run's row as it was before this end (a mapping of its columns).
        outcome: how it ended (`berth.storage.runs.Outcome`).
        now: the moment of the end, used as `run_ended_at`.
    """
    url = (run["kwargs"] or {}).get("webhook")
    if not url:
        return
    status = "rollback" if outcome.discard else outcome.status.value
    values = None
    if not run["temporary"]:
        values = outcome.values
        if values is None:
            # A cancel or timeout computes no state: the thread's last known values.
            values = conn.scalar(
                sa.select(_T.c["values"]).where(_T.c.thread_id == run["thread_id"])
            )
    error = outcome.error
    if error is None and status == "timeout":
        error = {"error": "TimeoutError", "message": "the run exceeded its time limit"}
    payload = {
        "run_id": run["run_id"],
        "thread_id": run["thread_id"],
        "assistant_id": run["assistant_id"],
        "created_at": run["created_at"],
        "updated_at": now,
        "status": status,
        "metadata": run["metadata"],
        "kwargs": run["kwargs"],
        "multitask_strategy": run["multitask_strategy"],
        "run_started_at": run["started_at"],
        "run_ended_at": now,
        # Filled in by the deliverer on each attempt.
        "webhook_sent_at": None,
        "values": values,
        "error": error,
    }
    conn.execute(
        sa.insert(_D).values(
            delivery_id=ids.new_id(),
            run_id=run["run_id"],
            thread_id=run["thread_id"],
            url=url,
            payload=serde.to_jsonable(payload),
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )


DeliveryList = list[Delivery]
Listed = list[tuple[Delivery, list[Attempt]]]


class WebhookStore:
    """The outbox's operations, each one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim_due(self, *, worker_id: str, limit: int, lease_seconds: float) -> DeliveryList:
        """Take up to `limit` due deliveries nobody holds, under a lease for `worker_id`."""
        if limit <= 0:
            return []
        now = datetime.now(UTC)
        query = (
            sa.select(_D.c.delivery_id)
            .where(
                _D.c.status == DeliveryStatus.PENDING.value,
                _D.c.next_attempt_at <= now,
                sa.or_(_D.c.claimed_until.is_(None), _D.c.claimed_until < now),
            )
            .order_by(_D.c.next_attempt_at, _D.c.delivery_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

        def op(conn: Connection) -> DeliveryList:
            chosen = conn.scalars(query).all()
            if not chosen:
                return []
            conn.execute(
                sa.update(_D)
                .where(_D.c.delivery_id.in_(chosen))
                .values(claimed_by=worker_id, claimed_until=now + timedelta(seconds=lease_seconds))
            )
            rows = conn.execute(sa.select(_D).where(_D.c.delivery_id.in_(chosen))).all()
            return sorted(
                (Delivery.from_row(r) for r in rows),
                key=lambda d: (d.next_attempt_at, d.delivery_id),
            )

        return await self.db.write(op)

    async def record_attempt(
        self, attempt: Attempt, *, worker_id: str, next_attempt_at: datetime | None = None
    ) -> bool:
        """Keep `attempt` and settle its delivery from the outcome; release the claim.

        Returns False (and keeps nothing) when `worker_id` no longer holds the delivery:
        its lease ran out and another deliverer took it over.
        """
        now = datetime.now(UTC)
        status = _SETTLED_BY[attempt.outcome]

        def op(conn: Connection) -> bool:
            changed = conn.execute(
                sa.update(_D)
                .where(
                    _D.c.delivery_id == attempt.delivery_id,
                    _D.c.claimed_by == worker_id,
                    _D.c.status == DeliveryStatus.PENDING.value,
                )
                .values(
                    status=status.value,
                    attempts=attempt.attempt,
                    last_error=attempt.error,
                    last_status_code=attempt.status_code,
                    next_attempt_at=next_attempt_at or now,
                    claimed_by=None,
                    claimed_until=None,
                    updated_at=now,
                    delivered_at=now if status == DeliveryStatus.DELIVERED else None,
                )
            ).rowcount
            if not changed:
                return False
            values = {f.name: getattr(attempt, f.name) for f in dataclasses.fields(Attempt)}
            values["outcome"] = attempt.outcome.value
            conn.execute(sa.insert(_A).values(values))
            return True

        return await self.db.write(op)

    async def release(self, worker_id: str | None = None) -> int:
        """Drop the claims of `worker_id` (every claim when None): their holder is gone."""
        query = sa.update(_D).where(_D.c.claimed_by.is_not(None))
        if worker_id is not None:
            query = query.where(_D.c.claimed_by == worker_id)
        query = query.values(claimed_by=None, claimed_until=None)
        return await self.db.write(lambda conn: conn.execute(query).rowcount)

    async def next_due_at(self) -> datetime | None:
        """When the next unclaimed pending delivery is due (claimed ones are in hand)."""

        def op(conn: Connection) -> datetime | None:
            query = sa.select(sa.func.min(_D.c.next_attempt_at)).where(
                _D.c.status == DeliveryStatus.PENDING.value,
                sa.or_(_D.c.claimed_until.is_(None), _D.c.claimed_until < datetime.now(UTC)),
            )
            earliest: datetime | None = conn.scalar(query)
            return earliest

        return await self.db.read(op)

    async def get(self, delivery_id: str) -> tuple[Delivery, list[Attempt]]:
        found = await self.list(delivery_id=delivery_id)
        if not found:
            raise errors.NotFound(f"Webhook delivery {delivery_id} not found")
        return found[0]

    async def list(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        delivery_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Listed:
        """Deliveries, newest first, each with its attempts in order."""
        query = sa.select(_D)
        if run_id is not None:
            query = query.where(_D.c.run_id == run_id)
        if thread_id is not None:
            query = query.where(_D.c.thread_id == thread_id)
        if delivery_id is not None:
            query = query.where(_D.c.delivery_id == delivery_id)
        if status is not None:
            query = query.where(_D.c.status == status.value)
        query = (
            query.order_by(_D.c.created_at.desc(), _D.c.delivery_id.desc())
            .limit(limit)
            .offset(offset)
        )

        def op(conn: Connection) -> Listed:
            deliveries = [Delivery.from_row(r) for r in conn.execute(query).all()]
            if not deliveries:
                return []
            rows = conn.execute(
                sa.select(_A)
                .where(_A.c.delivery_id.in_([d.delivery_id for d in deliveries]))
                .order_by(_A.c.delivery_id, _A.c.attempt)
            ).all()
            by_delivery: dict[str, list[Attempt]] = {}
            for row in rows:
                by_delivery.setdefault(row.delivery_id, []).append(Attempt.from_row(row))
            return [(d, by_delivery.get(d.delivery_id, [])) for d in deliveries]

        return await self.db.read(op)
