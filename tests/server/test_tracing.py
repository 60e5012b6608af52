"""Distributed tracing (contract §9): the caller's trace continues into the run.

A traced server writes every finished span as a JSON line (BERTH_TRACING_EXPORT_FILE);
the tests read them back and follow the parent links from the caller's `traceparent`
to the HTTP span, the queued-run and run-attempt spans, and the graph-node spans.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import langgraph_sdk
import pytest
from langgraph.pregel.remote import RemoteGraph
from langsmith import run_helpers
from langsmith.run_trees import RunTree

from tests.berth_server import BerthServer
from tests.conftest import StartServer

Span = dict[str, Any]

#: keeps a developer's own OTLP endpoint out of the servers under test
NO_OTLP = {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}


class Caller:
    """The client's span: a fresh W3C trace id and span id."""

    def __init__(self) -> None:
        self.trace_id = secrets.token_hex(16)
        self.span_id = secrets.token_hex(8)
        self.headers = {"traceparent": f"00-{self.trace_id}-{self.span_id}-01"}


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BerthServer, Path]]:
    """A server with tracing on, and the file its spans are written to."""
    root = tmp_path_factory.mktemp("traced")
    spans = root / "spans.jsonl"
    env = {**NO_OTLP, "BERTH_TRACING": "1", "BERTH_TRACING_EXPORT_FILE": str(spans)}
    server = BerthServer(root / "data", env=env)
    server.start()
    yield server, spans
    server.stop()


def read_spans(path: Path, trace_id: str) -> list[Span]:
    if not path.exists():
        return []
    spans = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [span for span in spans if span["trace_id"] == trace_id]


def wait_for_spans(
    path: Path, trace_id: str, ready: Callable[[list[Span]], bool], timeout: float = 10.0
) -> list[Span]:
    """The trace's spans once `ready` holds (spans are written as they end)."""
    deadline = time.monotonic() + timeout
    spans = read_spans(path, trace_id)
    while not ready(spans):
        if time.monotonic() > deadline:
            raise AssertionError(f"spans never complete: {[s['name'] for s in spans]}")
        time.sleep(0.05)
        spans = read_spans(path, trace_id)
    return spans


def named(spans: list[Span], name: str) -> list[Span]:
    return [span for span in spans if span["name"] == name]


def one(spans: list[Span], name: str) -> Span:
    found = named(spans, name)
    assert len(found) == 1, f"{name}: {[s['name'] for s in spans]}"
    return found[0]


def run_complete(spans: list[Span]) -> bool:
    return bool(named(spans, "run attempt")) and len(named(spans, "node second")) == 1


def ancestors(span: Span, spans: list[Span]) -> list[str]:
    """Span ids from `span`'s parent up to the root (an id outside the trace file ends it)."""
    by_id = {s["span_id"]: s for s in spans}
    chain: list[str] = []
    parent = span["parent_span_id"]
    while parent is not None:
        chain.append(parent)
        parent = by_id[parent]["parent_span_id"] if parent in by_id else None
    return chain


def check_run_spans(spans: list[Span], caller: Caller, *, run: Any, http_name: str) -> Span:
    """Assert the run's spans chain to the caller's span; return the HTTP span."""
    http = one(spans, http_name)
    assert http["kind"] == "SERVER"
    assert http["parent_span_id"] == caller.span_id
    assert http["attributes"]["http.response.status_code"] == 200
    assert http["attributes"]["http.request.method"] == http_name.split()[0]

    queued = one(spans, "run queued")
    attempt = one(spans, "run attempt")
    assert queued["parent_span_id"] == attempt["parent_span_id"] == http["span_id"]
    assert queued["end_time"] <= attempt["start_time"]
    expected = {
        "berth.run.id": run["run_id"],
        "berth.thread.id": run["thread_id"],
        "berth.assistant.id": run["assistant_id"],
        "berth.graph.id": "tracing_probe",
        "berth.run.attempt": 1,
    }
    assert expected.items() <= queued["attributes"].items()
    assert {**expected, "berth.run.status": "success"}.items() <= attempt["attributes"].items()
    assert attempt["status"] == "UNSET"

    for node, step in (("first", 1), ("second", 2)):
        span = one(spans, f"node {node}")
        assert span["parent_span_id"] == attempt["span_id"]
        assert {
            **expected,
            "langgraph.node": node,
            "langgraph.step": step,
        }.items() <= span["attributes"].items()
        assert attempt["start_time"] <= span["start_time"] <= span["end_time"]
        assert span["end_time"] <= attempt["end_time"]
        assert ancestors(span, spans) == [attempt["span_id"], http["span_id"], caller.span_id]
    assert {span["trace_id"] for span in spans} == {caller.trace_id}
    return http


