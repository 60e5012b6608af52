"""Shared fixtures: real Berth server processes, SDK clients, and backend URIs.

Servers are started lazily, so unit tests never pay for one. Under xdist each
worker gets its own session server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import langgraph_sdk
import psycopg
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from psycopg import sql

from tests.berth_server import GRAPHS_CONFIG, BerthServer

StartServer = Callable[..., BerthServer]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def graphs_config() -> Path:
    """The ``langgraph.json`` registering the deterministic test graphs."""
    return GRAPHS_CONFIG


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """One embedded (SQLite, in-memory broker) server shared by the session."""
    berth = BerthServer(tmp_path_factory.mktemp("session-server") / "data")
    berth.start()
    yield berth
    berth.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start extra servers for one test; all are stopped at teardown.

    ``start_server(env={"DATABASE_URI": pg_database}, name="a")`` returns a started
    ``BerthServer``. ``name`` picks its data directory under ``tmp_path``
    (default ``server<n>``); ``config`` and ``port`` are passed through.
    """
    started: list[BerthServer] = []

    def start(
        *,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        config: Path = GRAPHS_CONFIG,
        port: int | None = None,
    ) -> BerthServer:
        data_dir = tmp_path / (name or f"server{len(started)}")
        berth = BerthServer(data_dir, config=config, env=env, port=port)
        started.append(berth)
        return berth.start()

    yield start
    for berth in reversed(started):
        berth.stop()


@pytest.fixture
def fresh_server(start_server: StartServer) -> BerthServer:
    """An embedded server with its own empty data directory, for this test only."""
    return start_server(name="fresh")


@pytest.fixture
async def client(server: BerthServer) -> AsyncIterator[LangGraphClient]:
    """Async SDK client for the session server (tests must be ``anyio``)."""
    sdk = langgraph_sdk.get_client(url=server.url)
    yield sdk
    await sdk.aclose()


@pytest.fixture
def sync_client(server: BerthServer) -> Iterator[SyncLangGraphClient]:
    """Sync SDK client for the session server."""
    sdk = langgraph_sdk.get_sync_client(url=server.url)
    yield sdk
    sdk.close()


@pytest.fixture(scope="session")
def pg_uri() -> str:
    """Admin URI of the test PostgreSQL cluster (``scripts/test`` starts one)."""
    uri = os.environ.get("BERTH_TEST_PG_URI")
    if not uri:
        pytest.skip("BERTH_TEST_PG_URI is not set; run the tests through scripts/test")
    return uri


@pytest.fixture
def pg_database(pg_uri: str) -> Iterator[str]:
    """URI of a new, empty database on the test cluster, dropped after the test."""
    name = f"berth_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlsplit(pg_uri)._replace(path=f"/{name}").geturl()
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        # FORCE: a killed server may leave connections behind.
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def redis_uri() -> str:
    """URI of the test Redis server (``scripts/test`` starts one)."""
    uri = os.environ.get("BERTH_TEST_REDIS_URI")
    if not uri:
        pytest.skip("BERTH_TEST_REDIS_URI is not set; run the tests through scripts/test")
    return uri


@pytest.fixture
def counter_file(tmp_path: Path) -> Path:
    """A file for the ``slow`` graph's execution log (``BERTH_TEST_COUNTER_FILE``)."""
    return tmp_path / "executions.log"
