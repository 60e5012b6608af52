"""LangGraph's checkpointer conformance suite against `BerthSaver`, on SQLite and PostgreSQL.

`langgraph-checkpoint-conformance` detects which capabilities a saver implements (by the
async methods it overrides) and runs its spec for each. `BerthSaver` implements all eight,
so every one must be detected and pass; a failure reports the spec's tracebacks.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import CapabilityReport, ProgressCallbacks
from psycopg import sql

from berth.storage.checkpoints import BerthSaver
from berth.storage.database import Database

pytestmark = pytest.mark.anyio

PG_URI_ENV = "BERTH_TEST_PG_URI"


@pytest.fixture(scope="session")
def ckpt_pg_uri() -> Iterator[str]:
    """URI of a database created for this session on the test cluster, dropped at the end.

    Only that database is created and dropped; the one in `BERTH_TEST_PG_URI` is used
    just to issue `CREATE DATABASE` / `DROP DATABASE`.
    """
    admin_uri = os.environ.get(PG_URI_ENV)
    if not admin_uri:
        pytest.skip(
            f"PostgreSQL backend skipped: {PG_URI_ENV} is not set (postgresql://user@host:port/db)"
        )
    name = f"berth_ckpt_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(admin_uri)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(params=["sqlite", "postgresql"])
def ckpt_db_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URI per backend: a fresh SQLite file, or the session's PostgreSQL db."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'checkpoints.db'}"
    return str(request.getfixturevalue("ckpt_pg_uri"))


@pytest.fixture
async def ckpt_database(ckpt_db_uri: str) -> AsyncIterator[Database]:
    db = Database(ckpt_db_uri)
    await db.open()
    try:
        await db.migrate()
        yield db
    finally:
        await db.close()


def _failure_details(report: CapabilityReport, tracebacks: list[str]) -> str:
    lines = [f"conformance level {report.conformance_level()}"]
    for name, result in sorted(report.results.items()):
        lines.append(
            f"  {name}: detected={result.detected} passed={result.passed} "
            f"({result.tests_passed} passed, {result.tests_failed} failed)"
        )
        lines.extend(f"    - {failure}" for failure in result.failures)
    return "\n".join([*lines, "", *tracebacks])


async def test_berth_saver_conformance(ckpt_database: Database) -> None:
    @checkpointer_test(name=f"BerthSaver[{ckpt_database.name}]")
    async def berth_saver() -> AsyncIterator[BerthSaver]:
        yield BerthSaver(ckpt_database)

    tracebacks: list[str] = []

    def on_test_result(capability: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            tracebacks.append(f"--- {capability}.{test}\n{error}")

    report = await validate(berth_saver, progress=ProgressCallbacks(on_test_result=on_test_result))

    expected = {cap.value for cap in ALL_CAPABILITIES}
    problems = [
        name
        for name in sorted(expected)
        if (result := report.results.get(name)) is None
        or not result.detected
        or result.passed is not True
        or result.tests_passed == 0
    ]
    if problems:
        pytest.fail(
            f"BerthSaver on {ckpt_database.name} fails conformance for {problems}:\n"
            + _failure_details(report, tracebacks),
            pytrace=False,
        )
    assert report.passed_all()