@pytest.mark.anyio
async def test_wait_run_continues_the_callers_trace(traced: tuple[BerthServer, Path]) -> None:
    server, path = traced
    caller = Caller()
    async with langgraph_sdk.get_client(url=server.url) as client:
        thread = await client.threads.create()
        result: Any = await client.runs.wait(
            thread["thread_id"], "tracing_probe", input={}, headers=caller.headers
        )
        assert result["steps"] == ["first", "second"]
        runs: Any = await client.runs.list(thread["thread_id"])
    [run] = runs
    assert run["kwargs"]["trace"]["traceparent"].split("-")[1] == caller.trace_id
    spans = wait_for_spans(path, caller.trace_id, run_complete)
    http = check_run_spans(spans, caller, run=run, http_name="POST /threads/{thread_id}/runs/wait")
    assert http["attributes"]["http.route"] == "/threads/{thread_id}/runs/wait"
    # The run remembers the request's span, not the caller's: the HTTP span is in between.
    assert run["kwargs"]["trace"]["traceparent"].split("-")[2] == http["span_id"]


@pytest.mark.anyio
async def test_stream_run_continues_the_callers_trace(traced: tuple[BerthServer, Path]) -> None:
    server, path = traced
    caller = Caller()
    async with langgraph_sdk.get_client(url=server.url) as client:
        thread = await client.threads.create()
        parts = [
            part
            async for part in client.runs.stream(
                thread["thread_id"],
                "tracing_probe",
                input={},
                stream_mode="updates",
                headers=caller.headers,
            )
        ]
        assert [p.event for p in parts] == ["metadata", "updates", "updates"]
        run = await client.runs.get(thread["thread_id"], parts[0].data["run_id"])
    spans = wait_for_spans(
        path,
        caller.trace_id,
        lambda s: run_complete(s) and bool(named(s, "POST /threads/{thread_id}/runs/stream")),
    )
    check_run_spans(spans, caller, run=run, http_name="POST /threads/{thread_id}/runs/stream")


@pytest.mark.anyio
async def test_stateless_run_continues_the_callers_trace(
    traced: tuple[BerthServer, Path],
) -> None:
    server, path = traced
    caller = Caller()
    async with langgraph_sdk.get_client(url=server.url) as client:
        parts = [
            part
            async for part in client.runs.stream(
                None, "tracing_probe", input={}, headers=caller.headers
            )
        ]
    run_id = parts[0].data["run_id"]
    # The request's span ends once the response is closed, which can be after the
    # client has read the last event.
    spans = wait_for_spans(
        path,
        caller.trace_id,
        lambda found: run_complete(found) and bool(named(found, "POST /runs/stream")),
    )
    attempt = one(spans, "run attempt")
    assert attempt["attributes"]["berth.run.id"] == run_id
    http = one(spans, "POST /runs/stream")
    assert ancestors(one(spans, "node first"), spans) == [
        attempt["span_id"],
        http["span_id"],
        caller.span_id,
    ]


@pytest.mark.anyio
async def test_background_run_continues_the_callers_trace(
    traced: tuple[BerthServer, Path],
) -> None:
    server, path = traced
    caller = Caller()
    async with langgraph_sdk.get_client(url=server.url) as client:
        thread = await client.threads.create()
        run = await client.runs.create(
            thread["thread_id"], "tracing_probe", input={}, headers=caller.headers
        )
        # Joining is a different request, with its own trace: it is not the run's parent.
        result = await client.runs.join(thread["thread_id"], run["run_id"])
        assert result["steps"] == ["first", "second"]
    spans = wait_for_spans(path, caller.trace_id, run_complete)
    check_run_spans(spans, caller, run=run, http_name="POST /threads/{thread_id}/runs")
    assert not named(spans, "GET /threads/{thread_id}/runs/{run_id}/join")


