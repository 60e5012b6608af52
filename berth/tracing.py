"""Distributed tracing: carry a caller's trace from run creation into run execution.

Two kinds of context arrive with a request (contract §9):

* W3C `traceparent`/`tracestate`. With OpenTelemetry on, the request gets a server
  span; its context is stored in the run's kwargs (`kwargs["trace"]`) and restored by
  whichever worker executes the run, so the queued-run, run-attempt and graph-node
  spans stay children of the caller's span even when the run executes later, elsewhere.
* LangSmith's `langsmith-trace` header and the `langsmith-metadata`, `langsmith-tags`
  and `langsmith-project` entries of `baggage`. These are always copied, verbatim, into
  the run's `configurable`; the worker makes them the LangSmith parent of the graph's
  own LangChain tracing, so `RemoteGraph(distributed_tracing=True)` callers see one trace.

OpenTelemetry is on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (spans go out by OTLP/HTTP)
or `BERTH_TRACING=1`. `BERTH_TRACING_EXPORT_FILE=<path>` also writes every finished span
as a JSON line (for tests and debugging). Off, no span object is ever made: the hot
path pays one `is None` check per request and per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from berth.core.models import Run, RunStatus

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("berth.tracing")

#: the W3C headers a run carries from its creation to its execution
W3C_HEADERS = ("traceparent", "tracestate")
#: the `baggage` entries copied into `configurable`, beside `langsmith-trace`
LANGSMITH_BAGGAGE = ("langsmith-metadata", "langsmith-tags", "langsmith-project")
LANGSMITH_TRACE = "langsmith-trace"

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None


# -- set-up ----------------------------------------------------------------------


def setup(env: Mapping[str, str] | None = None) -> bool:
    """Turn OpenTelemetry on if the environment asks for it; return whether it is on."""
    global _tracer, _provider
    env = os.environ if env is None else env
    if _tracer is not None:
        return True
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    if not endpoint and env.get("BERTH_TRACING", "").lower() not in ("1", "true", "yes"):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # Resource.create also reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    resource = Resource.create({"service.name": "berth", "process.pid": os.getpid()})
    provider = TracerProvider(resource=resource)
    if endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp-proto-http "
                "is not installed: spans are not exported by OTLP"
            )
        else:
            # The exporter reads the endpoint, headers and timeout from OTEL_* itself.
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if path := env.get("BERTH_TRACING_EXPORT_FILE"):
        # Synchronous: a span is in the file as soon as it ends.
        exporter = cast("SpanExporter", JsonLinesExporter(Path(path)))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    # Not made the global provider: FastAPI >= 0.16x would then add its own, second
    # server span per request. Spans that graph code makes with a globally configured
    # provider still nest under the run attempt, which is current while the graph runs.
    _provider = provider
    _tracer = provider.get_tracer("berth")
    return True


def shutdown() -> None:
    """Flush and stop the exporters (the server is stopping)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


class JsonLinesExporter:
    """Append each finished span to a file as one JSON object per line.

    A `SpanExporter` by duck typing, so the SDK is imported only when tracing is on.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = "".join(json.dumps(_span_json(span), default=str) + "\n" for span in spans)
        with self._lock, self.path.open("a", encoding="utf-8") as file:
            file.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _span_json(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "events": [event.name for event in span.events],
        "resource": dict(span.resource.attributes),
    }


# -- the HTTP request --------------------------------------------------------------


class HttpSpans:
    """ASGI middleware: one server span per HTTP request, child of its `traceparent`.

    Installed only when tracing is on. The span is current while the route runs, so a
    run created by the request stores it as the parent of its own spans.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or _tracer is None:
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers") or ()
            if name in (b"traceparent", b"tracestate")
        }
        method = scope.get("method", "GET")
        with _tracer.start_as_current_span(
            method,
            context=_PROPAGATOR.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        ) as span:

            async def send_with_status(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, send_with_status)
            finally:
                # The route template is known only once the router has matched.
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.set_attribute("http.route", route)
                    span.update_name(f"{method} {route}")


# -- run creation -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Incoming:
    """The trace context a run is created under."""

    #: `traceparent`/`tracestate` of the span to parent the run's spans (empty when
    #: OpenTelemetry is off); stored as the run's `kwargs["trace"]`
    w3c: dict[str, str]
    #: the LangSmith entries to copy into the run's `configurable`
    langsmith: dict[str, str]


