"""`create_app`: the only composition root. Everything is built here and nowhere else."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI

import berth
from berth import project as project_mod
from berth import tracing
from berth.api import assistants, crons, errors, runs, store, system, threads
from berth.api import webhooks as webhook_api
from berth.api.cors import BrowserCORS
from berth.api.deps import Components
from berth.api.headers import HeaderPolicy
from berth.api.responses import JSONResponse
from berth.core import ids
from berth.core.runs import Runs
from berth.core.state import ThreadState
from berth.graphs import GraphRegistry
from berth.queue import scheduler as cron_scheduler
from berth.queue import sweeper as thread_sweeper
from berth.queue.executor import Executor
from berth.queue.worker import WorkerPool
from berth.settings import Settings
from berth.storage.base import Storage
from berth.storage.store import open_store
from berth.storage.webhooks import WebhookStore
from berth.streaming.base import Broker
from berth.streaming.memory import MemoryBroker
from berth.webhooks import WebhookSettings
from berth.webhooks.delivery import Deliverer

log = logging.getLogger("berth")


def create_app(settings: Settings, registry: GraphRegistry | None = None) -> FastAPI:
    """Build the ASGI app for `settings`; storage and workers start with its lifespan."""
    project = project_mod.load(settings.config_path)
    if registry is None:
        for key, value in project.env.items():
            os.environ.setdefault(key, value)
        registry = GraphRegistry.load(project)
    # After the project's env: langgraph.json may set OTEL_* there.
    tracing_on = tracing.setup()
    # After the project's env too: header templates may name variables it sets.
    webhook_settings = WebhookSettings.load(project.webhooks, project.http)
    project_store = project.store
    header_policy = HeaderPolicy.from_http(project.http)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        storage = Storage(settings.database_url)
        await storage.open()
        exit_stack = contextlib.AsyncExitStack()
        item_store = await exit_stack.enter_async_context(
            open_store(settings.database_url, project_store, settings.config_path.resolve().parent)
        )
        registry.attach_store(item_store)
        for graph in registry:
            await storage.assistants.ensure_default(
                assistant_id=ids.default_assistant_id(graph.graph_id),
                graph_id=graph.graph_id,
                name=graph.graph_id,
            )
        broker = _broker(settings)
        await broker.start()
        pool: WorkerPool | None = None
        if settings.concurrency > 0:
            executor = Executor(
                storage=storage, registry=registry, broker=broker, run_timeout=settings.run_timeout
            )
            pool = WorkerPool(
                storage=storage,
                broker=broker,
                executor=executor,
                concurrency=settings.concurrency,
                heartbeat_interval=settings.heartbeat_interval,
                max_attempts=settings.max_attempts,
                recover_all=storage.db.name == "sqlite",
            )
            await pool.start()
        deliverer: Deliverer | None = None
        if settings.concurrency > 0 and not webhook_settings.muted:
            deliverer = Deliverer(
                store=WebhookStore(storage.db),
                settings=webhook_settings,
                self_url=_self_url(settings),
                recover_all=storage.db.name == "sqlite",
            )
            await deliverer.start()
        app.state.berth = Components(
            settings=settings,
            storage=storage,
            broker=broker,
            registry=registry,
            runs=Runs(
                storage=storage,
                broker=broker,
                registry=registry,
                webhook_policy=webhook_settings.policy,
                workers=pool,
            ),
            state=ThreadState(storage=storage, registry=registry, broker=broker),
            store=item_store,
            headers=header_policy,
        )
        crons_scheduler = cron_scheduler.CronScheduler(
            storage=storage, runs=app.state.berth.runs, interval=cron_scheduler.interval_from_env()
        )
        await crons_scheduler.start()
        ttl_sweeper = thread_sweeper.ThreadSweeper(
            storage=storage, interval=thread_sweeper.interval_from_env()
        )
        await ttl_sweeper.start()
        # Everything built so far lives as long as the server: keep it out of the cyclic
        # collector's scans, which otherwise walk the whole heap again and again. A run
        # allocates thousands of short-lived containers; collecting the young
        # generation every 700 (the default) cost about 5% of a small run's CPU.
        gc.freeze()
        gc.set_threshold(10_000, 20, 20)
        try:
            yield
        finally:
            await ttl_sweeper.stop()
            await crons_scheduler.stop()
            if pool is not None:
                await pool.stop()
            if deliverer is not None:
                await deliverer.stop()
            await broker.stop()
            await exit_stack.aclose()
            await storage.close()
            tracing.shutdown()

    app = FastAPI(
        title="Berth",
        version=berth.__version__,
        description="A self-hosted, durable Agent Server for LangGraph agents.",
        default_response_class=JSONResponse,
        lifespan=lifespan,
    )
    app.add_middleware(
        BrowserCORS,
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["x-pagination-total", "x-pagination-next", "content-location", "location"],
    )
    if tracing_on:
        # Added last, so outermost: the span covers CORS and error handling too.
        app.add_middleware(tracing.HttpSpans)
    errors.install(app)
    # Runs first: a request walks the routes in order, and run creation is the hot
    # path. No run route's path and method both match a cron route's (Starlette takes
    # the first route matching both, so the order is free otherwise).
    for router in (
        runs.router,
        crons.router,
        system.router,
        assistants.router,
        threads.router,
        store.router,
    ):
        app.include_router(router)
    app.include_router(webhook_api.router)
    if not project.http.get("disable_mcp"):
        from berth.protocols import mcp

        app.include_router(mcp.router(project.http))
    if not project.http.get("disable_a2a"):
        from berth.protocols import a2a

        app.include_router(a2a.router)
    return app


def _self_url(settings: Settings) -> str:
    """Where this server answers itself: relative webhook URLs are sent here."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def _broker(settings: Settings) -> Broker:
    if settings.redis_uri:
        from berth.streaming.redis import RedisBroker

        return RedisBroker(settings.redis_uri, stream_ttl=settings.stream_ttl)
    return MemoryBroker(stream_ttl=settings.stream_ttl)