def test_delayed_run_is_traced_by_another_process(
    start_server: StartServer, tmp_path: Path
) -> None:
    """The context is stored with the run: a later process still continues the trace."""
    path = tmp_path / "spans.jsonl"
    env = {**NO_OTLP, "BERTH_TRACING": "1", "BERTH_TRACING_EXPORT_FILE": str(path)}
    server = start_server(env=env, name="restarted")
    caller = Caller()
    with langgraph_sdk.get_sync_client(url=server.url) as client:
        thread = client.threads.create()
        created = time.monotonic()
        run = client.runs.create(
            thread["thread_id"], "tracing_probe", input={}, after_seconds=4, headers=caller.headers
        )
    # The creating process stops before the run is due; the next one executes it.
    server.stop()
    assert time.monotonic() - created < 4, "the server took too long to stop"
    http = one(read_spans(path, caller.trace_id), "POST /threads/{thread_id}/runs")
    assert not named(read_spans(path, caller.trace_id), "run attempt")
    server.start()
    with langgraph_sdk.get_sync_client(url=server.url) as client:
        result = client.runs.join(thread["thread_id"], run["run_id"])
    assert result["steps"] == ["first", "second"]
    spans = wait_for_spans(path, caller.trace_id, run_complete)
    attempt = one(spans, "run attempt")
    assert attempt["resource"]["process.pid"] != http["resource"]["process.pid"]
    check_run_spans(spans, caller, run=run, http_name="POST /threads/{thread_id}/runs")


def test_run_created_by_an_api_process_is_traced_by_a_worker_process(
    start_server: StartServer, tmp_path: Path, pg_database: str, redis_uri: str
) -> None:
    """Distributed mode: the worker restores the context the API process stored."""
    path = tmp_path / "spans.jsonl"
    env = {
        **NO_OTLP,
        "BERTH_TRACING": "1",
        "BERTH_TRACING_EXPORT_FILE": str(path),
        "DATABASE_URI": pg_database,
        "REDIS_URI": redis_uri,
    }
    api = start_server(env={**env, "N_JOBS_PER_WORKER": "0"}, name="api")
    start_server(env=env, name="worker")
    caller = Caller()
    with langgraph_sdk.get_sync_client(url=api.url) as client:
        thread = client.threads.create()
        run = client.runs.create(
            thread["thread_id"], "tracing_probe", input={}, headers=caller.headers
        )
        client.runs.join(thread["thread_id"], run["run_id"])
    spans = wait_for_spans(path, caller.trace_id, run_complete)
    http = check_run_spans(spans, caller, run=run, http_name="POST /threads/{thread_id}/runs")
    assert one(spans, "run attempt")["resource"]["process.pid"] != http["resource"]["process.pid"]


def test_failed_run_marks_its_spans(traced: tuple[BerthServer, Path]) -> None:
    server, path = traced
    caller = Caller()
    response = httpx.post(
        f"{server.url}/runs/wait",
        json={"assistant_id": "failing", "input": {}},
        headers=caller.headers,
        timeout=30,
    )
    assert response.json()["__error__"]["error"] == "ValueError"
    spans = wait_for_spans(
        path, caller.trace_id, lambda s: bool(named(s, "run attempt") and named(s, "node fail"))
    )
    attempt = one(spans, "run attempt")
    assert attempt["status"] == "ERROR"
    assert attempt["status_description"] == "boom"
    assert attempt["attributes"]["berth.run.status"] == "error"
    node = one(spans, "node fail")
    assert node["status"] == "ERROR"
    assert node["events"] == ["exception"]
    assert node["parent_span_id"] == attempt["span_id"]


