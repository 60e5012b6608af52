"""`BerthSaver`: LangGraph's checkpointer on Berth's own database.

Ours rather than `langgraph-checkpoint-sqlite`/`-postgres` because checkpoints then share
the run tables' engine, schema migrations and transactions (a thread delete or a run
rollback removes runs and checkpoints together), the same code serves both dialects, and
the write path is tuned for a server (WAL, no fsync per commit on SQLite). It passes
LangGraph's checkpointer conformance suite (`tests/storage/test_checkpoint_conformance.py`).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.engine import Connection

from berth import serde
from berth.storage import schema
from berth.storage.database import Database

_C = schema.checkpoints
_W = schema.checkpoint_writes
_R = schema.runs

#: configurable key naming the stored run a graph execution belongs to (set by the
#: executor; `__` keys are never taken from clients)
RUN_GUARD_KEY = "__berth_run__"


# Read at the start and end of every run on a thread: built once (see storage/run_sql.py).
_THREAD_NS = (
    _C.c.thread_id == sa.bindparam("b_thread_id"),
    _C.c.checkpoint_ns == sa.bindparam("b_ns"),
)
_LATEST = sa.select(_C).where(*_THREAD_NS).order_by(_C.c.checkpoint_id.desc()).limit(1)
_BY_ID = sa.select(_C).where(*_THREAD_NS, _C.c.checkpoint_id == sa.bindparam("b_checkpoint_id"))
_WRITES_OF = (
    sa.select(_W)
    .where(
        _W.c.thread_id == sa.bindparam("b_thread_id"),
        _W.c.checkpoint_ns == sa.bindparam("b_ns"),
        _W.c.checkpoint_id.in_(sa.bindparam("b_checkpoint_ids", expanding=True)),
    )
    .order_by(_W.c.task_path, _W.c.task_id, _W.c.idx)
)


class BerthSaver(BaseCheckpointSaver[str]):
    """Async checkpointer over `Database`; the sync methods are not supported."""

    def __init__(self, db: Database, *, serde_: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde_)
        self.db = db
        # Built once: upserts are rebuilt and recompiled otherwise, on the hottest path.
        put = db.insert(_C)
        self._put = put.on_conflict_do_update(
            index_elements=[_C.c.thread_id, _C.c.checkpoint_ns, _C.c.checkpoint_id],
            set_={k: put.excluded[k] for k in ("type", "checkpoint", "metadata", "run_id")},
        )
        writes = db.insert(_W)
        keys = [_W.c.thread_id, _W.c.checkpoint_ns, _W.c.checkpoint_id, _W.c.task_id, _W.c.idx]
        self._put_special_writes = writes.on_conflict_do_update(
            index_elements=keys,
            set_={k: writes.excluded[k] for k in ("channel", "type", "value", "task_path")},
        )
        self._put_writes = writes.on_conflict_do_nothing(index_elements=keys)

    # -- reads ---------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        params = {"b_thread_id": str(conf["thread_id"]), "b_ns": conf.get("checkpoint_ns", "")}
        query = _LATEST
        if checkpoint_id := get_checkpoint_id(config):
            query = _BY_ID
            params["b_checkpoint_id"] = checkpoint_id

        def op(conn: Connection) -> tuple[Any, dict[str, list[Any]]]:
            row = conn.execute(query, params).first()
            return row, (_writes(conn, [row]) if row is not None else {})

        row, writes = await self.db.read(op)
        if row is None:
            return None
        return self._tuple(row, writes.get(row.checkpoint_id, []))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        query = sa.select(_C).order_by(_C.c.checkpoint_id.desc())
        if config is not None:
            conf = config["configurable"]
            query = query.where(_C.c.thread_id == str(conf["thread_id"]))
            if (ns := conf.get("checkpoint_ns")) is not None:
                query = query.where(_C.c.checkpoint_ns == ns)
            if checkpoint_id := get_checkpoint_id(config):
                query = query.where(_C.c.checkpoint_id == checkpoint_id)
        if filter:
            query = query.where(self.db.contains(_C.c.metadata, filter))
        if before is not None and (before_id := get_checkpoint_id(before)):
            query = query.where(_C.c.checkpoint_id < before_id)
        if limit is not None:
            query = query.limit(limit)

        def op(conn: Connection) -> tuple[Sequence[Any], dict[str, list[Any]]]:
            rows = conn.execute(query).all()
            return rows, _writes(conn, rows)

        rows, writes = await self.db.read(op)
        for row in rows:
            yield self._tuple(row, writes.get(row.checkpoint_id, []))

    def _tuple(self, row: Any, writes: list[Any]) -> CheckpointTuple:
        config: RunnableConfig = {
            "configurable": {
                "thread_id": row.thread_id,
                "checkpoint_ns": row.checkpoint_ns,
                "checkpoint_id": row.checkpoint_id,
            }
        }
        parent: RunnableConfig | None = None
        if row.parent_checkpoint_id:
            parent = {
                "configurable": {
                    "thread_id": row.thread_id,
                    "checkpoint_ns": row.checkpoint_ns,
                    "checkpoint_id": row.parent_checkpoint_id,
                }
            }
        return CheckpointTuple(
            config=config,
            checkpoint=self.serde.loads_typed((row.type, row.checkpoint)),
            metadata=row.metadata,
            parent_config=parent,
            pending_writes=[
                (task_id, channel, self.serde.loads_typed((type_, value)))
                for task_id, channel, type_, value in writes
            ],
        )

    # -- writes --------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        type_, blob = self.serde.dumps_typed(checkpoint)
        meta = serde.to_jsonable(get_serializable_checkpoint_metadata(config, metadata))
        values = {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint["id"],
            "parent_checkpoint_id": conf.get("checkpoint_id"),
            "run_id": _str_or_none(meta.get("run_id")),
            "type": type_,
            "checkpoint": blob,
            "metadata": meta,
        }

        def op(conn: Connection) -> None:
            if _run_gone(conn, conf.get(RUN_GUARD_KEY)):
                return
            conn.execute(self._put, values)

        await self.db.write(op)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if not writes:
            return
        conf = config["configurable"]
        base = {
            "thread_id": str(conf["thread_id"]),
            "checkpoint_ns": conf.get("checkpoint_ns", ""),
            "checkpoint_id": conf["checkpoint_id"],
            "task_id": task_id,
            "task_path": task_path,
            "run_id": _str_or_none(conf.get("run_id")),
        }
        rows = []
        for idx, (channel, value) in enumerate(writes):
            type_, blob = self.serde.dumps_typed(value)
            rows.append(
                {
                    **base,
                    "idx": WRITES_IDX_MAP.get(channel, idx),
                    "channel": channel,
                    "type": type_,
                    "value": blob,
                }
            )
        # Special writes (errors, interrupts) replace; ordinary ones are written once.
        special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        stmt = self._put_special_writes if special else self._put_writes

        def op(conn: Connection) -> None:
            if _run_gone(conn, conf.get(RUN_GUARD_KEY)):
                return
            conn.execute(stmt, rows)

        await self.db.write(op)

    async def adelete_thread(self, thread_id: str) -> None:
        await self.db.write(lambda conn: delete_thread(conn, str(thread_id)))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self.db.write(lambda conn: delete_for_runs(conn, [str(r) for r in run_ids]))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self.db.write(
            lambda conn: copy_thread(conn, str(source_thread_id), str(target_thread_id))
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        def op(conn: Connection) -> None:
            for thread_id in thread_ids:
                prune_thread(conn, str(thread_id), strategy)

        await self.db.write(op)

    def get_next_version(self, current: str | None, channel: None) -> str:
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # The server is async end to end; a sync call here would block its event loop.
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        raise NotImplementedError("BerthSaver is async-only: use aget_tuple")

    def list(self, *args: Any, **kwargs: Any) -> Iterator[CheckpointTuple]:
        raise NotImplementedError("BerthSaver is async-only: use alist")

    def put(self, *args: Any, **kwargs: Any) -> RunnableConfig:
        raise NotImplementedError("BerthSaver is async-only: use aput")

    def put_writes(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("BerthSaver is async-only: use aput_writes")


def _writes(conn: Connection, rows: Sequence[Any]) -> dict[str, list[Any]]:
    """The pending writes of `rows`' checkpoints, still serialized, in LangGraph's order."""
    if not rows:
        return {}
    keys = {(r.thread_id, r.checkpoint_ns) for r in rows}
    out: dict[str, list[Any]] = {}
    for thread_id, ns in keys:
        ids = [r.checkpoint_id for r in rows if (r.thread_id, r.checkpoint_ns) == (thread_id, ns)]
        params = {"b_thread_id": thread_id, "b_ns": ns, "b_checkpoint_ids": ids}
        for w in conn.execute(_WRITES_OF, params).all():
            out.setdefault(w.checkpoint_id, []).append((w.task_id, w.channel, w.type, w.value))
    return out


def _run_gone(conn: Connection, run_id: str | None) -> bool:
    """Whether the run writing a checkpoint was deleted (rolled back) meanwhile.

    A run's last checkpoint writes can still be in flight when a rollback deletes the
    run with what it wrote; they must not land afterwards. The share lock makes the
    deletion wait for a write already under way (PostgreSQL; SQLite has one writer).
    """
    if run_id is None:
        return False
    return conn.execute(_RUN_SHARE_LOCK, {"b_run_id": run_id}).first() is None


_RUN_SHARE_LOCK = (
    sa.select(_R.c.run_id).where(_R.c.run_id == sa.bindparam("b_run_id")).with_for_update(read=True)
)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


# Statements shared with the thread and run stores, so they can run inside a larger
# transaction (deleting a thread removes its runs and checkpoints atomically).


_DELETE_THREAD_WRITES = _W.delete().where(_W.c.thread_id == sa.bindparam("b_thread_id"))
_DELETE_THREAD_CHECKPOINTS = _C.delete().where(_C.c.thread_id == sa.bindparam("b_thread_id"))


def delete_thread(conn: Connection, thread_id: str) -> None:
    conn.execute(_DELETE_THREAD_WRITES, {"b_thread_id": thread_id})
    conn.execute(_DELETE_THREAD_CHECKPOINTS, {"b_thread_id": thread_id})


def delete_for_runs(conn: Connection, run_ids: Sequence[str]) -> None:
    if not run_ids:
        return
    conn.execute(sa.delete(_W).where(_W.c.run_id.in_(run_ids)))
    doomed = sa.select(_C.c.thread_id, _C.c.checkpoint_ns, _C.c.checkpoint_id).where(
        _C.c.run_id.in_(run_ids)
    )
    conn.execute(
        sa.delete(_W).where(
            sa.tuple_(_W.c.thread_id, _W.c.checkpoint_ns, _W.c.checkpoint_id).in_(doomed)
        )
    )
    conn.execute(sa.delete(_C).where(_C.c.run_id.in_(run_ids)))


def copy_thread(conn: Connection, source: str, target: str) -> None:
    for table in (_C, _W):
        cols = [c for c in table.c if c.name != "thread_id"]
        conn.execute(
            sa.insert(table).from_select(
                ["thread_id", *[c.name for c in cols]],
                sa.select(sa.literal(target), *cols).where(table.c.thread_id == source),
            )
        )


def prune_thread(conn: Connection, thread_id: str, strategy: str) -> None:
    """`keep_latest`: keep each namespace's newest checkpoint (and its writes); `delete`: all."""
    if strategy == "delete":
        delete_thread(conn, thread_id)
        return
    if strategy != "keep_latest":
        raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
    latest = (
        sa.select(_C.c.checkpoint_ns, sa.func.max(_C.c.checkpoint_id))
        .where(_C.c.thread_id == thread_id)
        .group_by(_C.c.checkpoint_ns)
    )
    for table in (_W, _C):
        conn.execute(
            sa.delete(table).where(
                table.c.thread_id == thread_id,
                sa.tuple_(table.c.checkpoint_ns, table.c.checkpoint_id).not_in(latest),
            )
        )
