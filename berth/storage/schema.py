"""Berth's tables, in SQLAlchemy Core. Migrations in `migrations/` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite drops the offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value is not None and dialect.name == "sqlite":
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        stamp: datetime = value  # the DateTime impl has already parsed it
        if stamp.tzinfo is None:
            return stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC)


JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.String(36)


def _now() -> datetime:
    return datetime.now(UTC)


assistants = sa.Table(
    "assistants",
    metadata,
    sa.Column("assistant_id", ID, primary_key=True),
    sa.Column("graph_id", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("config", JSON, nullable=False),
    sa.Column("context", JSON, nullable=False),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, default=_now),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=_now),
    sa.Index(None, "graph_id"),
    sa.Index(None, "created_at"),
)

assistant_versions = sa.Table(
    "assistant_versions",
    metadata,
    sa.Column(
        "assistant_id",
        ID,
        sa.ForeignKey("assistants.assistant_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("graph_id", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("config", JSON, nullable=False),
    sa.Column("context", JSON, nullable=False),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, default=_now),
)

threads = sa.Table(
    "threads",
    metadata,
    sa.Column("thread_id", ID, primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False, default=_now),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=_now),
    sa.Column("state_updated_at", UTCDateTime),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("config", JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("values", JSON),
    sa.Column("interrupts", JSON, nullable=False),
    sa.Column("error", JSON),
    #: `delete` or `keep_latest`; null: the thread never expires
    sa.Column("ttl_strategy", sa.String(16)),
    sa.Column("ttl_minutes", sa.Float),
    #: when the sweeper applies the strategy, unless the thread was active since
    sa.Column("expires_at", UTCDateTime),
    sa.Index(None, "status"),
    sa.Index(None, "created_at"),
    sa.Index(None, "expires_at"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column(
        "thread_id",
        ID,
        sa.ForeignKey("threads.thread_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("assistant_id", ID, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("kwargs", JSON, nullable=False),
    sa.Column("multitask_strategy", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("temporary", sa.Boolean, nullable=False, default=False),
    sa.Column("available_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("worker_id", sa.String(64)),
    sa.Column("lease_until", UTCDateTime),
    #: a cancel asked for while the run was running: "interrupt" or "rollback"
    sa.Column("cancel_action", sa.String(16)),
    sa.Column("error", JSON),
    sa.Index(None, "thread_id", "created_at"),
    sa.Index(None, "status", "available_at"),
    # The database, not Python, guarantees at most one running run per thread.
    sa.Index(
        "ux_runs_one_running_per_thread",
        "thread_id",
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    ),
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("thread_id", ID, primary_key=True),
    sa.Column("checkpoint_ns", sa.String(512), primary_key=True),
    sa.Column("checkpoint_id", ID, primary_key=True),
    sa.Column("parent_checkpoint_id", ID),
    sa.Column("run_id", ID),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("checkpoint", sa.LargeBinary, nullable=False),
    sa.Column("metadata", JSON, nullable=False),
    sa.Index(None, "run_id"),
)

checkpoint_writes = sa.Table(
    "checkpoint_writes",
    metadata,
    sa.Column("thread_id", ID, primary_key=True),
    sa.Column("checkpoint_ns", sa.String(512), primary_key=True),
    sa.Column("checkpoint_id", ID, primary_key=True),
    sa.Column("task_id", ID, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("channel", sa.String(255), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("task_path", sa.String(1024), nullable=False, default=""),
    sa.Column("run_id", ID),
    sa.Index(None, "run_id"),
)

crons = sa.Table(
    "crons",
    metadata,
    sa.Column("cron_id", ID, primary_key=True),
    sa.Column("assistant_id", ID, nullable=False),
    sa.Column(
        "thread_id", ID, sa.ForeignKey("threads.thread_id", ondelete="CASCADE"), nullable=True
    ),
    sa.Column("user_id", sa.String(255)),
    sa.Column("schedule", sa.String(255), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False, default="UTC"),
    sa.Column("end_time", UTCDateTime),
    sa.Column("next_run_date", UTCDateTime),
    sa.Column("payload", JSON, nullable=False),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("on_run_completed", sa.String(16)),
    sa.Column("multitask_strategy", sa.String(16)),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "enabled", "next_run_date"),
    sa.Index(None, "assistant_id"),
    sa.Index(None, "thread_id"),
)

#: the webhook outbox: one row per run end to announce, written with the run's end
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("delivery_id", ID, primary_key=True),
    sa.Column("run_id", ID, nullable=False),
    sa.Column("thread_id", ID),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("payload", JSON, nullable=False),
    #: pending | delivered | failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_until", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "run_id"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("delivery_id", ID, primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    #: delivered | retry | failed
    sa.Column("outcome", sa.String(16), nullable=False),
)