def test_request_without_traceparent_starts_a_trace(traced: tuple[BerthServer, Path]) -> None:
    server, path = traced
    response = httpx.post(
        f"{server.url}/runs/wait", json={"assistant_id": "tracing_probe", "input": {}}, timeout=30
    )
    assert response.status_code == 200
    run_id = response.headers["content-location"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 10
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        spans = [json.loads(line) for line in lines]
        attempts = [s for s in spans if s["attributes"].get("berth.run.id") == run_id]
        if any(s["name"] == "run attempt" for s in attempts) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    attempt = one(attempts, "run attempt")
    # The HTTP span ends after the response is sent: it may be written after the run's.
    trace = wait_for_spans(
        path, attempt["trace_id"], lambda spans: any(s["name"] == "POST /runs/wait" for s in spans)
    )
    http = one(trace, "POST /runs/wait")
    assert http["parent_span_id"] is None
    assert attempt["parent_span_id"] == http["span_id"]


# -- LangSmith headers -------------------------------------------------------------


def test_remote_graph_distributed_tracing_reaches_the_run(server: BerthServer) -> None:
    parent = RunTree(
        name="caller",
        run_type="chain",
        project_name="berth-trace-test",
        tags=["a", "b"],
        extra={"metadata": {"k": "v"}},
    )
    traced = RemoteGraph("tracing_probe", url=server.url, distributed_tracing=True)
    plain = RemoteGraph("tracing_probe", url=server.url)
    # enabled=False: the parent is current, but nothing is sent to LangSmith from here.
    with run_helpers.tracing_context(parent=parent, enabled=False):
        seen = traced.invoke({})["seen"]
        untraced = plain.invoke({})["seen"]
    assert seen["langsmith-trace"] == parent.dotted_order
    assert seen["langsmith-project"] == "berth-trace-test"
    assert urllib.parse.unquote(seen["langsmith-tags"]) == "a,b"
    assert json.loads(urllib.parse.unquote(seen["langsmith-metadata"])) == {"k": "v"}
    # The worker made the caller's run the LangSmith parent of the graph's own runs.
    assert seen["langsmith_parent_trace_id"] == str(parent.trace_id)
    assert untraced == {
        "langsmith-trace": None,
        "langsmith-metadata": None,
        "langsmith-tags": None,
        "langsmith-project": None,
        "langsmith_parent_trace_id": None,
    }


def test_langsmith_baggage_entries_are_copied_verbatim(server: BerthServer) -> None:
    headers = {
        "langsmith-trace": "20250101T000000000000Z0190d5a4-0000-7000-8000-000000000001",
        "baggage": "other=1, langsmith-project=my%20project;prop=x,langsmith-tags=t%2Cu",
    }
    body = {
        "assistant_id": "tracing_probe",
        "input": {},
        # Context alone is fine with the copied configurable entries (no 400).
        "context": {"user": "x"},
    }
    response = httpx.post(f"{server.url}/runs/wait", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    seen = response.json()["seen"]
    assert seen["langsmith-trace"] == headers["langsmith-trace"]
    assert seen["langsmith-project"] == "my%20project"
    assert seen["langsmith-tags"] == "t%2Cu"
    assert seen["langsmith-metadata"] is None
    assert seen["langsmith_parent_trace_id"] == "0190d5a4-0000-7000-8000-000000000001"


def test_malformed_langsmith_trace_does_not_fail_the_run(server: BerthServer) -> None:
    response = httpx.post(
        f"{server.url}/runs/wait",
        json={"assistant_id": "tracing_probe", "input": {}},
        headers={"langsmith-trace": "not-a-dotted-order"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["steps"] == ["first", "second"]
    assert body["seen"]["langsmith-trace"] == "not-a-dotted-order"


# -- tracing off, and OTLP ---------------------------------------------------------


def test_tracing_off_exports_nothing(start_server: StartServer, tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    server = start_server(
        env={**NO_OTLP, "BERTH_TRACING": "", "BERTH_TRACING_EXPORT_FILE": str(path)}
    )
    caller = Caller()
    with langgraph_sdk.get_sync_client(url=server.url) as client:
        thread = client.threads.create()
        result: Any = client.runs.wait(
            thread["thread_id"], "tracing_probe", input={}, headers=caller.headers
        )
        assert result["steps"] == ["first", "second"]
        runs: Any = client.runs.list(thread["thread_id"])
    [run] = runs
    assert "trace" not in run["kwargs"]
    time.sleep(0.3)
    assert not path.exists()


class _Collector(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        type(self).bodies.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_spans_are_exported_by_otlp(start_server: StartServer) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    collector = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.bodies = []
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
        server = start_server(
            env={
                **NO_OTLP,
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            }
        )
        caller = Caller()
        response = httpx.post(
            f"{server.url}/runs/wait",
            json={"assistant_id": "tracing_probe", "input": {}},
            headers=caller.headers,
            timeout=30,
        )
        assert response.status_code == 200
        wanted = {"run queued", "run attempt", "node first", "node second", "POST /runs/wait"}
        deadline = time.monotonic() + 15
        names: set[str] = set()
        while not wanted <= names and time.monotonic() < deadline:
            time.sleep(0.1)
            for url_path, body in list(_Collector.bodies):
                assert url_path == "/v1/traces"
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        names |= {
                            span.name
                            for span in scope_spans.spans
                            if span.trace_id.hex() == caller.trace_id
                        }
        assert wanted <= names
    finally:
        collector.shutdown()
