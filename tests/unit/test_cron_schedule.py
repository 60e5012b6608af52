"""Cron schedules, timezones, next fires and the run a fire makes (`berth.core.crons`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from berth.core import crons, errors
from berth.core.models import MultitaskStrategy, OnCompletion


def _cron(**overrides: object) -> crons.Cron:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    values: dict[str, object] = {
        "cron_id": "c1",
        "assistant_id": "a1",
        "thread_id": None,
        "user_id": None,
        "schedule": "* * * * *",
        "timezone": "UTC",
        "end_time": None,
        "next_run_date": now,
        "payload": {"assistant_id": "a1", "input": {"x": 1}},
        "metadata": {"team": "ops"},
        "on_run_completed": OnCompletion.KEEP,
        "multitask_strategy": None,
        "enabled": True,
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    return crons.Cron(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "schedule", ["* * * * *", "0 9 * * 1-5", "*/5 * * * *", "* * * * * */2", "@hourly"]
)
def test_valid_schedules(schedule: str) -> None:
    assert crons.check_schedule(f"  {schedule} ") == schedule


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("* * *", "5 fields"),
        ("* * * * * * *", "5 fields"),
        ("61 * * * *", "not a valid cron"),
        ("* * * * * 75", "not a valid cron"),
        ("every minute", "5 fields"),
        ("", "5 fields"),
    ],
)
def test_invalid_schedules(schedule: str, reason: str) -> None:
    with pytest.raises(errors.InvalidInput, match=reason):
        crons.check_schedule(schedule)


def test_five_fields_fire_on_the_minute() -> None:
    after = datetime(2026, 3, 1, 10, 15, 30, tzinfo=UTC)
    assert crons.next_fire("* * * * *", "UTC", after) == datetime(2026, 3, 1, 10, 16, tzinfo=UTC)
    assert crons.next_fire("0 9 * * *", "UTC", after) == datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_sixth_field_is_seconds() -> None:
    after = datetime(2026, 3, 1, 10, 15, 30, 500_000, tzinfo=UTC)
    assert crons.next_fire("* * * * * *", "UTC", after) == datetime(
        2026, 3, 1, 10, 15, 31, tzinfo=UTC
    )
    assert crons.next_fire("* * * * * */20", "UTC", after) == datetime(
        2026, 3, 1, 10, 15, 40, tzinfo=UTC
    )
    # Seconds are the last field: "5 * * * * 0" is minute 5, second 0.
    assert crons.next_fire("5 * * * * 0", "UTC", after) == datetime(2026, 3, 1, 11, 5, tzinfo=UTC)


def test_next_fire_is_strictly_after() -> None:
    on_the_minute = datetime(2026, 3, 1, 10, 16, tzinfo=UTC)
    assert crons.next_fire("* * * * *", "UTC", on_the_minute) == datetime(
        2026, 3, 1, 10, 17, tzinfo=UTC
    )


def test_timezone_and_daylight_saving() -> None:
    # 09:00 in New York is 14:00 UTC in winter (EST) and 13:00 UTC in summer (EDT).
    winter = datetime(2026, 1, 10, 12, tzinfo=UTC)
    summer = datetime(2026, 7, 10, 12, tzinfo=UTC)
    assert crons.next_fire("0 9 * * *", "America/New_York", winter) == datetime(
        2026, 1, 10, 14, tzinfo=UTC
    )
    assert crons.next_fire("0 9 * * *", "America/New_York", summer) == datetime(
        2026, 7, 10, 13, tzinfo=UTC
    )
    # Across the spring-forward night (8 March 2026): the next day's 09:00 is EDT.
    before_switch = datetime(2026, 3, 7, 15, tzinfo=UTC)
    assert crons.next_fire("0 9 * * *", "America/New_York", before_switch) == datetime(
        2026, 3, 8, 13, tzinfo=UTC
    )
    assert crons.next_fire("0 9 * * *", "America/New_York", winter).tzinfo == UTC


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "UTC+5", "../etc/passwd"])
def test_invalid_timezone(name: str) -> None:
    with pytest.raises(errors.InvalidInput, match="IANA timezone"):
        crons.next_fire("* * * * *", name, datetime.now(UTC))


def test_schedule_that_never_fires() -> None:
    with pytest.raises(errors.InvalidInput, match="no next fire"):
        crons.next_fire("0 0 31 2 *", "UTC", datetime(2026, 1, 1, tzinfo=UTC))


def test_stateless_run_request() -> None:
    request = crons.run_request(
        _cron(payload={"assistant_id": "a1", "input": {"x": 1}, "config": {"tags": ["t"]}})
    )
    assert request.assistant_id == "a1"
    assert request.input == {"x": 1}
    assert request.metadata == {"team": "ops"}
    # The cron's id is the server's to attach (`server_fields`), not the request's.
    assert request.config == {"tags": ["t"]}
    assert request.context is None
    assert request.on_completion == OnCompletion.KEEP
    assert request.stream_mode == ["values"]


def test_thread_run_request_keeps_strategy_and_options() -> None:
    request = crons.run_request(
        _cron(
            thread_id="t1",
            on_run_completed=None,
            multitask_strategy=MultitaskStrategy.REJECT,
            payload={
                "assistant_id": "a1",
                "config": {"configurable": {"k": "v"}},
                "stream_mode": "updates",
                "interrupt_before": ["n"],
                "webhook": "http://example.invalid/hook",
                "durability": "exit",
            },
        )
    )
    assert request.multitask_strategy == MultitaskStrategy.REJECT
    assert request.config == {"configurable": {"k": "v"}}
    assert request.stream_mode == ["updates"]
    assert request.interrupt_before == ["n"]
    assert request.webhook == "http://example.invalid/hook"
    assert request.durability == "exit"


def test_context_payload_is_kept_as_given() -> None:
    request = crons.run_request(_cron(payload={"assistant_id": "a1", "context": {"m": 1}}))
    assert request.context == {"m": 1}
    assert "configurable" not in (request.config or {})


def test_server_marks_carry_cron_id() -> None:
    assert crons.server_marks(_cron()) == {"cron_id": "c1"}
    # A new dict each time: one run's metadata cannot alias its configurable.
    assert crons.server_marks(_cron()) is not crons.server_marks(_cron())


def test_public_shape() -> None:
    public = _cron().public()
    assert set(public) == {
        "cron_id",
        "assistant_id",
        "thread_id",
        "user_id",
        "schedule",
        "timezone",
        "end_time",
        "next_run_date",
        "payload",
        "metadata",
        "on_run_completed",
        "enabled",
        "created_at",
        "updated_at",
    }
    assert public["on_run_completed"] == "keep"
