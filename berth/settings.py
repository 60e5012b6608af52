"""The one Settings object: environment variables and CLI flags, read once at start-up."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    return float(value) if value not in (None, "") else default


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    return int(value) if value not in (None, "") else default


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    #: `langgraph.json` of the project to serve
    config_path: Path
    host: str = "127.0.0.1"
    port: int = 2024
    #: where the embedded database lives
    data_dir: Path = Path(".berth")
    #: `postgresql://…` to use PostgreSQL; empty for the embedded SQLite file
    database_uri: str = ""
    #: `redis://…` for cross-process stream fan-out; empty for the in-process broker
    redis_uri: str = ""
    #: runs executed at once by this process's worker pool (0: an API-only process)
    concurrency: int = 10
    #: a run longer than this ends as `timeout`
    run_timeout: float = 86_400.0
    #: how often a worker renews its runs' leases; a lease lasts three periods
    heartbeat_interval: float = 10.0
    #: how many times a run is started before a lost worker fails it
    max_attempts: int = 3
    #: how long a resumable run's events stay replayable after it ends
    stream_ttl: float = 120.0
    #: SSE heartbeat period
    keepalive_interval: float = 5.0

    @property
    def database_url(self) -> str:
        if self.database_uri:
            return self.database_uri
        return f"sqlite:///{(self.data_dir / 'berth.db').resolve()}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "database_uri": env.get("DATABASE_URI", env.get("POSTGRES_URI", "")),
            "redis_uri": env.get("REDIS_URI", ""),
            "concurrency": _int(env, "N_JOBS_PER_WORKER", 10),
            "run_timeout": _float(env, "BG_JOB_TIMEOUT_SECS", 86_400.0),
            "heartbeat_interval": _float(env, "BERTH_HEARTBEAT_INTERVAL", 10.0),
            "max_attempts": _int(env, "BERTH_MAX_ATTEMPTS", 3),
            "stream_ttl": _float(env, "BERTH_STREAM_TTL", 120.0),
            "keepalive_interval": _float(env, "BERTH_KEEPALIVE_INTERVAL", 5.0),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
