"""The FastAPI application. Uvicorn runs it with `api.app:create_app` as a factory."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

from api import console, docs, errors, openapi
from api.backlog import BacklogGate, Every
from api.doorbell import Doorbell
from api.hub import CompletionHub
from api.keys import AuthFailures, KeyCache
from api.middleware import (
    AuthMiddleware,
    BodyLimitMiddleware,
    MetricsMiddleware,
    RequestIdMiddleware,
)
from api.ratelimit import RateLimiter
from api.resources import Resources, create_pool
from api.routes import accounts, batches, events, health, holds, operations, wallets, webhooks
from api.routes.health import backlog_gauges
from shared.intake.lanes import WalletLanes
from shared.queue import make_celery
from shared.settings import Settings, get_settings

log = logging.getLogger("paysys.api")

DESCRIPTION = """
Wallets, top-ups and transfers over a double-entry ledger.

Money-moving requests are asynchronous: they answer `202 Accepted` with an operation
once it is durably recorded, and a worker applies it. Poll `GET /v1/operations/{id}`
(or long-poll it with `?wait=`). Every `/v1` route needs `Authorization: Bearer <key>`;
errors are `application/problem+json` with a machine-readable `code`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis_url = settings.require_redis_url()
        pool = await create_pool(settings)
        redis = aioredis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=1)
        # The subscription blocks reading for long stretches: no socket timeout on it.
        hub_redis = aioredis.from_url(redis_url, socket_connect_timeout=1, health_check_interval=15)
        celery = make_celery(settings)
        keys = KeyCache()
        hub = CompletionHub(hub_redis, settings, keys)
        hub.close_on_exit_signals()
        limiter = None
        if settings.rate_limit:
            limiter = RateLimiter(
                redis, settings.redis_prefix, settings.rate_limit, settings.rate_limit_burst
            )
        backlog = BacklogGate(pool, settings.max_backlog_seconds)
        resources = Resources(
            settings=settings,
            pool=pool,
            redis=redis,
            doorbell=Doorbell(redis, celery, settings),
            hub=hub,
            limiter=limiter,
            keys=keys,
            auth_failures=AuthFailures(settings.auth_failure_limit),
            lanes=WalletLanes(pool),
            backlog=backlog,
            gauges=Every(1.0, lambda: backlog_gauges(pool)),
        )
        resources.background.append(asyncio.create_task(hub.run()))
        resources.background.append(asyncio.create_task(backlog.run()))
        app.state.resources = resources
        # Everything loaded so far lives as long as the process: take it out of the
        # collector's sight, or every full collection re-scans it (50-90 ms of stalled
        # event loop, measured) to free nothing.
        gc.freeze()
        try:
            yield
        finally:
            for task in resources.background:
                task.cancel()
            await resources.doorbell.drain()
            await asyncio.gather(*resources.background, return_exceptions=True)
            await pool.close()
            await redis.aclose()
            await hub_redis.aclose()

    app = FastAPI(
        title="paysys",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
        docs_url=None,  # served by api.docs, with no CDN
        redoc_url=None,
    )
    errors.install(app)
    docs.install(app)
    app.include_router(health.router)
    app.include_router(accounts.router)
    app.include_router(wallets.router)
    app.include_router(operations.router)
    app.include_router(holds.router)
    app.include_router(batches.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(console.router)  # /console: HTML, outside /v1 and the schema
    # Added last = runs first: metrics (times everything), request id, body size, then
    # authentication and the rate limit.
    app.add_middleware(AuthMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.openapi = lambda: openapi.build(app)  # type: ignore[method-assign]
    return app