def incoming(headers: Mapping[str, str] | None = None) -> Incoming | None:
    """The trace context of a run created now, by a request with `headers` (lower-case).

    Without headers (a run started by MCP, A2A or a cron), the current span still counts.
    None when there is nothing to carry.
    """
    langsmith = langsmith_entries(headers) if headers else {}
    w3c: dict[str, str] = {}
    if _tracer is not None:
        # The current span is the request's (a child of its traceparent) when the
        # middleware runs; the raw headers are the fallback.
        _PROPAGATOR.inject(w3c)
        if not w3c and headers:
            w3c = {k: headers[k] for k in W3C_HEADERS if headers.get(k)}
    if not w3c and not langsmith:
        return None
    return Incoming(w3c, langsmith)


def langsmith_entries(headers: Mapping[str, str]) -> dict[str, str]:
    """`langsmith-trace`, and the LangSmith entries of `baggage`, as sent (URL-encoded)."""
    entries: dict[str, str] = {}
    if value := headers.get(LANGSMITH_TRACE):
        entries[LANGSMITH_TRACE] = value
    if baggage := headers.get("baggage"):
        for item in baggage.split(","):
            key, sep, value = item.strip().partition("=")
            key = key.strip()
            if sep and key in LANGSMITH_BAGGAGE:
                # Baggage members may carry `;properties`; they are not part of the value.
                entries[key] = value.split(";", 1)[0].strip()
    return entries


# -- run execution ----------------------------------------------------------------


class NoAttempt:
    """The attempt of a run with nothing to trace."""

    def __enter__(self) -> NoAttempt:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def instrument(self, config: Any) -> Any:
        return config

    def finish(self, status: RunStatus, error: Mapping[str, Any] | None = None) -> None:
        return None


NO_ATTEMPT = NoAttempt()


def attempt(run: Run) -> NoAttempt | Attempt:
    """The tracing scope of one execution of `run`; use as `with tracing.attempt(run):`."""
    configurable = (run.kwargs.get("config") or {}).get("configurable") or {}
    if _tracer is None and LANGSMITH_TRACE not in configurable:
        return NO_ATTEMPT
    return Attempt(run, _tracer, configurable)


def run_attributes(run: Run) -> dict[str, Any]:
    return {
        "berth.run.id": run.run_id,
        "berth.thread.id": run.thread_id,
        "berth.assistant.id": run.assistant_id,
        "berth.graph.id": str(run.kwargs.get("graph_id") or ""),
        "berth.run.attempt": run.attempt,
    }


class Attempt:
    """Spans of one run attempt, under the context stored at the run's creation.

    On entry: a `run queued` span (creation to now, first attempt only) and a current
    `run attempt` span, both children of the stored span; and the LangSmith parent from
    `langsmith-trace`, if any. `instrument` adds per-node spans to the graph's config.
    """

    def __init__(self, run: Run, tracer: trace.Tracer | None, configurable: Mapping[str, Any]):
        self.run = run
        self.tracer = tracer
        self.configurable = configurable
        self.span: trace.Span | None = None
        self.status: RunStatus | None = None
        self._stack = contextlib.ExitStack()
        self._nodes: NodeSpans | None = None
        self._langsmith_parent: Any = None

    def __enter__(self) -> Attempt:
        if self.tracer is not None:
            self._start_spans(self.tracer)
        if LANGSMITH_TRACE in self.configurable:
            self._enter_langsmith()
        return self

    def _start_spans(self, tracer: trace.Tracer) -> None:
        parent = _PROPAGATOR.extract(self.run.kwargs.get("trace") or {})
        attributes = run_attributes(self.run)
        if self.run.attempt <= 1:
            queued = tracer.start_span(
                "run queued",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes=attributes,
                start_time=_ns(self.run.created_at),
            )
            queued.end()
        self.span = tracer.start_span(
            "run attempt", context=parent, kind=SpanKind.INTERNAL, attributes=attributes
        )
        # Current while the graph runs: spans a node makes itself nest under the attempt.
        self._stack.enter_context(
            trace.use_span(
                self.span,
                end_on_exit=False,
                record_exception=False,
                set_status_on_exception=False,
            )
        )

    def _enter_langsmith(self) -> None:
        try:
            from langsmith import run_helpers, run_trees
            from langsmith import utils as ls_utils

            headers: dict[str | bytes, str | bytes] = {
                LANGSMITH_TRACE: str(self.configurable[LANGSMITH_TRACE])
            }
            baggage = ",".join(
                f"{key}={self.configurable[key]}"
                for key in LANGSMITH_BAGGAGE
                if self.configurable.get(key)
            )
            if baggage:
                headers["baggage"] = baggage
            # LangSmith's context keeps only a weak reference: the attempt holds it.
            self._langsmith_parent = run_trees.RunTree.from_headers(headers)
            if self._langsmith_parent is not None:
                # A parent alone would switch LangSmith tracing on ("mid-trace"); this
                # server traces to LangSmith only if its own settings say so.
                enabled = ls_utils.tracing_is_enabled()
                self._stack.enter_context(
                    run_helpers.tracing_context(parent=self._langsmith_parent, enabled=enabled)
                )
        except Exception as exc:  # a malformed header must not fail the run
            log.warning("ignoring the run's langsmith-trace: %s", exc)

    def instrument(self, config: Any) -> Any:
        """`config` with a callback that opens a span for each graph node."""
        if self.span is None or self.tracer is None:
            return config
        self._nodes = NodeSpans(self.tracer, self.span, run_attributes(self.run))
        callbacks = config.get("callbacks")
        if isinstance(callbacks, BaseCallbackManager):
            callbacks = callbacks.copy()
            callbacks.add_handler(self._nodes, inherit=True)
        elif isinstance(callbacks, list):
            callbacks = [*callbacks, self._nodes]
        else:
            callbacks = [self._nodes]
        return {**config, "callbacks": callbacks}

    def finish(self, status: RunStatus, error: Mapping[str, Any] | None = None) -> None:
        """Record how the attempt ended."""
        self.status = status
        if self.span is None:
            return
        self.span.set_attribute("berth.run.status", status.value)
        if status in (RunStatus.ERROR, RunStatus.TIMEOUT):
            message = (error or {}).get("message") or status.value
            self.span.set_status(Status(StatusCode.ERROR, str(message)))

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            self._stack.close()
        finally:
            if self._nodes is not None:
                self._nodes.close()
            if self.span is not None:
                if self.status is None:
                    self._record_abrupt_end(exc)
                self.span.end()

    def _record_abrupt_end(self, exc: BaseException | None) -> None:
        assert self.span is not None
        if isinstance(exc, asyncio.CancelledError):
            # The worker is stopping: the run goes back to the queue.
            self.span.set_attribute("berth.run.status", RunStatus.PENDING.value)
        elif exc is not None:
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


