"""Crons (contract §3 "Crons", §8): schedules, the next fire, and the run each fire makes.

A schedule is a cron expression as croniter reads it:

* 5 fields, `minute hour day-of-month month day-of-week` (standard cron), or
* 6 fields, the same plus **seconds as the sixth (last) field**: `* * * * * */2` fires
  every two seconds. Seconds last is croniter's own convention, so an expression means
  the same here as in any croniter-based scheduler.
* croniter's `@hourly`, `@daily`… aliases.

Fires are computed in the cron's IANA timezone (DST included) and stored in UTC.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from berth.core import errors, ids
from berth.core.models import MultitaskStrategy, OnCompletion
from berth.core.runs import RunRequest

if TYPE_CHECKING:
    from berth.core.models import Run
    from berth.core.runs import Runs
    from berth.storage.base import Storage

#: the body fields a fire turns into run options; kept in `payload`
PAYLOAD_FIELDS = (
    "assistant_id",
    "input",
    "metadata",
    "config",
    "context",
    "webhook",
    "interrupt_before",
    "interrupt_after",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "durability",
    "multitask_strategy",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Cron:
    cron_id: str
    assistant_id: str
    #: None for a stateless cron: each fire runs on a new thread
    thread_id: str | None
    user_id: str | None
    schedule: str
    timezone: str
    end_time: datetime | None
    #: the next fire, in UTC; the scheduler claims a cron by advancing it
    next_run_date: datetime | None
    payload: dict[str, Any]
    metadata: dict[str, Any]
    #: stateless crons only: what becomes of each fire's thread
    on_run_completed: OnCompletion | None
    #: thread crons only: how a fire meets a run already in flight
    multitask_strategy: MultitaskStrategy | None
    enabled: bool
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        """The cron as the API serves it (the SDK's `Cron`)."""
        return {
            "cron_id": self.cron_id,
            "assistant_id": self.assistant_id,
            "thread_id": self.thread_id,
            "user_id": self.user_id,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "end_time": self.end_time,
            "next_run_date": self.next_run_date,
            "payload": self.payload,
            "metadata": self.metadata,
            "on_run_completed": self.on_run_completed.value if self.on_run_completed else None,
            "enabled": self.enabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def zone(name: str) -> ZoneInfo:
    """The IANA timezone `name`, or InvalidInput."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise errors.InvalidInput(f"timezone must be an IANA timezone name, not {name!r}") from None


def check_schedule(schedule: str) -> str:
    """`schedule` stripped, or InvalidInput if croniter cannot read it as 5 or 6 fields."""
    schedule = schedule.strip()
    fields = schedule.split()
    if not schedule.startswith("@") and len(fields) not in (5, 6):
        raise errors.InvalidInput(
            f"schedule must have 5 fields (minute hour day month weekday) or 6 "
            f"(the same plus seconds last), not {len(fields)}: {schedule!r}"
        )
    if not croniter.is_valid(schedule):
        raise errors.InvalidInput(f"schedule is not a valid cron expression: {schedule!r}")
    return schedule


def next_fire(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first fire of `schedule` strictly after `after`, in UTC.

    Raises:
        InvalidInput: the schedule or timezone is invalid, or never fires.
    """
    local = after.astimezone(zone(timezone))
    try:
        fire: datetime = croniter(check_schedule(schedule), local).get_next(datetime)
    except (CroniterError, ValueError) as exc:
        raise errors.InvalidInput(f"schedule {schedule!r} has no next fire: {exc}") from None
    return fire.astimezone(UTC)


def next_fire_of(cron: Cron, after: datetime) -> datetime:
    return next_fire(cron.schedule, cron.timezone, after)


def run_request(cron: Cron) -> RunRequest:
    """The run one fire of `cron` creates: its payload, as a client would send it.

    The cron's metadata becomes the run's metadata. The cron's own id is not part of
    the request (a client may not set it): `fire` attaches it as the server's.
    """
    p = cron.payload
    config = dict(p.get("config") or {})
    context = dict(p.get("context") or {})
    stream_mode = p.get("stream_mode") or ["values"]
    return RunRequest(
        assistant_id=cron.assistant_id,
        input=p.get("input"),
        metadata=dict(cron.metadata),
        config=config,
        context=context or None,
        stream_mode=[stream_mode] if isinstance(stream_mode, str) else list(stream_mode),
        stream_subgraphs=bool(p.get("stream_subgraphs", False)),
        stream_resumable=bool(p.get("stream_resumable", False)),
        interrupt_before=p.get("interrupt_before"),
        interrupt_after=p.get("interrupt_after"),
        webhook=p.get("webhook"),
        multitask_strategy=cron.multitask_strategy or MultitaskStrategy.ENQUEUE,
        on_completion=cron.on_run_completed or OnCompletion.DELETE,
        durability=p.get("durability"),
    )


def server_marks(cron: Cron) -> dict[str, Any]:
    """What the server itself attaches to each fire's run: the cron's id.

    It goes in the run's metadata (so runs can be found by cron) and in
    `config.configurable` (so the graph can tell who started it), past the checks a
    client's request meets (`Runs.create`'s `server_metadata`/`server_configurable`).
    """
    return {"cron_id": cron.cron_id}


async def fire(runs: Runs, cron: Cron) -> Run:
    """Create the run for one fire of `cron`."""
    return await runs.create(
        cron.thread_id,
        run_request(cron),
        server_metadata=server_marks(cron),
        server_configurable=server_marks(cron),
    )


def _check_payload(payload: dict[str, Any]) -> None:
    """Refuse now what would make every fire fail later."""
    configurable = (payload.get("config") or {}).get("configurable")
    if configurable and payload.get("context"):
        raise errors.BadRequest(
            "Cannot specify both configurable and context. Prefer setting context alone."
        )


def _utc(value: datetime | None) -> datetime | None:
    # The SDK sends `end_time.isoformat()`, naive if the caller's datetime was.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class Crons:
    """Creating and changing crons; the scheduler (`queue/scheduler.py`) fires them."""

    def __init__(self, *, storage: Storage, runs: Runs) -> None:
        self.storage = storage
        self.runs = runs

    async def create(
        self,
        *,
        thread_id: str | None,
        schedule: str,
        timezone: str | None,
        end_time: datetime | None,
        enabled: bool,
        payload: dict[str, Any],
        on_run_completed: OnCompletion | None,
        multitask_strategy: MultitaskStrategy | None,
    ) -> Cron:
        """Store a new cron, due at its first fire after now.

        Args:
            thread_id: the thread each fire runs on; None for a stateless cron.
            payload: run options (`PAYLOAD_FIELDS`), `assistant_id` included.
        """
        timezone = timezone or "UTC"
        schedule = check_schedule(schedule)
        now = datetime.now(UTC)
        first = next_fire(schedule, timezone, now)
        assistant = await self.runs.assistant_for(payload["assistant_id"])
        payload = {k: v for k, v in payload.items() if v is not None}
        payload["assistant_id"] = assistant.assistant_id
        _check_payload(payload)
        await self._check_webhook(payload.get("webhook"))
        stateless = thread_id is None
        if not stateless:
            multitask_strategy = multitask_strategy or MultitaskStrategy.ENQUEUE
            payload["multitask_strategy"] = multitask_strategy.value
        cron = Cron(
            cron_id=ids.new_id(),
            assistant_id=assistant.assistant_id,
            thread_id=thread_id,
            user_id=None,
            schedule=schedule,
            timezone=timezone,
            end_time=_utc(end_time),
            next_run_date=first,
            payload=payload,
            metadata=dict(payload.get("metadata") or {}),
            on_run_completed=(on_run_completed or OnCompletion.DELETE) if stateless else None,
            multitask_strategy=None if stateless else multitask_strategy,
            enabled=enabled,
            created_at=now,
            updated_at=now,
        )
        return await self.storage.crons.create(cron)

    async def update(self, cron_id: str, changes: dict[str, Any]) -> Cron:
        """Apply a PATCH: schedule, timezone, end_time (None clears), enabled,
        on_run_completed, metadata (merged) and payload fields (shallow-merged).

        A change to when the cron fires recomputes its next fire from now.
        """
        if not changes:
            raise errors.BadRequest("Nothing to update: the body sets no field")
        if "schedule" in changes:
            changes["schedule"] = check_schedule(changes["schedule"])
        if changes.get("timezone") is not None:
            zone(changes["timezone"])
        if "end_time" in changes:
            changes["end_time"] = _utc(changes["end_time"])
        await self._check_webhook(changes.get("webhook"))

        def change(cron: Cron) -> dict[str, Any]:
            now = datetime.now(UTC)
            values: dict[str, Any] = {"updated_at": now}
            for key in ("schedule", "end_time", "enabled"):
                if key in changes:
                    values[key] = changes[key]
            if changes.get("timezone") is not None:
                values["timezone"] = changes["timezone"]
            if changes.get("on_run_completed") is not None:
                if cron.thread_id is not None:
                    raise errors.BadRequest(
                        "on_run_completed applies to stateless crons only; this cron "
                        f"runs on thread {cron.thread_id}"
                    )
                values["on_run_completed"] = OnCompletion(changes["on_run_completed"])
            fields = {
                k: v for k, v in changes.items() if k in PAYLOAD_FIELDS and k != "assistant_id"
            }
            if "metadata" in fields:
                fields["metadata"] = {**cron.metadata, **(fields["metadata"] or {})}
                values["metadata"] = fields["metadata"]
            payload = {**cron.payload, **fields}
            _check_payload(payload)
            values["payload"] = payload
            if {"schedule", "timezone", "end_time", "enabled"} & changes.keys():
                values["next_run_date"] = next_fire(
                    values.get("schedule", cron.schedule),
                    values.get("timezone", cron.timezone),
                    now,
                )
            return values

        return await self.storage.crons.update(cron_id, change)

    async def _check_webhook(self, url: str | None) -> None:
        """Refuse now a webhook every fire's run would be refused for (422).

        The URL is kept as given: each fire checks it again, as any run's is.
        """
        if url is not None:
            await self.runs.webhook_policy.admit(url)


#: how the scheduler computes a claimed cron's next fire
NextFire = Callable[[Cron, datetime], datetime]
