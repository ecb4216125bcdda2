"""Liveness and readiness (no authentication)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import PlainTextResponse, Response

from api.deps import ResourcesDep
from api.errors import UNAVAILABLE_ERRORS
from api.responses import JSON
from shared import metrics
from shared.asyncdb import Pool
from shared.operations import repository as operations
from shared.resources.schemas import Health
from shared.webhooks.gauges import webhook_gauges

log = logging.getLogger("paysys.api")

router = APIRouter(tags=["health"])

READY_TIMEOUT = 2.0


@router.get(
    "/metrics",
    name="metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics_endpoint(res: ResourcesDep) -> Response:
    body = metrics.render()
    try:
        body += await res.gauges.get()
    except UNAVAILABLE_ERRORS:
        pass  # the process's own metrics still tell something
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def backlog_gauges(pool: Pool) -> bytes:
    """The gauges only the database knows. /metrics computes them at most once a second
    (see `Resources.gauges`), however often it is scraped."""
    async with pool.acquire() as conn:
        row = await asyncio.wait_for(operations.backlog(conn), READY_TIMEOUT)
        try:
            webhooks = await asyncio.wait_for(webhook_gauges(conn), READY_TIMEOUT)
        except Exception as exc:  # the scrape goes on without them
            log.debug("could not read the webhook gauges: %r", exc)
            webhooks = b""
    return (
        "# HELP paysys_operations_pending Operations accepted and not yet applied\n"
        "# TYPE paysys_operations_pending gauge\n"
        f"paysys_operations_pending {row['pending']}\n"
        "# HELP paysys_oldest_pending_seconds Age of the oldest pending operation\n"
        "# TYPE paysys_oldest_pending_seconds gauge\n"
        f"paysys_oldest_pending_seconds {row['oldest_seconds']:.3f}\n"
    ).encode() + webhooks


@router.get("/healthz", response_model=Health, summary="The process is running")
async def healthz() -> Response:
    return JSON({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Health,
    summary="PostgreSQL and Redis answer",
    responses={503: {"description": "A dependency does not answer; `checks` says which"}},
)
async def readyz(res: ResourcesDep) -> Response:
    async def postgres() -> None:
        async with res.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def redis() -> None:
        await res.redis.ping()

    checks = {}
    for name, check in (("postgres", postgres), ("redis", redis)):
        try:
            await asyncio.wait_for(check(), READY_TIMEOUT)
            checks[name] = "ok"
        except UNAVAILABLE_ERRORS:  # TimeoutError among them
            checks[name] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return JSON(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