class NodeSpans(BaseCallbackHandler):
    """A LangChain callback handler opening one span per graph node execution.

    A node is a chain run tagged `graph:step:N` whose name is its `langgraph_node`;
    its span's parent is the span of the nearest enclosing node (a subgraph's nodes
    nest under the node that runs the subgraph), else the attempt's.
    """

    run_inline = True  # called in the graph's own task, not a thread pool

    def __init__(self, tracer: trace.Tracer, root: trace.Span, attributes: dict[str, Any]):
        self.tracer = tracer
        self.root = root
        self.attributes = attributes
        self._parents: dict[UUID, UUID | None] = {}
        self._spans: dict[UUID, trace.Span] = {}

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._parents[run_id] = parent_run_id
        node = (metadata or {}).get("langgraph_node")
        if node is None or kwargs.get("name") != node:
            return
        if not any(tag.startswith("graph:step:") for tag in tags or ()):
            return
        parent = self._enclosing(parent_run_id)
        attributes = {
            **self.attributes,
            "langgraph.node": str(node),
            "langgraph.step": int((metadata or {}).get("langgraph_step") or 0),
            "langgraph.checkpoint_ns": str((metadata or {}).get("langgraph_checkpoint_ns", "")),
        }
        self._spans[run_id] = self.tracer.start_span(
            f"node {node}",
            context=trace.set_span_in_context(parent, otel_context.Context()),
            attributes=attributes,
        )

    def _enclosing(self, run_id: UUID | None) -> trace.Span:
        seen = 0
        while run_id is not None and seen < 1000:
            if (span := self._spans.get(run_id)) is not None:
                return span
            run_id = self._parents.get(run_id)
            seen += 1
        return self.root

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._parents.pop(run_id, None)
        if (span := self._spans.pop(run_id, None)) is not None:
            span.end()

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._parents.pop(run_id, None)
        if (span := self._spans.pop(run_id, None)) is None:
            return
        from langgraph.errors import GraphBubbleUp

        if isinstance(error, GraphBubbleUp):
            # An interrupt (or a parent command) pauses the graph; it is not a failure.
            span.set_attribute("langgraph.interrupted", True)
        else:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def close(self) -> None:
        """End the spans of nodes that never finished (the run was cancelled)."""
        for span in self._spans.values():
            span.set_attribute("langgraph.cancelled", True)
            span.end()
        self._spans.clear()
        self._parents.clear()
